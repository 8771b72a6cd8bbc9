#!/usr/bin/env python3
"""A measurement, not a test (CI does not run it): can a speaker-independent phone model tell a
word from its confusable neighbour, where hark's `anyone` heads cannot (a `tree` head fires on
almost every `three` of the crowd)?

Every take of a Speech Commands-style corpus (DIR/<word>/<speaker>_nohash_<n>.wav, 16 kHz) is
force-aligned by PocketSphinx (PyPI `pocketsphinx==5.1.1`, BSD-2-Clause; its bundled en-us
acoustic model, trained on hundreds of speakers) to each word's CMUdict pronunciation. For each
confusable pair (A, B) it prints how often a take of A aligns better to A than to B, and the
other way round: a second stage that rejects a candidate aligning better to a neighbour would
keep the first figure of A's takes and let through one minus the second of B's.

    python3 tests/probes/phonetic_pairs.py ../corpora/speech-commands
"""
import glob, os, sys, wave

from pocketsphinx import Decoder, get_model_path

PAIRS = [("tree", "three"), ("bed", "bird"), ("no", "go"), ("up", "off"), ("on", "off"),
         ("dog", "down"), ("cat", "bed")]


def main(root):
    mp = os.path.join(get_model_path(), "en-us")
    dec = Decoder(hmm=os.path.join(mp, "en-us"), dict=os.path.join(mp, "cmudict-en-us.dict"),
                  lm=None, loglevel="FATAL")
    words = sorted({w for p in PAIRS for w in p})
    score = {}
    for w in words:
        for f in sorted(glob.glob(os.path.join(root, w, "*.wav"))):
            with wave.open(f) as r:
                assert r.getframerate() == 16000 and r.getsampwidth() == 2, f
                pcm = r.readframes(r.getnframes())
            for t in words:
                dec.set_align_text(t)
                dec.start_utt()
                dec.process_raw(pcm, full_utt=True)
                dec.end_utt()
                h = dec.hyp()
                # hyp().score is exp of the path's log score: monotonic, comparable across
                # alignments of one take; a failed alignment ranks last.
                score[(w, f, t)] = h.score if h else -1.0
    takes = {w: sorted({f for (x, f, _) in score if x == w}) for w in words}
    print("| pair A / B | A's takes aligning better to A | B's takes aligning better to B |")
    print("| --- | --- | --- |")
    for a, b in PAIRS:
        ka = sum(score[(a, f, a)] > score[(a, f, b)] for f in takes[a])
        kb = sum(score[(b, f, b)] > score[(b, f, a)] for f in takes[b])
        print(f"| {a} / {b} | {ka}/{len(takes[a])} | {kb}/{len(takes[b])} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../corpora/speech-commands")
