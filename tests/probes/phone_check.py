#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): would a phone model as a third score of the
word check make `anyone` heads precise on a crowd?

Reads the folders `hark eval --corpus DIR --dump-candidates OUT` writes (`p<seed>-<takes>`: the
stream, the enrolled takes, `checks.json`). For each candidate the word check hears, the same
window of the stream (1.3 s before to 0.2 s after) is force-aligned by PocketSphinx (PyPI
`pocketsphinx==5.1.1`, its en-us model) to the word and to each of its rivals: the nearest
words of hark's neighbour vocabulary in espeak-ng's phonemes (`src/train/neighbours.rs`, ported
here), those CMUdict knows. The margin is (log score of the word - best log score of a rival)
per 10 ms frame. The rule scored: fused = peak + 1.75 * (cosine - 0.255) + P * clamp(margin,
-M, M) >= the word's threshold. Prints recall and false accepts per non-target word, per P
and M.

    python3 tests/probes/phone_check.py OUT [--rivals 8] [--weights 0,0.1,0.2,0.4] [--clamps 1,3]
"""
import argparse, glob, json, math, os, re, subprocess, sys
import numpy as np
import soundfile as sf
from pocketsphinx import Decoder, get_model_path

SR = 16000
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def vocabulary():
    text = open(os.path.join(ROOT, "src/train/negatives.rs")).read()
    words = re.search(r'pub const WORDS: &str = "(.*?)";', text, re.S).group(1)
    near = open(os.path.join(ROOT, "src/train/neighbours.rs")).read()
    more = [re.search(r'const %s: &str = "(.*?)";' % k, near, re.S).group(1)
            for k in ("NUMBERS", "SHORT")]
    return sorted(set((words + " " + " ".join(more)).replace("\\\n", " ").split()))


def phonemes(words):
    out = subprocess.run(["espeak-ng", "-q", "-v", "en-us", "-x", "--sep=_"],
                         input="".join(w + ".\n" for w in words), capture_output=True,
                         text=True).stdout
    lines = [[p.strip("',;") for p in re.split("[_ ]", l) if p.strip("',;")]
             for l in out.splitlines()]
    lines = [l for l in lines if l]
    assert len(lines) == len(words), (len(lines), len(words))
    return lines


def vowel(p):
    return p[0] in "aeiouAEIOUV@03"


def distance(a, b):
    row = list(range(len(b) + 1))
    for i, pa in enumerate(a):
        diag, row[0] = row[0], i + 1
        for j, pb in enumerate(b):
            sub = 0 if pa == pb else (0.5 if vowel(pa) and vowel(pb) else 1)
            nxt = min(row[j + 1] + 1, row[j] + 1, diag + sub)
            diag, row[j + 1] = row[j + 1], nxt
    return row[len(b)]


def rivals(word, vocab, sounds, k, lexicon):
    w = phonemes([word])[0]
    scored = []
    for i, (v, p) in enumerate(zip(vocab, sounds)):
        d = distance(w, p)
        if v != word and 1 <= d <= 1 + max(len(w), len(p)) / 3 and v in lexicon:
            scored.append((d, i))
    return [vocab[i] for _, i in sorted(scored)[:k]]


class Aligner:
    def __init__(self):
        mp = os.path.join(get_model_path(), "en-us")
        self.d = Decoder(hmm=os.path.join(mp, "en-us"), dict=os.path.join(mp, "cmudict-en-us.dict"),
                         lm=None, loglevel="FATAL")
        self.lexicon = {l.split()[0] for l in open(os.path.join(mp, "cmudict-en-us.dict"))}

    def score(self, pcm, word):
        """Log score (natural log) per frame of `pcm` aligned to `word`, or None."""
        self.d.set_align_text(word)
        self.d.start_utt()
        self.d.process_raw(pcm, full_utt=True)
        self.d.end_utt()
        h = self.d.hyp()
        if h is None:
            return None
        frames = max(1, len(pcm) // 2 // 160)
        return self.d.get_logmath().log(h.score) / frames if h.score > 0 else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--rivals", type=int, default=8)
    ap.add_argument("--weights", default="0,0.05,0.1,0.2,0.4")
    ap.add_argument("--clamps", default="1,3")
    a = ap.parse_args()
    al = Aligner()
    vocab = vocabulary()
    sounds = phonemes(vocab)
    rows = []  # (folder, candidate, margin)
    folders = sorted(glob.glob(os.path.join(a.dir, "p*-*")))
    cache = {}
    for f in folders:
        c = json.load(open(os.path.join(f, "checks.json")))
        word = c["labels"][0]
        if word not in cache:
            cache[word] = rivals(word, vocab, sounds, a.rivals, al.lexicon)
            print(f"{word}: rivals {' '.join(cache[word])}", file=sys.stderr)
        x, _ = sf.read(os.path.join(f, "stream.wav"), dtype="int16")
        margins = []
        for cand in c["candidates"]:
            s, e = max(0, int((cand["time"] - 1.3) * SR)), int((cand["time"] + 0.2) * SR)
            pcm = x[s:e].tobytes()
            own = al.score(pcm, word)
            other = [al.score(pcm, r) for r in cache[word]]
            other = [o for o in other if o is not None]
            if own is None or not other:
                margins.append(0.0)
            else:
                margins.append(own - max(other))
        rows.append((f, c, margins))
    for name in sorted({os.path.basename(f).split("-")[1] for f in folders}):
        group = [r for r in rows if os.path.basename(r[0]).split("-")[1] == name]
        for p, clamp in [(float(w), float(k)) for k in a.clamps.split(",")
                         for w in a.weights.split(",")]:
            hits = targets = fas = non = near = 0
            for f, c, margins in group:
                th = c["thresholds"][0]
                targets += c["targets"]
                non += c["nontargets"]
                got, bad = set(), set()
                for cand, m in zip(c["candidates"], margins):
                    fused = cand["peak"] + 1.75 * (max(cand["cosines"]) - 0.255)
                    fused += p * max(-clamp, min(clamp, m))
                    if fused < th:
                        continue
                    if cand["truth_word"] == c["labels"][0]:
                        got.add(cand["truth"])
                    else:
                        bad.add(cand["truth"] if cand["truth"] is not None else ("t", cand["time"]))
                hits += len(got)
                fas += len(bad)
            print(f"takes {name}  P {p:<5} clamp {clamp:<4} recall {hits / targets:.3f}  FA/non-target {fas / non:.4f}"
                  f"  ({hits}/{targets}, {fas}/{non})")


if __name__ == "__main__":
    main()
