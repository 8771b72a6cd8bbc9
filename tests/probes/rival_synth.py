#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): can synthetic takes of a word's rivals tell
the word from them in a crowd, as heard by the word model?

For each pair A/B of confusable command words, every real take of A and of B in a corpus
(`hark eval --corpus` layout: DIR/<word>/*.wav) is embedded with the word model (EfficientWord-
Net, MODEL), and so are N synthetic takes of A and of B (espeak-ng and flite voices at several
speeds and pitches). A take is "nearer its own word" when its mean top-3 cosine to the synthetic
takes of its word beats that to the rival's. Prints, per pair, how many takes of each word are
nearer their own. Needs numpy, soundfile, onnxruntime, espeak-ng, flite, sox.

    python3 tests/probes/rival_synth.py CORPUS MODEL.onnx [--takes 24]
"""
import argparse, os, subprocess, sys, tempfile, glob
import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(__file__))
from word_check import Model  # noqa: E402

PAIRS = [("tree", "three"), ("bed", "bird"), ("no", "go"), ("up", "off"), ("on", "off"),
         ("dog", "down"), ("cat", "bed"), ("four", "for"), ("right", "write")]
ESPEAK = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc",
          "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = ["", "+f2", "+m3", "+f4", "+m1", "+klatt"]
FLITE = ["kal", "awb", "rms", "slt", "kal16"]


def synth(text, n, seed):
    rng = np.random.default_rng(seed)
    out = []
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            raw, wav = os.path.join(d, "r.wav"), os.path.join(d, "o.wav")
            if i % 3 == 2:
                v = FLITE[rng.integers(len(FLITE))]
                subprocess.run(["flite", "-voice", v, "-t", text, "-o", raw], check=True)
            else:
                v = ESPEAK[rng.integers(len(ESPEAK))] + VARIANTS[rng.integers(len(VARIANTS))]
                subprocess.run(["espeak-ng", "-v", v, "-s", str(rng.integers(130, 190)),
                                "-p", str(rng.integers(30, 70)), "-w", raw, text], check=True)
            subprocess.run(["sox", "-q", raw, "-r", "16000", "-c", "1", "-b", "16", wav],
                           check=True)
            out.append(sf.read(wav, dtype="float32")[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("model")
    ap.add_argument("--takes", type=int, default=24)
    a = ap.parse_args()
    m = Model(a.model)
    words = sorted({w for p in PAIRS for w in p})
    tts = {w: np.array([m.embed(x) for x in synth(w, a.takes, hash(w) % 1000)]) for w in words}
    real = {}
    for w in words:
        files = sorted(glob.glob(os.path.join(a.corpus, w, "*.wav")))
        real[w] = np.array([m.embed(sf.read(f, dtype="float32")[0]) for f in files])

    def near(e, w):
        return np.sort(tts[w] @ e)[-3:].mean()

    for x, y in PAIRS:
        cells = []
        for own, other in ((x, y), (y, x)):
            if len(real[own]) == 0:
                cells.append("-")
                continue
            wins = sum(near(e, own) > near(e, other) for e in real[own])
            cells.append("%d/%d" % (wins, len(real[own])))
        print("%s / %s: %s, %s" % (x, y, cells[0], cells[1]))


if __name__ == "__main__":
    main()
