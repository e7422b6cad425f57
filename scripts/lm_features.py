"""Cache the LM detector's features for a deterministic, stratified sample of labelled rows.

    python scripts/lm_features.py --data TRAIN.jsonl.gz EXTRA.jsonl.gz --out lm_features.npz \
        [--n-tokens 128] [--also 64] [--max-rows-per-cell 20] [--human-per-source 0] \
        [--extend OLD.npz] [--threads 1] [--workers 2]

The LM costs ~1 s per document on one CPU core, so training reads these features by id
(`train --lm-features`) instead of scoring on the fly. Sample: English human/machine rows (mixed
dropped); in every (source, domain, label, generator) cell the first K rows by sha1(id), and
with --human-per-source H each source's human rows topped up to H (first by sha1(id)), enough
for the anchored share check of the stack with the LM (it needs 200 per source). --extend
copies the rows an earlier cache already scored instead of scoring them again. The
output holds ids and features only (never text: the extra file's texts must not enter the
repository), the prefix length of the unsuffixed columns (`n_tokens`) and the warm-up the
statistics leave out (`warmup_tokens`), written with allow_pickle-free arrays; rows are in
sample order (sorted by cell, then sha1(id)), so the file is the same bytes for the same inputs.
"""
import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from collections import defaultdict

import numpy as np


def sample_rows(paths, k, human_per_source=0):
    """Texts as training sees them: the development sources' layout artefacts stripped."""
    from corpus_audit.pipelines.train import strip_layout_artefacts
    from corpus_audit.transforms.detectors.base import to_text

    cells = defaultdict(list)
    for p in paths:
        with gzip.open(p, "rt", encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if r.get("label") not in ("human", "machine") or r.get("language") != "en":
                    continue
                key = (r["source"], r["domain"], r["label"], r["generator"])
                text = strip_layout_artefacts(to_text(r["text"]))
                cells[key].append((hashlib.sha1(r["id"].encode()).hexdigest(), r["id"], text))
    out = []
    for key in sorted(cells):
        out.extend(sorted(cells[key])[:k] if k else sorted(cells[key]))
    if human_per_source:
        chosen = {i for _, i, _ in out}
        for source in sorted({key[0] for key in cells}):
            humans = sorted(row for key in cells if key[0] == source and key[2] == "human" for row in cells[key])
            have = sum(1 for _, i, _ in humans if i in chosen)
            out.extend([row for row in humans if row[1] not in chosen][:max(0, human_per_source - have)])
    return [(i, t) for _, i, t in out], len(cells)


_SCORER = None


def _start_worker(n_tokens, threads):
    global _SCORER
    from corpus_audit.transforms.detectors.lm import LMScorer

    _SCORER = LMScorer(n_tokens=n_tokens, n_threads=threads)


def _score_chunk(texts, also):
    return _SCORER.features(texts, also_n=also)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-tokens", type=int, default=128)
    ap.add_argument("--also", type=int, nargs="*", default=[64], help="shorter prefixes from the same pass")
    ap.add_argument("--max-rows-per-cell", type=int, default=20)
    ap.add_argument("--human-per-source", type=int, default=0)
    ap.add_argument("--extend", default=None, help="an earlier cache whose rows are copied, not rescored")
    ap.add_argument("--threads", type=int, default=None, help="per scorer (with --workers: default 1)")
    ap.add_argument("--workers", type=int, default=1,
                    help="scoring processes; llama.cpp's second thread adds little, a second process nearly doubles")
    ap.add_argument("--limit", type=int, default=None, help="first rows of the sample only (smoke tests)")
    a = ap.parse_args(argv)
    from corpus_audit.pipelines.train import cached_prefix_length, check_cached_warmup
    from corpus_audit.transforms.detectors.lm import WARMUP_TOKENS
    from corpus_audit.transforms.detectors.model_io import LM_FEATURES

    rows, n_cells = sample_rows(a.data, a.max_rows_per_cell, a.human_per_source)
    if a.limit:
        rows = rows[: a.limit]
    keys = sorted(k + sfx for k in LM_FEATURES for sfx in ["", *(f"_{n}" for n in a.also)])
    scored = {}  # column -> id -> value, from --extend and then from this run
    if a.extend:  # checked before the slow pass: its columns must be this run's
        with np.load(a.extend, allow_pickle=False) as z:
            if sorted(k for k in z.files if k not in ("id", "n_tokens", "warmup_tokens")) != keys:
                raise SystemExit(f"--extend {a.extend}: its columns {sorted(z.files)} are not this run's {keys}")
            if cached_prefix_length(z) != a.n_tokens:
                raise SystemExit(f"--extend {a.extend}: scored over {cached_prefix_length(z)} tokens, "
                                 f"this run over {a.n_tokens}")
            try:
                check_cached_warmup(z, f"--extend {a.extend}")
            except ValueError as exc:
                raise SystemExit(str(exc)) from None
            scored = {k: dict(zip(z["id"].tolist(), z[k])) for k in keys}
    todo = [(i, t) for i, t in rows if i not in scored.get(keys[0], {})]
    print(f"{len(rows)} rows from {n_cells} cells, {len(todo)} to score", file=sys.stderr, flush=True)
    feats, t0, step = defaultdict(list), time.perf_counter(), 50
    chunks = [[t for _, t in todo[s: s + step]] for s in range(0, len(todo), step)]
    pool = None
    if a.workers > 1 and chunks:
        import concurrent.futures
        import multiprocessing

        pool = concurrent.futures.ProcessPoolExecutor(a.workers, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=_start_worker, initargs=(a.n_tokens, a.threads or 1))
        results = pool.map(_score_chunk, chunks, [a.also] * len(chunks))  # in chunk order
    else:
        if chunks:
            _start_worker(a.n_tokens, a.threads)
        results = (_score_chunk(c, a.also) for c in chunks)
    for s, result in zip(range(0, len(todo), step), results):
        for k, v in result.items():
            feats[k].append(v)
        done = min(s + step, len(todo))
        dt = time.perf_counter() - t0
        print(f"  {done}/{len(todo)} {done / dt:.2f} docs/s, eta {(len(todo) - done) * dt / done / 60:.1f} min",
              file=sys.stderr, flush=True)
    if pool is not None:
        pool.shutdown()
    for k, v in feats.items():
        scored.setdefault(k, {}).update(zip([i for i, _ in todo], np.concatenate(v)))
    arrays = {"id": np.array([i for i, _ in rows], dtype=str), "n_tokens": np.array([a.n_tokens]),
              "warmup_tokens": np.array([WARMUP_TOKENS])}
    arrays.update({k: np.array([scored[k][i] for i, _ in rows], dtype=np.float64) for k in keys})
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {len(rows)} rows, keys {sorted(arrays)}", file=sys.stderr)


if __name__ == "__main__":
    main()
