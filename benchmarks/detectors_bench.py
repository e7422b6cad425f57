"""Scoring speed of the detectors + ensemble on one core (a measurement script, not a test).

    taskset -c 0 python benchmarks/detectors_bench.py [DATA.jsonl.gz] [--model DIR]

Takes English texts of at least 2,400 characters from the data file, cuts them to 2,400
characters, and reports µs/doc per stage and end-to-end docs/s (score_detectors + likelihood +
the language flag, i.e. what the audit runs per document for the detector columns).
"""
import argparse
import gzip
import json
import os
import time

import numpy as np

from corpus_audit.transforms.detectors.base import guess_is_english, normalize_text, tokenize_batch
from corpus_audit.transforms.detectors.model_io import load_default_model, load_model

DEFAULT_DATA = os.path.join(os.getcwd(), "..", "shared", "data", "detect", "train.jsonl.gz")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--chars", type=int, default=2400)
    a = ap.parse_args()
    m = load_model(a.model) if a.model else load_default_model()
    texts = []
    with gzip.open(a.data, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r.get("language", "en") == "en" and len(r["text"]) >= a.chars:
                texts.append(r["text"][: a.chars])
                if len(texts) >= a.n:
                    break
    print(f"{len(texts)} docs, {np.mean([len(t.encode()) for t in texts]):.0f} bytes each; "
          f"affinity {sorted(os.sched_getaffinity(0))}")
    m.score_detectors(texts[:20])  # warm-up
    def best_of_3(fn):
        out = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return 1e6 * min(out) / len(texts)

    norm = [normalize_text(t) for t in texts]
    print(f"  normalize    {best_of_3(lambda: [normalize_text(t) for t in texts]):7.0f} µs/doc")
    print(f"  tokenize     {best_of_3(lambda: tokenize_batch(norm)):7.0f} µs/doc (shared by detectors marked *)")
    tokens = tokenize_batch(norm)
    for name, det in m.detectors.items():
        if getattr(det, "uses_tokens", False):
            print(f"  {name + ' *':12s} {best_of_3(lambda: det.score(norm, tokens)):7.0f} µs/doc")
        else:
            print(f"  {name:12s} {best_of_3(lambda: det.score(norm)):7.0f} µs/doc")
    sc = m.score_detectors(texts)
    m.likelihood(sc)  # warm-up (imports)
    print(f"  ensemble     {best_of_3(lambda: m.likelihood(sc)):7.0f} µs/doc")
    print(f"  is_english   {best_of_3(lambda: guess_is_english(texts)):7.0f} µs/doc (language flag, audit call site)")
    best = cpu = None
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        m.likelihood(m.score_detectors(texts))
        guess_is_english(texts)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        best = dt if best is None else min(best, dt)
        cpu = dc if cpu is None else min(cpu, dc)
    print(f"end-to-end: {1e6 * best / len(texts):.0f} µs/doc = {len(texts) / best:.0f} docs/s on one core "
          f"({len(texts) / cpu:.0f} docs per CPU second)")


if __name__ == "__main__":
    main()
