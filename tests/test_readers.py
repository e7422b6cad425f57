"""Readers on the real WARC/WET files and on damaged input: every record is a document or a
dead letter with a reason."""
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import WARC_DIR, write_jsonl
from corpus_audit.transforms.readers import read_shard
from corpus_audit.transforms.shard_io import detect_format, expand_inputs


def rows_of(path, fmt=None, **kw):
    counts = {}
    rows = list(read_shard(str(path), fmt, counts, **kw))
    docs = [r for r in rows if "reason" not in r]
    dead = [r for r in rows if "reason" in r]
    return docs, dead, counts


def test_format_from_extension():
    assert detect_format("s3://b/x/CC-MAIN-1.warc.gz") == "warc"
    assert detect_format("x.warc.wet.gz") == "wet"
    assert detect_format("x.jsonl.zst") == "jsonl"
    assert detect_format("x.parquet") == "parquet"
    assert detect_format("x.csv") is None


def test_common_crawl_warc_response_is_extracted():
    docs, dead, counts = rows_of(os.path.join(WARC_DIR, "whirlwind.warc.gz"))
    assert dead == []
    (doc,) = docs
    assert doc["doc_id"] == "2aabeff2-67f5-4608-8466-e87c6296e2b6"  # WARC-Record-ID
    assert doc["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert doc["domain"] == "an.wikipedia.org"
    assert doc["crawl_date"].isoformat() == "2024-05-18T01:58:10+00:00"
    assert doc["content_type"] == "text/html"
    assert doc["html_generator"].startswith("MediaWiki")
    assert "Escopete" in doc["text"] and "<div" not in doc["text"]
    assert counts == {"skipped_warcinfo": 1, "skipped_request": 1, "skipped_metadata": 1}


def test_wet_conversion_record_and_wat_without_documents():
    docs, dead, _ = rows_of(os.path.join(WARC_DIR, "whirlwind.warc.wet.gz"))
    assert len(docs) == 1 and not dead and docs[0]["source_format"] == "wet"
    assert docs[0]["text"].startswith("Escopete - Biquipedia")
    docs, dead, counts = rows_of(os.path.join(WARC_DIR, "whirlwind.warc.wat.gz"))
    assert docs == [] and dead == [] and counts["skipped_metadata"] == 1


def test_chunked_uncompressed_and_bracketed_uri():
    docs, _, _ = rows_of(os.path.join(WARC_DIR, "example-iana.org-chunked.warc"))
    assert docs[0]["text"].startswith("Internet Assigned Numbers Authority")
    assert "\r\n" not in docs[0]["text"][:200]  # chunk framing removed
    docs, _, counts = rows_of(os.path.join(WARC_DIR, "example-wget-bad-target-uri.warc.gz"))
    assert docs[0]["url"] == "http://example.com/" and docs[0]["domain"] == "example.com"
    assert counts["skipped_resource"] == 2
    docs, _, counts = rows_of(os.path.join(WARC_DIR, "example.warc.gz"))
    assert len(docs) == 1 and counts["skipped_revisit"] == 1


def test_truncated_gzip_warc_is_a_dead_letter(tmp_path):
    data = open(os.path.join(WARC_DIR, "whirlwind.warc.gz"), "rb").read()
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(data[:12000])
    docs, dead, _ = rows_of(path)
    assert docs == []
    assert [d["reason"] for d in dead] == ["truncated_record"]
    assert dead[0]["record_position"] == 1023


def test_corrupt_record_in_the_middle_keeps_the_records_after_it(tmp_path):
    first = open(os.path.join(WARC_DIR, "example.warc.gz"), "rb").read()
    second = open(os.path.join(WARC_DIR, "whirlwind.warc.gz"), "rb").read()
    damaged = bytearray(first)
    damaged[900:1000] = b"\x00" * 100  # inside the gzip member of the response record
    path = tmp_path / "mid.warc.gz"
    path.write_bytes(bytes(damaged) + second)
    docs, dead, _ = rows_of(path)
    assert [d["reason"] for d in dead] == ["corrupt_shard"]
    assert "resumed at offset" in dead[0]["detail"]
    assert [d["url"] for d in docs] == ["https://an.wikipedia.org/wiki/Escopete"]


def test_not_gzip_and_unknown_format(tmp_path):
    bad = tmp_path / "x.warc.gz"
    bad.write_bytes(b"this is not a WARC file at all\n" * 10)
    docs, dead, _ = rows_of(bad)
    assert docs == [] and dead[0]["reason"] == "corrupt_shard"
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    docs, dead, _ = rows_of(other)
    assert dead[0]["reason"] == "unknown_format" and dead[0]["record_position"] == -1


def test_jsonl_bad_lines_each_become_dead_letters(tmp_path):
    path = tmp_path / "s.jsonl"
    long_text = "word " * 20
    write_jsonl(path, [
        {"id": "a", "text": long_text, "url": "https://www.example.com/a", "crawl_date": "2021-03-04",
         "lang": "en"},
        "{not json",
        {"id": "b", "text": "   \n\t "},
        {"id": "c", "text": 42},
        {"id": "d", "body": "no text field"},
        "[1, 2]",
        {"id": "e", "text": "\x00\x01\x02\x03" * 50},
        {"text": long_text + "x"},
    ])
    with open(path, "ab") as f:
        f.write(b'{"id": "f", "text": "caf\xe9 au lait"}\n')  # Latin-1 byte: invalid UTF-8
    docs, dead, _ = rows_of(path)
    assert [d["doc_id"] for d in docs] == ["a", "s.jsonl#7"]
    assert docs[0]["domain"] == "example.com"
    assert docs[0]["crawl_date"].year == 2021
    assert json.loads(docs[0]["metadata"]) == {"lang": "en"}
    assert [(d["record_position"], d["reason"]) for d in dead] == [
        (1, "malformed_json"), (2, "empty_text"), (3, "bad_field_type"), (4, "missing_text_field"),
        (5, "malformed_json"), (6, "binary_content"), (8, "invalid_utf8")]


def test_huge_document_is_a_dead_letter_without_holding_the_line(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        f.write(json.dumps({"id": "big", "text": "x" * 50_000_000}) + "\n")
        f.write(json.dumps({"id": "ok", "text": "a normal document " * 10}) + "\n")
    docs, dead, _ = rows_of(path)
    assert [d["doc_id"] for d in docs] == ["ok"]
    assert [(d["record_position"], d["reason"]) for d in dead] == [(0, "too_large")]


def test_compressed_jsonl_and_truncated_gzip(tmp_path):
    rows = [{"id": str(i), "text": f"document number {i} " * 30} for i in range(2000)]
    zpath = tmp_path / "s.jsonl.zst"
    zpath.write_bytes(zstandard.ZstdCompressor().compress(
        "".join(json.dumps(r) + "\n" for r in rows).encode()))
    docs, dead, _ = rows_of(zpath)
    assert len(docs) == 2000 and not dead
    gz = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gz[: len(gz) // 2])
    docs, dead, _ = rows_of(cut)
    assert 0 < len(docs) < 2000
    assert [d["reason"] for d in dead] == ["truncated_shard"]
    assert dead[0]["record_position"] == len(docs)


def test_parquet_with_and_without_text(tmp_path):
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["some text here " * 5, None],
                             "score": [0.5, 0.7]}), good)
    docs, dead, _ = rows_of(good)
    assert [d["doc_id"] for d in docs] == ["p1"] and json.loads(docs[0]["metadata"]) == {"score": 0.5}
    assert [d["reason"] for d in dead] == ["missing_text_field"]
    notext = tmp_path / "notext.parquet"
    pq.write_table(pa.table({"body": ["a", "b", "c"]}), notext)
    docs, dead, _ = rows_of(notext)
    assert docs == [] and [d["record_position"] for d in dead] == [0, 1, 2]
    assert {d["reason"] for d in dead} == {"missing_text_field"}


def test_expand_inputs_sorts_and_rejects_empty_globs(tmp_path):
    for name in ["b.jsonl", "a.jsonl", "_SUCCESS"]:
        (tmp_path / name).write_text("")
    assert [os.path.basename(p) for p in expand_inputs([str(tmp_path / "*")])] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(FileNotFoundError, match="nothing.jsonl"):
        expand_inputs([str(tmp_path / "nothing.jsonl")])
