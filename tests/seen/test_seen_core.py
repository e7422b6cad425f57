"""Pure cores of the seen-pages join and its index manifest, without Beam."""
import datetime as dt

import numpy as np
import pytest

from corpus_audit.transforms.detectors.provenance import decide_provenance
from corpus_audit.transforms.known.index import is_entry
from corpus_audit.transforms.seen import core
from corpus_audit.transforms.seen import index as si


def test_seen_keys_order_by_date_then_run_rank():
    keys = core.seen_key([100, 100, 99, -5], [2, 1, 7, 0])
    assert list(core.key_day(keys)) == [100, 100, 99, -5] and list(core.key_rank(keys)) == [2, 1, 7, 0]
    assert np.argsort(keys).tolist() == [3, 2, 1, 0]
    assert core.day_date(core.day_number("2022-11-30")) == dt.date(2022, 11, 30)


def test_entry_ids_never_collide_with_documents_or_known_outputs():
    ids = si.entry_ids(3, np.arange(5))
    docs = (np.uint64(7) << np.uint64(32)) + np.arange(5, dtype=np.uint64)
    assert si.is_seen_entry(ids).all() and not si.is_seen_entry(docs).any()
    assert not is_entry(ids).any()  # the known-output code never mistakes a seen entry for its own
    assert not si.is_seen_entry(np.uint64(1 << 63) | ids).any()


def test_earliest_match_is_a_minimum_independent_of_order():
    docs = np.array([5, 5, 6, 5], dtype=np.uint64)
    entries = np.array([10, 11, 11, 12], dtype=np.uint64)
    exact = np.array([False, True, False, False])
    ids = np.array([12, 10, 11], dtype=np.uint64)
    keys = core.seen_key([3, 9, 1], [0, 0, 0])
    out = core.earliest_matches(docs, entries, exact, ids, keys)
    perm = [3, 2, 0, 1]
    again = core.earliest_matches(docs[perm], entries[perm], exact[perm], ids, keys)
    for a, b in zip(out, again):
        assert np.array_equal(a, b)
    d, k, ex = out
    assert d.tolist() == [5, 6] and core.key_day(k).tolist() == [1, 1] and ex.tolist() == [True, False]


def test_latest_capture_of_a_url_decides_text_changed():
    e_urls = np.array([1, 1, 2], dtype=np.uint64)
    e_caps = core.seen_key([10, 20, 5], [0, 0, 0])
    e_texts = np.array([100, 200, 300], dtype=np.uint64)
    e_human = np.array([True, False, True])
    nodes, changed, human = core.latest_by_url(np.array([1, 2, 3], dtype=np.uint64), np.array([7, 8, 9], dtype=np.uint64),
                                               np.array([100, 300, 5], dtype=np.uint64), e_urls, e_caps, e_texts, e_human)
    assert nodes.tolist() == [7, 8]  # URL 3 was never seen
    assert changed.tolist() == [True, False]  # URL 1's latest capture (day 20) had text 200
    assert human.tolist() == [False, True]


def test_seen_columns_for_seen_new_and_url_rows():
    folded = core.fold_annotations(3, [
        (core.ANNOTATION_SEEN, np.array([0]), core.seen_key([5], [0]), np.array([False])),
        (core.ANNOTATION_SEEN, np.array([0]), core.seen_key([3], [1]), np.array([True])),
        (core.ANNOTATION_SEEN_URL, np.array([1]), np.array([True]), np.array([True])),
    ])
    own = core.seen_key([50, 50, 50], [2, 2, 2])
    cols = core.seen_columns(folded, own, np.array([True, True, False]), ["r1", "r2", "r3"])
    assert cols["first_seen_run"].tolist() == ["r2", "r3", "r3"]
    assert cols["first_seen_date"][0] == core.day_date(3)
    assert cols["seen_before"].tolist() == ["exact", None, None]
    assert cols["url_seen_before"].tolist() == [False, True, None]
    assert cols["text_changed_since"].tolist() == [None, True, None]


