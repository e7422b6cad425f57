"""Pure numpy cores of the seen-pages join, testable without Beam.

"When was this text first seen" is one uint64 per capture: `seen_key(day, run rank)` orders
captures by date, then run id (the rank in the sorted list of run ids), so the earliest of
several matches is a plain minimum, the same on every worker and in every order.
"""
import datetime as _dt

import numpy as np

from corpus_audit.transforms.dedup import graph

ANNOTATION_SEEN = "seen"          # (rows, earliest seen key, exact match)
ANNOTATION_SEEN_URL = "seen_url"  # (rows, text changed since the URL's latest capture, that capture was human)
EXACT, NEAR = "exact", "near"
NEVER = np.uint64(np.iinfo(np.uint64).max)
_DAY_OFFSET = 1 << 31
_RANK_BITS = np.uint64(24)
_EPOCH = _dt.date(1970, 1, 1)


def seen_key(days, ranks):
    days = np.asarray(days, dtype=np.int64) + _DAY_OFFSET
    return (days.astype(np.uint64) << _RANK_BITS) | np.asarray(ranks, dtype=np.uint64)


def key_day(keys):
    return (np.asarray(keys, dtype=np.uint64) >> _RANK_BITS).astype(np.int64) - _DAY_OFFSET


def key_rank(keys):
    return (np.asarray(keys, dtype=np.uint64) & np.uint64((1 << 24) - 1)).astype(np.int64)


def day_number(date):
    """Days since 1970-01-01 of a date, datetime or ISO string."""
    if isinstance(date, str):
        date = _dt.date.fromisoformat(date[:10])
    if isinstance(date, _dt.datetime):
        date = date.date()
    return (date - _EPOCH).days


def day_date(day):
    return _EPOCH + _dt.timedelta(days=int(day))


def capture_days(timestamps, fallback_day):
    """Day of each capture: its crawl_date (timestamp[ms] values, NaT/None = missing), else
    `fallback_day` (the run's date)."""
    ts = np.asarray(timestamps, dtype="datetime64[ms]")
    days = ts.astype("datetime64[D]").astype(np.int64)
    return np.where(np.isnat(ts), fallback_day, days)


def timestamps(column):
    """An Arrow timestamp column (or list of datetimes) → datetime64[ms], NaT for nulls."""
    if hasattr(column, "to_numpy"):
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype="datetime64[ms]")
    return np.array([np.datetime64("NaT") if d is None else np.datetime64(d.replace(tzinfo=None), "ms")
                     for d in column], dtype="datetime64[ms]")


def url_keys(urls):
    """(64-bit hash, has-url mask) of URL strings; the join is a shuffle keyed by this hash."""
    has = np.array([bool(u) for u in urls], dtype=bool)
    keys = np.zeros(len(urls), dtype=np.uint64)
    if has.any():
        keys[has] = graph.id_hashes([u for u, h in zip(urls, has) if h], seed=0x5EE9)
    return keys, has


def earliest_matches(docs, entries, exact, entry_ids, entry_keys):
    """Per document: the earliest seen key among the entries it matches, and whether any match
    is an exact copy. `entry_ids` need not be sorted. Returns (docs, keys, exact), docs sorted."""
    if len(docs) == 0:
        return docs, np.empty(0, dtype=np.uint64), np.zeros(0, dtype=bool)
    order = np.argsort(entry_ids)
    keys = graph.lookup(entry_ids[order], entry_keys[order], entries)
    o = np.lexsort((keys, docs))
    docs, keys, exact = docs[o], keys[o], exact[o]
    starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
    return docs[starts], np.minimum.reduceat(keys, starts), np.logical_or.reduceat(exact, starts)


