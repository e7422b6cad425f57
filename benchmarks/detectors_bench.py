"""Scoring speed of the detectors + ensemble on one core (a measurement script, not a test).

    taskset -c 0 python benchmarks/detectors_bench.py [DATA.jsonl.gz] [--model DIR]

Takes English texts of at least 2,400 characters from the data file, cuts them to 2,400
characters, and reports µs/doc per stage and end-to-end docs/s (score_detectors + likelihood +
the language column, i.e. what the audit runs per document for the detector columns).

    python benchmarks/detectors_bench.py --lm [--lm-only] [--lm-docs 12]

adds the language-model tier (transforms/detectors/lm.py): docs/s and tokens/s per core at
N = 64, 128, 256 tokens with 1 thread and with 2, the peak RSS of a process with the model loaded,
and the LM's implied GFLOP/s (2 x params x tokens/s) beside this machine's single-thread numpy
float32 matmul GFLOP/s from the same run. Wall-clock figures suffer when the cores are shared;
the "per CPU-second" figures much less.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np

from corpus_audit.transforms.detectors.base import normalize_text, tokenize_batch
from corpus_audit.transforms.detectors.model_io import load_default_model, load_model
from corpus_audit.transforms.language import LanguageIdentifier

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "data",
                            "detect-sample.jsonl.gz")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data", nargs="?", default=DEFAULT_DATA)
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--chars", type=int, default=2400)
    ap.add_argument("--lm", action="store_true", help="also benchmark the LM detector")
    ap.add_argument("--lm-only", action="store_true", help="only the LM detector")
    ap.add_argument("--lm-docs", type=int, default=12)
    a = ap.parse_args()
    if a.lm_only:
        return lm_bench(_read_texts(a.data, a.lm_docs, a.chars))
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
    lang = LanguageIdentifier()
    print(f"  language     {best_of_3(lambda: lang.identify(texts)):7.0f} µs/doc (language column, audit call site)")
    best = cpu = None
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        m.likelihood(m.score_detectors(texts))
        lang.identify(texts)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        best = dt if best is None else min(best, dt)
        cpu = dc if cpu is None else min(cpu, dc)
    print(f"end-to-end: {1e6 * best / len(texts):.0f} µs/doc = {len(texts) / best:.0f} docs/s on one core "
          f"({len(texts) / cpu:.0f} docs per CPU second)")
    if a.lm:
        lm_bench(texts[: a.lm_docs])


def _read_texts(path, n, chars):
    texts = []
    with gzip.open(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r.get("language", "en") == "en" and len(r["text"]) >= chars:
                texts.append(r["text"][:chars])
                if len(texts) >= n:
                    break
    return texts


def matmul_gflops(n=1024, reps=10):
    """Single-thread numpy float32 matmul GFLOP/s (best of `reps`): the CPU's dense-compute yardstick."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    with threadpool_limits(1):
        x @ y
        best = min(_timed(lambda: x @ y) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


_RSS_PROBE = """
import resource, sys

def peak_kib():  # VmHWM: ru_maxrss of a child keeps the forked parent's peak across exec
    try:
        with open("/proc/self/status") as f:
            return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import numpy, llama_cpp
from corpus_audit.transforms.detectors.lm import LMScorer
base = peak_kib()
s = LMScorer(n_tokens=256, n_threads=1)
s.features([sys.stdin.read()])
print(base, peak_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def lm_bench(texts):
    """The LM tier: speed at N = 64/128/256 and 1/2 threads, peak RSS, implied vs matmul GFLOP/s."""
    import subprocess
    import sys

    from corpus_audit.transforms.detectors.lm import LMScorer

    print(f"LM detector (SmolLM2-135M Q4_1, llama.cpp), {len(texts)} docs of {len(texts[0])} chars:")
    gf = matmul_gflops()
    print(f"  numpy float32 1024x1024 matmul, 1 thread: {gf:.1f} GFLOP/s")
    cores = len(os.sched_getaffinity(0))
    for threads in sorted({1, min(2, cores)}):
        for n in (64, 128, 256):
            s = LMScorer(n_tokens=n, n_threads=threads)
            s.features(texts[:2])  # warm-up
            toks = [s.tokens(t) for t in texts]
            assert all(len(t) == n for t in toks), "texts shorter than N tokens"
            t0, c0 = time.perf_counter(), time.process_time()
            s.features(texts)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            t1 = time.perf_counter()
            for t in toks:
                s._logits(t)
            de = time.perf_counter() - t1
            tps = len(texts) * n / dt
            implied = 2 * s.n_params * tps / threads / 1e9
            print(f"  N={n:3d} threads={threads}: {len(texts) / dt / threads:6.2f} docs/s/core, "
                  f"{tps / threads:5.0f} tokens/s/core (wall); {len(texts) / dc:6.2f} docs and "
                  f"{len(texts) * n / dc:5.0f} tokens per CPU-second; llama.cpp share {de / dt:.0%}; "
                  f"implied {implied:5.1f} GFLOP/s/core = {implied / gf:.0%} of matmul")
    probe = subprocess.run([sys.executable, "-c", _RSS_PROBE], input=texts[0], capture_output=True,
                           text=True, check=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    base, peak, ru = (int(v) for v in probe.stdout.split())
    print(f"  peak RSS of a process with the model loaded and N=256 scored: {peak / 1024:.0f} MiB "
          f"(VmHWM; after importing numpy + llama_cpp: {base / 1024:.0f} MiB; getrusage ru_maxrss "
          f"{ru / 1024:.0f} MiB); params {s.n_params / 1e6:.0f} M")


if __name__ == "__main__":
    main()
