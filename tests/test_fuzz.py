"""The real command over a fuzz corpus of 200+ damaged shards (benchmarks/fuzz_corpus.py):
no crash, every record a document or a dead letter with a reason, every shard accounted for."""
import collections
import glob
import io
import os
import re
import sys
import zlib

import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import ROOT, read_audit, read_documents, run_cli, run_path

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import fuzz_corpus  # noqa: E402

KNOWN_REASONS = {
    "malformed_json", "invalid_utf8", "missing_text_field", "bad_field_type", "empty_text",
    "too_large", "binary_content", "unsupported_content_type", "truncated_record",
    "truncated_shard", "corrupt_shard", "corrupt_record", "empty_shard", "unknown_format",
    "unreadable_shard",
}


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("fuzz")
    shards = fuzz_corpus.build(str(corpus), seed=0)
    out = tmp_path_factory.mktemp("fuzz_out")
    run_cli("audit", "--input", str(corpus / "*"), "--output", out, "--run-id", "r", "--quiet",
            "--max-doc-bytes", fuzz_corpus.GIANT_LIMIT)
    dead = pq.read_table(glob.glob(os.path.join(run_path(out), "dead_letters-*.parquet"))).to_pylist()
    docs = read_documents(out, columns=["doc_id", "source_shard", "cluster_id", "is_representative",
                                        "cluster_size"]).to_pylist()
    return corpus, {s.name: s for s in shards}, read_audit(out), docs, dead


def _content(path):
    """Decompressed bytes, by magic, as an independent reader would see them."""
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        out = b""
        while data[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(31)
            out += d.decompress(data)
            data = d.unused_data
        return out
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


def test_the_corpus_is_large_varied_and_deterministic(tmp_path):
    texts = fuzz_corpus.load_texts(n=40)
    a = fuzz_corpus.build(str(tmp_path / "a"), seed=3, texts=texts)
    fuzz_corpus.build(str(tmp_path / "b"), seed=3, texts=texts)
    assert len(a) >= 200
    assert {s.damage for s in a} >= {"truncated", "byte_flips", "wrong_compression", "nul_bytes",
                                      "giant_lines", "wrong_field_types", "duplicate_ids", "empty",
                                      "garbage", "mixed_encoding", "broken_html"}
    for s in a:
        assert (tmp_path / "a" / s.name).read_bytes() == (tmp_path / "b" / s.name).read_bytes(), s.name


def test_audit_survives_and_counts_every_record(fuzz):
    corpus, shards, audit, docs, dead = fuzz
    assert audit["shards"] == len(shards) >= 200
    assert audit["records_read"] == audit["documents_written"] + audit["dead_letters"]
    assert len(docs) == audit["documents_written"] > 300
    assert len(dead) == audit["dead_letters"]
    assert sum(audit["dead_letters_by_reason"].values()) == audit["dead_letters"]
    for d in dead:
        assert d["reason"] in KNOWN_REASONS, d
        assert d["detail"] and d["detail"].strip(), d
        assert d["source_shard"], d


def test_every_shard_is_accounted_for(fuzz):
    """Each shard has documents or dead letters, or holds only records that are not documents
    by nature (WAT metadata, warcinfo, requests, blank lines): checked on its bytes here."""
    corpus, shards, audit, docs, dead = fuzz
    with_rows = collections.Counter(os.path.basename(r["source_shard"]) for r in docs + dead)
    assert set(with_rows) <= set(shards)
    silent = sorted(set(shards) - set(with_rows))
    for name in silent:
        content = _content(corpus / name)
        assert content.strip(), f"{name}: an empty shard must be an empty_shard dead letter"
        if name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst")):
            assert not any(line.strip() for line in content.splitlines()), name
        else:
            assert b"WARC/1." in content[:16], name
            assert b"WARC-Type: response" not in content and b"WARC-Type: conversion" not in content, name
    assert silent == ["real-whirlwind.warc.wat.gz"]  # the WAT: warcinfo and metadata only
    assert audit["records_skipped_by_kind"]["metadata"] >= 1


def test_damage_gets_the_right_reason(fuzz):
    corpus, shards, audit, docs, dead = fuzz
    docs_of = collections.Counter(os.path.basename(r["source_shard"]) for r in docs)
    dead_of = collections.defaultdict(list)
    for d in dead:
        dead_of[os.path.basename(d["source_shard"])].append(d)
    for name, shard in shards.items():
        reasons = [d["reason"] for d in dead_of[name]]
        if shard.damage == "none":
            assert reasons == [] and (docs_of[name] > 0 or name.endswith(".wat.gz")), name
        if shard.damage == "empty":
            assert reasons == ["empty_shard"] and docs_of[name] == 0, name
        if re.match(r"wrongc\d-(gzip|zstd|plain)-named\.jsonl", name):
            # the compression is read from the bytes, not from the name
            assert reasons == [] and docs_of[name] == 6, name
        if name.startswith("giant") and name.endswith((".jsonl", ".jsonl.gz")) and shard.giant_lines:
            assert "too_large" in reasons, name
        if name.startswith("trunc") and name.endswith((".jsonl.gz", ".jsonl.zst")):
            assert reasons[-1] == "truncated_shard", name
    surrogates = [d for n in ("enc0.jsonl", "enc-surrogates.jsonl") for d in dead_of[n]
                  if "surrogate" in d["detail"]]
    assert len(surrogates) >= 3 and {d["reason"] for d in surrogates} == {"invalid_utf8"}
    assert {d["reason"] for d in dead_of["json-deep.jsonl"]} == {"malformed_json"}
    assert docs_of["json-deep.jsonl"] == 2  # the lines after the deep ones are still read
    assert docs_of["types-id-struct.parquet"] == 0 and len(dead_of["types-id-struct.parquet"]) == 2
    assert docs_of["warc-lengths.warc"] == 1  # the record after a wrong Content-Length is found
    assert docs_of["html-broken.warc.gz"] == 9  # 20,000 nested <div>s in bounded time


def test_records_with_duplicate_ids_are_all_accounted_for(fuzz):
    """The same id twice in a shard, across shards, and one file under two names: every
    record is still a document or a dead letter, every doc_id is unique, and each cluster_id
    names one representative whose cluster holds exactly cluster_size documents."""
    corpus, shards, audit, docs, dead = fuzz
    assert len({d["doc_id"] for d in docs}) == len(docs)
    assert audit["duplicate_ids_renamed"] > 0
    members = collections.Counter(d["cluster_id"] for d in docs)
    reps = [d for d in docs if d["is_representative"]]
    assert len({d["cluster_id"] for d in reps}) == len(reps) == len(members)
    assert all(members[d["cluster_id"]] == d["cluster_size"] and d["cluster_id"] == d["doc_id"] for d in reps)
    rows = collections.Counter(os.path.basename(r["source_shard"]) for r in docs + dead)
    assert rows["dup-within.jsonl"] == 6
    assert rows["dup-across-a.jsonl"] == rows["dup-across-b.jsonl.gz"] == rows["dup-across-c.parquet"] == 5
    assert rows["dup-copy-a.jsonl"] == rows["clean-0.jsonl"] == 8
    assert rows["dup-copy-whirlwind.warc.gz"] == rows["real-whirlwind.warc.gz"] == 1
