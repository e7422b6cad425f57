"""The LM tier as its own pass: score each chosen cluster representative once, and give its
statistics to the cluster's other members wherever they are.

Near-duplicates share their text, so scoring them again would only cost the LM; but leaving
them unscored would give two copies of one text different likelihoods (one with the LM, one
without). The pass reads each staged shard with its cluster annotations, scores the chosen
representatives there, and sends (cluster id, statistics) through one shuffle to the shards of
the members: only floats cross it, never text. Its output is annotations for the write pass.
"""
from __future__ import annotations

import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus_audit.transforms.detectors.ensemble import NEAR_COPY_SIMILARITY
from corpus_audit.transforms.detectors.lm_stage import lm_selection
from corpus_audit.transforms.detectors.model_io import LM_FEATURES
from corpus_audit.transforms.language import ENGLISH

ANNOTATION_LM = "lm"
SHARED, MEMBERS = "lm_shared", "lm_members"


def lm_targets(cols, english, mode, rate):
    """(scored, members): the rows the LM reads, and the rows that take their representative's
    statistics. Both are English and not near copies of known outputs (those are machine text
    already); members are the non-representatives of multi-document clusters."""
    eligible = english & ~(np.nan_to_num(cols["known_similarity"]) >= NEAR_COPY_SIMILARITY)
    scored = lm_selection(cols["doc_id"], cols["is_representative"], mode, rate) & eligible
    members = eligible & ~cols["is_representative"] & (cols["cluster_size"] > 1) if mode != "off" \
        else np.zeros(len(english), dtype=bool)
    return scored, members


def texts_of_rows(pf, rows):
    """The `text` values of sorted `rows`, one list per row group that holds any of them: a
    sampled audit reads only those groups, and never more than one group's texts at a time."""
    starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
    groups = np.searchsorted(starts, rows, side="right") - 1
    for g in np.unique(groups):
        local = rows[groups == g] - starts[g]
        yield pf.read_row_group(int(g), columns=["text"]).column(0).take(pa.array(local)).to_pylist()


def lm_from_annotations(n, annotations):
    """{lm_*: float64 array} of one shard, NaN for rows no LM annotation covers."""
    out = {k: np.full(n, np.nan) for k in LM_FEATURES}
    for ann in annotations:
        if ann[0] == ANNOTATION_LM:
            _, rows, values = ann
            for j, k in enumerate(LM_FEATURES):
                out[k][rows] = values[:, j]
    return out


class ScoreRepresentatives(beam.DoFn):
    """(shard, {staged, annotations}) → LM annotations of the shard's scored rows; SHARED:
    (cluster id, statistics) of scored representatives with members; MEMBERS: (cluster id,
    (shard, row)) of rows that wait for them; "counts"."""

    def __init__(self, lm, known_checked):
        self.lm, self.known_checked = lm, known_checked

    def setup(self):
        from corpus_audit.transforms.detectors.lm import LMScorer

        self.scorer = LMScorer(n_tokens=self.lm.tokens, n_threads=self.lm.threads, n_gpu_layers=self.lm.gpu_layers)

    def _score(self, texts):
        feats = self.scorer.features(texts)
        return np.column_stack([np.asarray(feats[k], dtype=np.float64) for k in LM_FEATURES])

    def process(self, element):
        from corpus_audit.transforms.audit.write_documents import annotation_columns

        t0 = time.perf_counter()
        shard, grouped = element
        (staged,) = grouped["staged"]
        pf = pq.ParquetFile(FileSystems.open(staged))
        table = pf.read(columns=["doc_id", "language"])
        cols = annotation_columns(table.column("doc_id").to_pylist(), list(grouped["annotations"]),
                                  self.known_checked)
        english = np.array([c == ENGLISH for c in table.column("language").to_pylist()], dtype=bool)
        scored, members = lm_targets(cols, english, self.lm.mode, self.lm.sample_rate)
        rows = np.flatnonzero(scored)
        if len(rows):
            values = np.concatenate([self._score(texts) for texts in texts_of_rows(pf, rows)])
            yield shard, (ANNOTATION_LM, rows, values)
        for i, row in enumerate(rows):
            if cols["cluster_size"][row] > 1:
                yield beam.pvalue.TaggedOutput(SHARED, (cols["cluster_id"][row], values[i]))
        for row in np.flatnonzero(members):
            yield beam.pvalue.TaggedOutput(MEMBERS, (cols["cluster_id"][row], (shard, int(row))))
        yield beam.pvalue.TaggedOutput("counts", {"lm_scored": len(rows),
                                                  "stage_seconds.lm_detector": time.perf_counter() - t0})


def give_to_members(element):
    """(cluster id, {SHARED: [statistics], MEMBERS: [(shard, row)]}) → one LM annotation per
    member shard; a cluster whose representative was not scored gives nothing."""
    _, grouped = element
    shared = list(grouped[SHARED])
    if not shared:
        return
    by_shard = {}
    for shard, row in grouped[MEMBERS]:
        by_shard.setdefault(shard, []).append(row)
    for shard, rows in sorted(by_shard.items()):
        rows = np.array(sorted(rows), dtype=np.int64)
        yield shard, (ANNOTATION_LM, rows, np.repeat(shared[0][None, :], len(rows), axis=0))