def latest_by_url(doc_urls, doc_nodes, doc_texts, entry_urls, entry_captures, entry_texts, entry_human):
    """For documents whose URL the index holds: whether their text differs from the URL's latest
    indexed capture (by capture key, ties: larger text key) and whether that capture was labelled
    human. Returns (nodes, changed, old_human) for the documents with a seen URL."""
    empty = (np.empty(0, dtype=np.uint64), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    if len(doc_urls) == 0 or len(entry_urls) == 0:
        return empty
    o = np.lexsort((entry_texts, entry_captures, entry_urls))
    urls, texts, human = entry_urls[o], entry_texts[o], entry_human[o]
    last = np.r_[urls[1:] != urls[:-1], True]
    urls, texts, human = urls[last], texts[last], human[last]
    pos = np.minimum(np.searchsorted(urls, doc_urls), len(urls) - 1)
    hit = urls[pos] == doc_urls
    return doc_nodes[hit], texts[pos[hit]] != doc_texts[hit], human[pos[hit]]


def fold_annotations(n, annotations):
    """One shard's seen annotations → (earliest key or NEVER, exact, url seen, text changed,
    old capture human) per row. Several partitions may report on one row: keys take the minimum."""
    key = np.full(n, NEVER, dtype=np.uint64)
    exact = np.zeros(n, dtype=bool)
    url_seen = np.zeros(n, dtype=bool)
    changed = np.zeros(n, dtype=bool)
    old_human = np.zeros(n, dtype=bool)
    for ann in annotations:
        if ann[0] == ANNOTATION_SEEN:
            _, rows, keys, ex = ann
            np.minimum.at(key, rows, keys)
            np.logical_or.at(exact, rows, ex)
        elif ann[0] == ANNOTATION_SEEN_URL:
            _, rows, ch, hu = ann
            url_seen[rows], changed[rows], old_human[rows] = True, ch, hu
    return key, exact, url_seen, changed, old_human


def seen_columns(folded, own_keys, has_url, runs):
    """The Parquet columns of the seen-pages join for one batch of rows.

    A row that matches the index takes the earliest capture among its matches (so
    first_seen_run names an earlier run); a row that matches nothing takes `own_keys`, its own
    capture in this run. seen_before is exact | near | None; url_seen_before is None without a
    URL; text_changed_since is None unless the URL was seen."""
    key, exact, url_seen, changed, _ = folded
    seen = key != NEVER
    first = np.where(seen, key, own_keys)
    run_names = np.asarray(runs, dtype=object)
    return {
        "first_seen_run": run_names[key_rank(first)],
        "first_seen_date": np.array([day_date(d) for d in key_day(first)], dtype=object),
        "seen_before": np.where(seen, np.where(exact, EXACT, NEAR), None).astype(object),
        "url_seen_before": np.where(has_url, url_seen, None).astype(object),
        "text_changed_since": np.where(url_seen, changed, None).astype(object),
    }


def provenance_signals(columns, folded_rows, cutoff):
    """The decision table's seen-pages inputs for a batch: its seen columns, and whether the
    URL's latest earlier capture was labelled human."""
    return {"seen_before": columns["seen_before"], "first_seen_date": columns["first_seen_date"],
            "text_changed_since": columns["text_changed_since"], "previous_human": folded_rows[4],
            "seen_cutoff": cutoff}


class SeenPlan:
    """What the write pass needs to fill the seen columns and write this run's index part:
    small, pickled with the DoFn."""

    def __init__(self, index_dir, run_id, run_date, runs, attempt, cutoff, minhash_config):
        self.index_dir = index_dir
        self.run_id = run_id
        self.run_date = run_date  # ISO date: the capture date of documents without crawl_date
        self.run_day = day_number(run_date)
        self.runs = tuple(runs)
        self.rank = self.runs.index(run_id)
        self.attempt = attempt  # names this attempt's part files; unlisted files are ignored
        self.cutoff = cutoff
        self.minhash = minhash_config  # the part's signatures and probe keys

    def part_name(self, shard_index):
        return f"part-{self.run_id}-{self.attempt}-{shard_index:05d}.parquet"
