"""Which audited documents go into training shards, and where each one lands.

The cap is enforced exactly: after dedup and known-output drops, let `flagged` be the kept
documents with `synthetic_likelihood >= threshold`. The most synthetic flagged documents are
dropped until `flagged / kept <= max_share`. Documents labelled `human` are never dropped for
the cap (their label comes from stronger evidence than the detectors: an allow-listed domain, a
pre-ChatGPT crawl date, a confident low score); if they alone exceed the cap, the cap cannot be
met and the filter refuses instead of writing different shards than asked for.

Ranking is by (likelihood descending, doc_id, source_shard, record_position), so the choice
never depends on processing order. Shard layout follows the audit's own order (its files
sorted by name, rows in record order), so the same audit gives the same shards.
"""
import math
from dataclasses import asdict, dataclass

import numpy as np

DEDUP_CHOICES = ("keep-representative", "none")
FORMATS = ("parquet", "jsonl")
NEAR_DUPLICATE, KNOWN_OUTPUT_COPY, SYNTHETIC_CAP = "near_duplicate", "known_output_copy", "synthetic_cap"
DROP_REASONS = (NEAR_DUPLICATE, KNOWN_OUTPUT_COPY, SYNTHETIC_CAP)

# Audit columns the decision needs (text is read only when writing).
DECISION_COLUMNS = ["doc_id", "source_shard", "record_position", "is_representative", "known_match_kind",
                    "synthetic_likelihood", "provenance"]


class CapError(ValueError):
    """The cap cannot be met without dropping documents labelled human."""


@dataclass(frozen=True)
class FilterConfig:
    max_synthetic_share: float = 0.2
    threshold: float = 0.5
    drop_known_matches: bool = False
    dedup: str = "keep-representative"
    format: str = "parquet"
    shard_size: int = 100_000

    def __post_init__(self):
        if not 0.0 <= self.max_synthetic_share <= 1.0:
            raise ValueError(f"--max-synthetic-share {self.max_synthetic_share}: must be in [0, 1]")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"--threshold {self.threshold}: must be in (0, 1]")
        if self.dedup not in DEDUP_CHOICES:
            raise ValueError(f"--dedup {self.dedup}: one of {', '.join(DEDUP_CHOICES)}")
        if self.format not in FORMATS:
            raise ValueError(f"--format {self.format}: one of {', '.join(FORMATS)}")
        if self.shard_size < 1:
            raise ValueError(f"--shard-size {self.shard_size}: must be at least 1")

    def to_dict(self):
        return asdict(self)


def decide(table, config):
    """Per row of a pyarrow table with DECISION_COLUMNS: (reason, flagged, protected).

    `reason` is NEAR_DUPLICATE, KNOWN_OUTPUT_COPY or "" (still a candidate); `flagged` marks
    candidates at or above the threshold; `protected` marks flagged documents labelled human."""
    n = table.num_rows
    reason = np.full(n, "", dtype=f"U{max(map(len, DROP_REASONS))}")
    if config.drop_known_matches:
        known = np.asarray(table.column("known_match_kind").is_valid())
        reason[known] = KNOWN_OUTPUT_COPY
    if config.dedup == "keep-representative":
        rep = table.column("is_representative").to_numpy(zero_copy_only=False).astype(bool)
        reason[~rep] = NEAR_DUPLICATE
    lik = table.column("synthetic_likelihood").to_numpy(zero_copy_only=False).astype(np.float64)
    candidate = reason == ""
    flagged = candidate & ~np.isnan(lik) & (lik >= config.threshold)
    human = np.asarray(table.column("provenance").to_numpy(zero_copy_only=False) == "human", dtype=bool)
    return reason, flagged, flagged & human


def rank_key(likelihood, doc_id, source_shard, record_position):
    """Smaller sorts first = dropped first."""
    return (-float(likelihood), doc_id, source_shard, int(record_position))


def droppable_keys(table, flagged, protected):
    idx = np.flatnonzero(flagged & ~protected)
    cols = [table.column(c).to_pylist() for c in ("synthetic_likelihood", "doc_id", "source_shard",
                                                  "record_position")]
    return [rank_key(cols[0][i], cols[1][i], cols[2][i], cols[3][i]) for i in idx]


def max_flagged(unflagged, cap):
    """Most flagged documents allowed beside `unflagged` others: f / (f + u) <= cap."""
    if cap >= 1.0:
        return math.inf
    # Exact rational bound; the epsilon absorbs float noise in cap * u / (1 - cap).
    return math.floor(cap * unflagged / (1.0 - cap) + 1e-9)


def cap_cutoff(unflagged, protected, keys, cap):
    """(cutoff key or None, number dropped). Documents whose key <= cutoff are dropped."""
    allowed = max_flagged(unflagged, cap)
    if protected > allowed:
        raise CapError(
            f"the cap cannot be met without dropping documents labelled human: {protected} human-labelled "
            f"documents have synthetic_likelihood at or above the threshold, but a share of {cap} allows "
            f"only {allowed} flagged documents beside {unflagged} others; raise --max-synthetic-share or "
            "--threshold")
    n_drop = max(0, protected + len(keys) - allowed) if allowed != math.inf else 0
    if n_drop == 0:
        return None, 0
    keys = sorted(keys)
    return keys[n_drop - 1], n_drop


def dropped_by_cap(table, flagged, protected, cutoff):
    if cutoff is None:
        return np.zeros(table.num_rows, dtype=bool)
    idx = np.flatnonzero(flagged & ~protected)
    out = np.zeros(table.num_rows, dtype=bool)
    for i, key in zip(idx, droppable_keys(table, flagged, protected)):
        out[i] = tuple(key) <= tuple(cutoff)
    return out


def layout(kept_per_file, shard_size):
    """Global offset of each file's first kept document, and the number of shards."""
    offsets = np.concatenate([[0], np.cumsum(kept_per_file, dtype=np.int64)])
    total = int(offsets[-1])
    return [int(o) for o in offsets[:-1]], max(1, math.ceil(total / shard_size)) if total else 0


def pieces(offset, count, shard_size):
    """[(shard number, first, stop)] slices of a file's kept rows (0-based within the file)."""
    out, i = [], 0
    while i < count:
        shard = (offset + i) // shard_size
        stop = min(count, (shard + 1) * shard_size - offset)
        out.append((shard, i, stop))
        i = stop
    return out


def shard_name(shard, total, fmt):
    return f"shard-{shard:05d}-of-{total:05d}." + ("parquet" if fmt == "parquet" else "jsonl.gz")
