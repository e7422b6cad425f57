"""Which documents the language-model tier scores.

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
