#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): how much a better fusion could add to the
word check.

Reads the `checks.json` files that `hark eval --dump-candidates DIR` writes (what the check
sees of each candidate: its peak score, its cosines to its word's takes, to every word's and to
the `_unknown_` takes, and the truth take it lands on) and scores, per scenario, on the
benchmark's own hits and false accepts:

- rule: hark's rule, `peak + WEIGHT * (best cosine - CENTRE) >= threshold + offset`, the
  candidate dropped when an `_unknown_` take is closer than its word's by more than MARGIN,
  unless it was sure before it was heard (`peak >= threshold + offset + WEIGHT * (CENTRE -
  FLOOR)`);
- every candidate: the ceiling, what any check after this detector could at most hear;
- learned: a logistic regression on every feature below, fitted on the odd seeds and scored on
  the even ones, then the other way round (2-fold by seed: no candidate scores itself).

Each line gives the recall and false accepts per non-target word at the default (offset 0)
and the best recall at <= 0.010, 0.012 and 0.030 over offsets. Needs numpy.

    python3 tests/probes/fusion.py DIR [--weight 1.75] [--centre 0.255] [--margin 0.15] [--floor 0.1]
"""
import argparse, glob, json, os, re
import numpy as np

BARS = (0.010, 0.012, 0.030)
OFFSETS = np.arange(-0.6, 0.6, 0.01)


def load(root):
    """Scenario kind ("s-takes", "x-1", ...) -> list of (seed, checks.json)."""
    out = {}
    for f in sorted(glob.glob(os.path.join(root, "*", "checks.json"))):
        m = re.match(r"([sx])(\d+)-(\w+)$", os.path.basename(os.path.dirname(f)))
        if m:
            kind = f"{m.group(1)}-{m.group(3)}"
            out.setdefault(kind, []).append((int(m.group(2)), json.load(open(f))))
    return out


def is_hit(s, c):
    return c["truth"] is not None and c["truth_word"] == s["labels"][c["word"]]


def features(s, c):
    cos = np.sort(np.array(c["cosines"]))[::-1]
    others = [b for i, b in enumerate(c["best"]) if i != c["word"]]
    return [c["peak"] - s["thresholds"][c["word"]], cos[0], cos[:3].mean(), cos.mean(),
            c["unknown"], max(others) if others else -1.0]


def curve(streams, margins):
    """Recall and false accepts per non-target word at each offset; margins[i][j] is
    candidate j of stream i's fused margin (None: dropped)."""
    pts = []
    for o in OFFSETS:
        t = n = h = f = 0
        for (_, s), ms in zip(streams, margins):
            t, n, seen = t + s["targets"], n + s["nontargets"], set()
            for c, m in zip(s["candidates"], ms):
                if m is None or m < o:
                    continue
                if is_hit(s, c) and c["truth"] not in seen:
                    seen.add(c["truth"])
                    h += 1
                else:
                    f += 1
        pts.append((o, h / max(t, 1), f / max(n, 1)))
    return pts


def report(name, pts):
    d = min(pts, key=lambda p: abs(p[0]))
    best = [max([r for _, r, fa in pts if fa <= b], default=0.0) for b in BARS]
    print(f"{name:44s} default {d[1]:.3f} @ {d[2]:.4f}   best "
          + " / ".join(f"{r:.3f}" for r in best))


def logistic(x, y, l2=1e-3, steps=3000, lr=0.5):
    """Weights (last: bias) of a logistic regression by gradient descent on standardised x."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-z @ w))
        w -= lr * (z.T @ (p - y) / len(y) + l2 * np.r_[w[:-1], 0])
    return lambda q: np.hstack([(q - mu) / sd, np.ones((len(q), 1))]) @ w


def learned(streams):
    """Per stream, each candidate's log-odds from the fold that did not see its seed."""
    out = [None] * len(streams)
    for fold in (0, 1):
        train = [s for seed, s in streams if seed % 2 != fold]
        x = np.array([features(s, c) for s in train for c in s["candidates"]])
        y = np.array([is_hit(s, c) for s in train for c in s["candidates"]], float)
        score = logistic(x, y)
        for i, (seed, s) in enumerate(streams):
            if seed % 2 == fold and s["candidates"]:
                out[i] = list(score(np.array([features(s, c) for c in s["candidates"]])) / 10)
            elif seed % 2 == fold:
                out[i] = []
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--weight", type=float, default=1.75)
    ap.add_argument("--centre", type=float, default=0.255)
    ap.add_argument("--margin", type=float, default=0.15)
    ap.add_argument("--floor", type=float, default=0.1)
    a = ap.parse_args()
    for kind, streams in sorted(load(a.dir).items()):
        def rule(s, c):
            best, threshold = max(c["cosines"]), s["thresholds"][c["word"]]
            # Sure before it is heard (the peak passes even at a cosine of FLOOR): fires
            # unheard, as hark does, whatever the takes say.
            sure = c["peak"] - threshold - a.weight * (a.centre - a.floor)
            if c["unknown"] > best + a.margin:
                return sure
            return max(sure, c["peak"] + a.weight * (best - a.centre) - threshold)
        report(f"{kind} every candidate", curve(streams, [[1.0] * len(s["candidates"])
                                                          for _, s in streams]))
        report(f"{kind} rule", curve(streams, [[rule(s, c) for c in s["candidates"]]
                                               for _, s in streams]))
        report(f"{kind} learned (2-fold by seed)", curve(streams, learned(streams)))


if __name__ == "__main__":
    main()
