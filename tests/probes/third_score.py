#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): would a third score help the word check?

A probe of 2026-11-30 asked two models that hark does not run for a score on each candidate of a
`hark eval --dump-candidates DIR` dump (the same-speaker scenarios), and fused it into hark's
rule as `rule margin + W * (score - REF)`:

- `--dtw lvl|mfcc`: subsequence DTW of each of the word's takes (its voiced part) inside the
  candidate's audio (1.3 s before its start to 0.2 s after), on level-free log-mel frames or
  MFCCs (25 ms / 10 ms, 40 bands). The score is minus the best distance over the median
  distance between the takes themselves (so 0 is "as close as the takes are to each other").
- `--speaker PT`: a speaker check, the cosine of the candidate's audio to the mean of the
  takes' embeddings by the GE2E speaker encoder of Resemblyzer 0.1.4 (PyPI `Resemblyzer`,
  Apache-2.0; PT is `resemblyzer/pretrained.pt` from its wheel, read here without torch). In
  the same-speaker scenarios every target is the enrolled speaker's and three in four
  non-target words are other people's, so a perfect speaker check would drop most false
  accepts at no cost in recall.

Prints the candidates' AUC (targets against the rest) for the third score, the word model's
cosine and the peak, then, 2-fold by seed (odd seeds, even seeds), the best recall at
<= 0.010 / 0.012 / 0.030 false accepts per non-target word of the rule and of the rule plus
the third score at several weights. Needs numpy, scipy, numba, librosa (for `--speaker`).

    python3 tests/probes/third_score.py DIR --dtw lvl
    python3 tests/probes/third_score.py DIR --speaker resemblyzer/pretrained.pt