def test_a_run_is_listed_once_and_a_rerun_replaces_it_in_place():
    m = si.new_manifest({})
    m, dropped = si.with_run(m, "r1", "2026-01-01", [{"file": "a", "entries": 3, "size": 1, "sha256": "x"}])
    m, _ = si.with_run(m, "r2", "2026-01-02", [{"file": "b", "entries": 4, "size": 1, "sha256": "x"}])
    m, dropped = si.with_run(m, "r1", "2026-01-01", [{"file": "c", "entries": 3, "size": 1, "sha256": "x"}])
    assert [p["file"] for p in m["parts"]] == ["c", "b"] and dropped == ["a"] and m["entries"] == 7
    assert [p["file"] for p in si.parts_before_run(m, "r1")] == []
    assert [p["file"] for p in si.parts_before_run(m, "r2")] == ["c"]
    assert [p["file"] for p in si.parts_before_run(m, "r3")] == ["c", "b"]


def test_bad_manifests_are_refused_with_a_reason(tmp_path):
    params = {"num_perm": 100}
    assert si.open_index(str(tmp_path / "new"), params)["parts"] == []  # created on first commit
    (tmp_path / "seen.json").write_text("{not json")
    with pytest.raises(si.SeenIndexError, match="corrupt"):
        si.open_index(str(tmp_path), params)
    (tmp_path / "seen.json").write_text('{"format": "corpus-audit-seen-pages", "version": 99}')
    with pytest.raises(si.SeenIndexError, match="version 99"):
        si.open_index(str(tmp_path), params)
    (tmp_path / "seen.json").write_text('{"format": "corpus-audit-seen-pages", "version": 1, "params": '
                                        '{"num_perm": 64}, "parts": []}')
    with pytest.raises(si.SeenIndexError, match="other MinHash parameters"):
        si.open_index(str(tmp_path), params)


def test_provenance_rows_of_the_seen_index():
    old, new = dt.date(2021, 3, 1), dt.date(2024, 3, 1)
    prov, reason = decide_provenance(
        [0.5, 0.9, 0.9, 0.9, 0.5, 0.9], n_words=[100] * 6,
        seen_before=["near", None, None, "exact", None, "exact"],
        first_seen_date=[old, new, new, new, old, old],
        text_changed_since=[None, True, True, None, None, None], previous_human=[None, True, False, None, None, None])
    assert list(zip(prov, reason)) == [
        ("human", "seen_before_cutoff"), ("human_edited", "rewritten_human_page"),
        ("synthetic", "rewritten_page_high"), ("synthetic", "detector_high"),
        ("unknown", "uncertain"),  # never seen: an old first_seen_date alone is not seen evidence
        ("synthetic", "detector_high")]  # a very high score on old text falls through, as for old crawl dates
    # The cut-off is an option, and without seen signals the table is unchanged.
    assert decide_provenance([0.5], n_words=[100], seen_before=["exact"], first_seen_date=[new],
                             seen_cutoff=dt.date(2025, 1, 1))[1].tolist() == ["seen_before_cutoff"]
    assert decide_provenance([0.5, 0.9], n_words=[100, 100])[1].tolist() == ["uncertain", "detector_high"]


def test_stored_probe_keys_equal_the_recomputed_ones():
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from corpus_audit.transforms.dedup.minhash import MinHashConfig, MinHasher

    hasher = MinHasher(MinHashConfig())
    rng = np.random.default_rng(5)
    sigs = rng.integers(0, 2**32, size=(5, 100), dtype=np.uint32)
    sigs[2] = 0  # too short to shingle: no band keys
    hashes = [f"{x:032x}" for x in rng.integers(0, 2**63, size=5)]
    urls = ["https://a.example/1", None, "", "https://b.example/", "https://a.example/1"]
    table = pa.table({"signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel()), 100),
                      "text_hash": hashes, "url": pa.array(urls, pa.string()),
                      **si.probe_columns(si.probe_keys(hasher, sigs, hashes, urls))})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    table = pq.read_table(io.BytesIO(buf.getvalue()))
    bands, hashed, exact, url_keys, has_url = stored = si.read_probe_keys(table, 2, hasher)
    for a, b in zip(stored, si.read_probe_keys(table, 1, hasher)):
        assert np.array_equal(a, b)
    assert hashed.tolist() == [True, True, False, True, True] and has_url.tolist() == [True, False, False, True, True]
    assert np.array_equal(bands[hashed], hasher.band_keys(sigs[hashed])) and url_keys[0] == url_keys[4]
    assert table.column("url_key").null_count == 2
