#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): what a second-stage word check would do.

Reads the folders that `hark eval --dump-candidates DIR` writes, embeds each enrolled take and
the audio around each candidate detection with a second pretrained model (EfficientWord-Net's
ResNet-50 ArcFace word embedding, PyPI `efficientword-net==1.0.5`, Apache-2.0; its ONNX file is
the MODEL argument), and scores two rules on the benchmark's own hits and false accepts:

- base: keep a candidate of threshold t (hark as it is, at threshold t);
- fused: keep a candidate of threshold CAND when level + WEIGHT * (similarity - CENTRE) >= x,
  where level is its peak smoothed score and similarity its largest cosine to the word's takes.

Prints, per scenario group, the best recall at <= 0.010, 0.012 and 0.030 false accepts per
non-target word of each rule. Needs numpy, soundfile and onnxruntime.

    python3 tests/probes/word_check.py DIR MODEL.onnx [--cand 0.20] [--weight 1,2]
"""
import argparse, glob, json, os
import numpy as np
import onnxruntime as ort
import soundfile as sf

SR, WINDOW = 16000, 24000  # the model hears 1.5 s


def filterbank(nfilt=64, nfft=512):
    """python_speech_features' mel filterbank, 0 Hz to SR/2 (as the model was trained)."""
    mel = np.linspace(0, 2595 * np.log10(1 + SR / 2 / 700), nfilt + 2)
    bins = np.floor((nfft + 1) * 700 * (10 ** (mel / 2595) - 1) / SR)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(int(bins[j]), int(bins[j + 1])):
            fb[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(int(bins[j + 1]), int(bins[j + 2])):
            fb[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fb


FB = filterbank()


def log_fbank(x):
    """149 frames x 64 log filterbank energies: 25 ms rectangular frames every 10 ms."""
    n = 1 + int(np.ceil((len(x) - 400) / 160))
    x = np.concatenate([x, np.zeros((n - 1) * 160 + 400 - len(x))])
    frames = np.lib.stride_tricks.sliding_window_view(x, 400)[::160][:n]
    power = np.abs(np.fft.rfft(frames, 512)) ** 2 / 512
    feat = power @ FB.T
    return np.log(np.where(feat == 0, np.finfo(float).eps, feat))


class Model:
    def __init__(self, path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        self.s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def embed(self, x):
        """Unit embedding of `x` (float, -1..1) centred in the 1.5 s window."""
        x = x[:WINDOW]
        pad = WINDOW - len(x)
        x = np.concatenate([np.zeros(pad // 2), x, np.zeros(pad - pad // 2)])
        f = log_fbank(x).astype(np.float32)[None, None]
        e = self.s.run(None, {self.s.get_inputs()[0].name: f})[0][0]
        return e / np.linalg.norm(e)


def similarities(model, folder, cand, before, after):
    """The candidates at `cand` of one scenario, each with its largest cosine to its word's takes."""
    d = json.load(open(os.path.join(folder, "candidates.json")))
    x, _ = sf.read(os.path.join(folder, "stream.wav"), dtype="float32")
    refs = {
        w: np.array([model.embed(sf.read(os.path.join(folder, t), dtype="float32")[0]) for t in ts])
        for w, ts in d["takes"].items()
    }
    sims = []
    for c in d["candidates"][cand]:
        a, b = max(0, int((c["time"] - before) * SR)), int((c["time"] + after) * SR)
        sims.append(float((refs[c["word"]] @ model.embed(x[a:b])).max()))
    return d, sims


def curve(scenarios, keep, cand):
    """(false accepts per non-target word, recall) of `keep(candidate, similarity)`."""
    hits = fas = targets = nontargets = 0
    for d, sims in scenarios:
        targets += d["targets"]
        nontargets += d["nontargets"]
        got = set()
        for c, s in zip(d["candidates"][cand], sims):
            if keep(c, s):
                if c["hit"] is None:
                    fas += 1
                else:
                    got.add(c["hit"])
        hits += len(got)
    return fas / nontargets, hits / targets


def best(points, fa):
    return max([r for f, r in points if f <= fa + 1e-9], default=0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("model")
    ap.add_argument("--cand", default="0.20")
    ap.add_argument("--weight", default="1,2")
    ap.add_argument("--centre", type=float, default=0.7)
    ap.add_argument("--before", type=float, default=1.3)
    ap.add_argument("--after", type=float, default=0.2)
    a = ap.parse_args()
    model = Model(a.model)
    groups = {"same speaker": "s*-takes", "+ _unknown_": "s*-unknown",
              "1 -> 3 others": "x*-1", "2 -> 2 others": "x*-2"}
    levels = ["%.2f" % (k * 0.05) for k in range(1, 20)]
    for name, pattern in groups.items():
        folders = sorted(glob.glob(os.path.join(a.dir, pattern)))
        if not folders:
            continue
        scored = [similarities(model, f, a.cand, a.before, a.after) for f in folders]
        # hark as it is: every candidate of each threshold (their similarities are not used).
        raw = [json.load(open(os.path.join(f, "candidates.json"))) for f in folders]
        base = [curve([(d, [0] * len(d["candidates"][t])) for d in raw], lambda c, s: True, t) for t in levels]
        line = "  ".join("%.3f @ %.3f" % (best(base, fa), fa) for fa in (0.010, 0.012, 0.030))
        print(f"{name:16s} hark       {line}")
        for w in (float(v) for v in a.weight.split(",")):
            pts = [curve(scored, lambda c, s: c["level"] + w * (s - a.centre) >= x, a.cand)
                   for x in np.arange(-1.0, 2.0, 0.01)]
            line = "  ".join("%.3f @ %.3f" % (best(pts, fa), fa) for fa in (0.010, 0.012, 0.030))
            print(f"{'':16s} + check w{w:<3} {line}")


if __name__ == "__main__":
    main()