"""
import argparse, collections, io, json, os, pickle, struct, sys, wave
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusion import BARS, curve, is_hit, load  # noqa: E402

SR = 16000
BEFORE, AFTER = 1.3, 0.2


def read_wav(path):
    w = wave.open(path)
    return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768


def candidate_audio(stream, c):
    return stream[int(max(0, (c["time"] - BEFORE) * SR)):int((c["time"] + AFTER) * SR)]


# ---- DTW on log-mel frames ----

def mel_bank(n=40, nfft=512, lo=60, hi=7600):
    m = lambda f: 2595 * np.log10(1 + f / 700)
    im = lambda x: 700 * (10 ** (x / 2595) - 1)
    bins = np.floor((nfft + 1) * im(np.linspace(m(lo), m(hi), n + 2)) / SR).astype(int)
    fb = np.zeros((n, nfft // 2 + 1))
    for i in range(n):
        a, b, c = bins[i:i + 3]
        fb[i, a:b] = (np.arange(a, b) - a) / max(b - a, 1)
        fb[i, b:c] = (c - np.arange(b, c)) / max(c - b, 1)
    return fb


FB = mel_bank()


def log_mel(x):
    x = np.pad(x, (0, max(0, 400 - len(x))))
    n = 1 + (len(x) - 400) // 160
    frames = x[np.arange(400)[None, :] + 160 * np.arange(n)[:, None]] * np.hamming(400)
    return np.log(np.abs(np.fft.rfft(frames, 512)) ** 2 @ FB.T + 1e-8)


def dtw_frames(lm, kind):
    if kind == "mfcc":
        from scipy.fft import dct
        return dct(lm, type=2, axis=1, norm="ortho")[:, 1:13]
    return lm - lm.mean(1, keepdims=True)


def voiced(lm):
    e = np.log(np.exp(lm).sum(1))
    idx = np.where(e > e.max() - np.log(10 ** 3.5))[0]
    return lm[idx[0]:idx[-1] + 1]


def subsequence_dtw():
    from numba import njit

    @njit
    def dtw(a, b):
        n, m = a.shape[0], b.shape[0]
        d = np.empty((n, m))
        for i in range(n):
            for j in range(m):
                c = np.sqrt(((a[i] - b[j]) ** 2).sum())
                if i == 0:
                    d[i, j] = c
                else:
                    best = d[i - 1, j]
                    if j > 0:
                        best = min(best, d[i - 1, j - 1], d[i, j - 1])
                    d[i, j] = c + best
        return d[n - 1].min() / n
    return dtw


def dtw_scores(d, s, kind, dtw):
    stream = read_wav(os.path.join(d, "stream.wav"))
    takes = {}
    for w, files in json.load(open(os.path.join(d, "candidates.json")))["takes"].items():
        lms = [log_mel(read_wav(os.path.join(d, f))) for f in files]
        takes[w] = [(dtw_frames(voiced(lm), kind), dtw_frames(lm, kind)) for lm in lms]
    ref = {w: np.median([dtw(t[i][0], t[j][1]) for i in range(len(t)) for j in range(len(t))
                         if i != j]) for w, t in takes.items()}
    out = []
    for c in s["candidates"]:
        w = s["labels"][c["word"]]
        frames = dtw_frames(log_mel(candidate_audio(stream, c)), kind)
        out.append(-min(dtw(q, frames) for q, _ in takes[w]) / ref[w])
    return out


# ---- GE2E speaker encoder (Resemblyzer), read without torch ----

def torch_legacy_state(path):
    """The tensors of a legacy (non-zip) `torch.save` file, as numpy arrays."""
    class Ref:
        def __init__(self, key, dtype):
            self.key, self.dtype = key, dtype

    class Unpickler(pickle.Unpickler):
        def find_class(self, mod, name):
            if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
                return lambda st, off, size, stride, *a: ("T", st, off, tuple(size), tuple(stride))
            if name.endswith("Storage"):
                return {"FloatStorage": np.float32, "LongStorage": np.int64}.get(name, np.float32)
            if name == "OrderedDict":
                return collections.OrderedDict
            return lambda *a, **k: (mod, name, a)

        def persistent_load(self, pid):
            return Ref(pid[2], pid[1])

    f = io.BytesIO(open(path, "rb").read())
    for _ in range(3):
        pickle.load(f)
    obj = Unpickler(f).load()
    dtypes = {}

    def walk(o):
        if isinstance(o, tuple) and len(o) == 5 and o[0] == "T":
            dtypes[o[1].key] = o[1].dtype
        elif isinstance(o, dict):
            [walk(v) for v in o.values()]
    walk(obj)
    bufs = {}
    for k in pickle.load(f):
        n = struct.unpack("<q", f.read(8))[0]
        dt = np.dtype(dtypes.get(k, np.float32))
        bufs[k] = np.frombuffer(f.read(n * dt.itemsize), dtype=dt)

    def build(o):
        _, st, off, size, stride = o
        b = bufs[st.key]
        return np.lib.stride_tricks.as_strided(
            b[off:], shape=size, strides=[x * b.itemsize for x in stride]).copy()
    return {k: build(v) for k, v in obj["model_state"].items() if isinstance(v, tuple)}


def ge2e(weights):
    import librosa
    W = weights
    sig = lambda x: 1 / (1 + np.exp(-x))

    def embed(wav):
        rms = np.sqrt(np.mean((wav * 32767) ** 2)) + 1e-9
        gain = -30 - 20 * np.log10(rms / 32767)
        wav = wav * 10 ** (gain / 20) if gain > 0 else wav
        x = librosa.feature.melspectrogram(y=wav, sr=SR, n_fft=400, hop_length=160,
                                           n_mels=40).astype(np.float32).T
        for layer in range(3):
            g_in = x @ W[f"lstm.weight_ih_l{layer}"].T + W[f"lstm.bias_ih_l{layer}"] \
                + W[f"lstm.bias_hh_l{layer}"]
            h, c, hs = np.zeros(256, np.float32), np.zeros(256, np.float32), []
            for g in g_in:
                g = g + W[f"lstm.weight_hh_l{layer}"] @ h
                c = sig(g[256:512]) * c + sig(g[:256]) * np.tanh(g[512:768])
                h = sig(g[768:]) * np.tanh(c)
                hs.append(h)
            x = np.array(hs)
        e = np.maximum(W["linear.weight"] @ h + W["linear.bias"], 0)
        return e / (np.linalg.norm(e) + 1e-9)
    return embed


def speaker_scores(d, s, embed):
    stream = read_wav(os.path.join(d, "stream.wav"))
    centroids = {}
    for w, files in json.load(open(os.path.join(d, "candidates.json")))["takes"].items():
        m = np.mean([embed(read_wav(os.path.join(d, f))) for f in files], 0)
        centroids[w] = m / np.linalg.norm(m)
    return [float(centroids[s["labels"][c["word"]]] @ embed(candidate_audio(stream, c)))
            for c in s["candidates"]]


# ---- scoring ----

def rule_margin(s, c, weight=1.0, centre=0.2, margin=0.1):
    cos = max(c["cosines"])
    if c["unknown"] > cos + margin:
        return None
    return c["peak"] + weight * (cos - centre) - s["thresholds"][c["word"]]


def best_at_bars(streams, margins):
    pts = curve(streams, margins)
    return " / ".join(f"{max([r for _, r, fa in pts if fa <= b], default=0):.3f}" for b in BARS)


def auc(pos, neg):
    pos, neg = np.array(pos), np.array(neg)
    return float(((pos[:, None] > neg[None, :]).mean() + (pos[:, None] == neg[None, :]).mean() / 2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--dtw", choices=["lvl", "mfcc"])
    ap.add_argument("--speaker", metavar="PT")
    ap.add_argument("--weights", default="0.1,0.2,0.5,1,2")
    a = ap.parse_args()
    if a.dtw:
        dtw = subsequence_dtw()
        third, ref = (lambda d, s: dtw_scores(d, s, a.dtw, dtw)), -1.0
    elif a.speaker:
        embed = ge2e(torch_legacy_state(a.speaker))
        third, ref = (lambda d, s: speaker_scores(d, s, embed)), 0.6
    else:
        ap.error("name --dtw or --speaker")
    data = load(a.dir)
    for kind in ("s-takes", "s-unknown"):
        streams = sorted(data.get(kind, []), key=lambda x: x[0])
        for seed, s in streams:
            d = os.path.join(a.dir, f"s{seed}-{kind[2:]}")
            for c, x in zip(s["candidates"], third(d, s)):
                c["third"] = x
        groups = [(hit, c) for _, s in streams for c in s["candidates"] for hit in [is_hit(s, c)]]
        for key, name in (("third", "third score"), ("peak", "peak")):
            print(f"{kind}: AUC {name} {auc([c[key] for h, c in groups if h], [c[key] for h, c in groups if not h]):.3f}")
        cos = lambda c: max(c["cosines"])
        print(f"{kind}: AUC word model cosine {auc([cos(c) for h, c in groups if h], [cos(c) for h, c in groups if not h]):.3f}")
        for half, parity in (("odd seeds", 1), ("even seeds", 0)):
            part = [(seed, s) for seed, s in streams if seed % 2 == parity]
            line = [f"{kind} {half}: rule {best_at_bars(part, [[rule_margin(s, c) for c in s['candidates']] for _, s in part])}"]
            for w in map(float, a.weights.split(",")):
                ms = [[None if rule_margin(s, c) is None else rule_margin(s, c) + w * (c["third"] - ref)
                       for c in s["candidates"]] for _, s in part]
                line.append(f"+ {w} x third {best_at_bars(part, ms)}")
            print(" | ".join(line))


if __name__ == "__main__":
    main()
