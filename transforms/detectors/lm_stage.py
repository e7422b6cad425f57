"""Which documents the language-model tier scores, and its columns for them.

The LM costs hundreds of times what the fast stack does per document on a CPU, so an audit
chooses: every document (`all`, for GPU workers or small crawls), a sample (`sample`), or none
(`off`). The sample is a fixed share of doc_id hashes, so reruns, worker counts and runners
score the same documents, and it is uniform over the crawl, so the sample's share estimate is
an unbiased view of the whole. Only a cluster's representative is scored, and its members
take its statistics (lm_pass.py); near copies of known outputs are skipped, being machine
text already.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from corpus_audit.transforms.dedup.graph import id_hashes
from corpus_audit.transforms.detectors.model_io import LM_FEATURES

LM_MODES = ("off", "sample", "all")
SAMPLE_SEED = 0x1A7E5  # fixed: the sample must not change between runs
_SCALE = float(2 ** 64)
DEFAULT_MODE = "off"
DEFAULT_SAMPLE_RATE = 0.01
DEFAULT_TOKENS = 128


@dataclass(frozen=True)
class LMOptions:
    mode: str = DEFAULT_MODE
    sample_rate: float = DEFAULT_SAMPLE_RATE
    tokens: int = DEFAULT_TOKENS
    threads: int = None  # None: the worker's cores
    gpu_layers: int = 0


def lm_selection(doc_ids, is_representative, mode, rate):
    """Boolean mask of the documents the LM scores."""
    n = len(doc_ids)
    if mode == "off" or n == 0:
        return np.zeros(n, dtype=bool)
    rep = np.asarray(is_representative, dtype=bool)
    if mode == "all":
        return rep
    if mode != "sample":
        raise ValueError(f"--lm-detector must be one of {', '.join(LM_MODES)}, not {mode!r}")
    return rep & (id_hashes(doc_ids, SAMPLE_SEED) / _SCALE < float(rate))


def lm_columns(scorer, model, selected, texts):
    """{lm_*: float64 array, det_lm: float64 array} over all rows, NaN outside `selected`;
    `texts` are the selected rows' texts only (the others are never read)."""
    n = len(selected)
    out = {k: np.full(n, np.nan) for k in LM_FEATURES}
    idx = np.flatnonzero(selected)
    if scorer is not None and len(idx):
        feats = scorer.features(texts)
        for k in LM_FEATURES:
            out[k][idx] = feats[k]
    out["det_lm"] = model.score_lm(out) if model is not None and model.has_lm else np.full(n, np.nan)
    return out
