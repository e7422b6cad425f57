"""Cache the LM detector's features for a deterministic, stratified sample of labelled rows.

    python scripts/lm_features.py --data TRAIN.jsonl.gz EXTRA.jsonl.gz --out lm_features.npz \
        [--n-tokens 128] [--also 64] [--max-rows-per-cell 20] [--threads 2]

The LM costs ~1 s per document on one CPU core, so training reads these features by id
(`train --lm-features`) instead of scoring on the fly. Sample: English human/machine rows (mixed
dropped); in every (source, domain, label, generator) cell the first K rows by sha1(id). The
output holds ids and features only (never text: the extra file's texts must not enter the
repository), written with allow_pickle-free arrays; rows are in sample order (sorted by cell,
then sha1(id)), so the file is the same bytes for the same inputs.
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


def sample_rows(paths, k):
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
    return [(i, t) for _, i, t in out], len(cells)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-tokens", type=int, default=128)
    ap.add_argument("--also", type=int, nargs="*", default=[64], help="shorter prefixes from the same pass")
    ap.add_argument("--max-rows-per-cell", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="first rows of the sample only (smoke tests)")
    a = ap.parse_args(argv)
    from corpus_audit.transforms.detectors.lm import LMScorer

    rows, n_cells = sample_rows(a.data, a.max_rows_per_cell)
    if a.limit:
        rows = rows[: a.limit]
    print(f"{len(rows)} rows from {n_cells} cells", file=sys.stderr, flush=True)
    scorer = LMScorer(n_tokens=a.n_tokens, n_threads=a.threads)
    feats, t0, step = defaultdict(list), time.perf_counter(), 50
    for s in range(0, len(rows), step):
        for k, v in scorer.features([t for _, t in rows[s: s + step]], also_n=a.also).items():
            feats[k].append(v)
        done = min(s + step, len(rows))
        dt = time.perf_counter() - t0
        print(f"  {done}/{len(rows)} {done / dt:.2f} docs/s, eta {(len(rows) - done) * dt / done / 60:.1f} min",
              file=sys.stderr, flush=True)
    arrays = {"id": np.array([i for i, _ in rows], dtype=str)}
    arrays.update({k: np.concatenate(v) for k, v in sorted(feats.items())})
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {len(rows)} rows, keys {sorted(arrays)}", file=sys.stderr)


if __name__ == "__main__":
    main()
