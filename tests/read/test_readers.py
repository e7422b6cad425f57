"""Readers on the real WARC/WET files and on damaged input: every record is a document or a
dead letter with a reason."""
import gzip
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from conftest import WARC_DIR, WAT, write_jsonl
from corpus_audit.transforms.read.readers import read_shard
from corpus_audit.transforms.read.shard_io import detect_format, expand_inputs


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
    docs, dead, counts = rows_of(WAT)
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


# ---------------------------------------------------------------- found by the fuzz corpus


def _warc(records, compress):
    """WARC bytes from (type, block, uri) triples, per-record gzip members if `compress`."""
    out = b""
    for i, (rtype, block, uri) in enumerate(records):
        head = (f"WARC/1.0\r\nWARC-Type: {rtype}\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-"
                f"{i:012d}>\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-05-18T01:58:10Z\r\n"
                f"Content-Type: application/http; msgtype=response\r\n"
                f"Content-Length: {len(block)}\r\n\r\n").encode()
        rec = head + block + b"\r\n\r\n"
        out += gzip.compress(rec, mtime=0) if compress else rec
    return out


def _http(body, *headers, content_type="text/html"):
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n" + "".join(h + "\r\n" for h in headers)
    return head.encode() + b"\r\n" + body


PAGE = b"<html><body><p>" + b"A page about the river and the mill. " * 20 + b"</p></body></html>"


def test_lone_surrogates_are_dead_letters_not_a_crash(tmp_path):
    # JSON may escape half a UTF-16 pair; UTF-8 (and so Parquet) cannot hold it.
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"id": "a", "text": "lone \\ud800 half"}\n'
                     b'{"id": "b\\udfff", "text": "fine text"}\n'
                     b'{"id": "c", "text": "fine text", "lang": "\\udc80"}\n'
                     b'{"id": "d", "text": "paired \\ud83d\\ude00 emoji"}\n')
    docs, dead, _ = rows_of(path)
    assert [d["doc_id"] for d in docs] == ["d"]
    assert [(d["record_position"], d["reason"]) for d in dead] == [
        (0, "invalid_utf8"), (1, "invalid_utf8"), (2, "invalid_utf8")]
    assert "`text` holds an unpaired surrogate" in dead[0]["detail"]
    assert "`doc_id`" in dead[1]["detail"] and "`metadata`" in dead[2]["detail"]
    for d in dead:  # the dead letters themselves must be writable
        pa.Table.from_pylist([d])
        assert d["record_id"] is None or d["record_id"].encode()


def test_json_nested_too_deeply_costs_its_line_not_the_shard(tmp_path):
    path = tmp_path / "deep.jsonl"
    write_jsonl(path, [{"id": "a", "text": "first document " * 5}, "[" * 100_000 + "]" * 100_000,
                       {"id": "b", "text": "last document " * 5}])
    docs, dead, _ = rows_of(path)
    assert [d["doc_id"] for d in docs] == ["a", "b"]
    assert [(d["record_position"], d["reason"]) for d in dead] == [(1, "malformed_json")]
    assert "nested too deeply" in dead[0]["detail"]


def test_truncated_zstd_is_a_dead_letter_not_a_shorter_shard(tmp_path):
    # zstandard's stream reader ends quietly inside a cut frame: all records vanished.
    data = "".join(json.dumps({"id": str(i), "text": f"text {i} " * 20}) + "\n" for i in range(50))
    z = zstandard.ZstdCompressor().compress(data.encode())
    path = tmp_path / "cut.jsonl.zst"
    path.write_bytes(z[: len(z) * 2 // 3])
    docs, dead, _ = rows_of(path)
    assert [d["reason"] for d in dead] == ["truncated_shard"]
    assert dead[0]["record_position"] == len(docs)


def test_compression_is_read_from_the_bytes_not_the_name(tmp_path):
    data = "".join(json.dumps({"id": str(i), "text": f"text {i} " * 20}) + "\n" for i in range(3)).encode()
    for name, content in [("gzip.jsonl.zst", gzip.compress(data)), ("zstd.jsonl.gz",
                          zstandard.ZstdCompressor().compress(data)), ("plain.jsonl.gz", data),
                          ("gzip.jsonl", gzip.compress(data))]:
        (tmp_path / name).write_bytes(content)
        docs, dead, _ = rows_of(tmp_path / name)
        assert len(docs) == 3 and not dead, name


def test_corrupt_gzip_jsonl_is_corrupt_not_truncated(tmp_path):
    gz = bytearray(gzip.compress(b'{"text": "some words here"}\n' * 2000))
    gz[len(gz) // 2] ^= 0xFF
    path = tmp_path / "flip.jsonl.gz"
    path.write_bytes(bytes(gz))
    _, dead, _ = rows_of(path)
    assert dead[-1]["reason"] == "corrupt_shard"


def test_empty_shards_are_one_dead_letter_in_every_format(tmp_path):
    cases = {"a.jsonl": b"", "b.jsonl.gz": b"", "c.jsonl.gz": gzip.compress(b""),
             "d.jsonl.zst": zstandard.ZstdCompressor().compress(b""), "e.warc.gz": b"",
             "f.warc": b"\r\n \n", "g.warc.gz": gzip.compress(b""), "h.parquet": b"",
             "i.jsonl": b"\n \n\r\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), tmp_path / "j.parquet")
    for name in list(cases) + ["j.parquet"]:
        docs, dead, _ = rows_of(tmp_path / name)
        assert not docs and [(d["reason"], d["record_position"]) for d in dead] == [("empty_shard", -1)], name


def test_id_of_the_wrong_type_is_a_dead_letter(tmp_path):
    path = tmp_path / "ids.jsonl"
    write_jsonl(path, [{"id": {"a": 1}, "text": "t " * 5}, {"id": [1], "text": "t " * 5},
                       {"id": True, "text": "t " * 5}, {"id": 7, "text": "t " * 5}])
    docs, dead, _ = rows_of(path)
    assert [d["doc_id"] for d in docs] == ["7"]
    assert [d["reason"] for d in dead] == ["bad_field_type"] * 3
    assert "`id` is dict" in dead[0]["detail"]


def test_parquet_value_python_cannot_hold_costs_only_its_row(tmp_path):
    # A timestamp past year 9999 made the whole batch fail to convert: every row was lost.
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["first text " * 5, "second text " * 5],
                             "crawl_date": pa.array([10**15, 0], pa.timestamp("s"))}), path)
    docs, dead, _ = rows_of(path)
    assert [d["doc_id"] for d in docs] == ["a", "b"] and not dead
    assert docs[0]["crawl_date"] is None and docs[1]["crawl_date"].year == 1970


def test_dates_outside_the_utc_range_are_dropped():
    from corpus_audit.transforms.read.records import parse_date
    # Stored fine as a Parquet timestamp, then unreadable by every later stage.
    assert parse_date("0001-01-01T00:00:00+14:00") is None
    assert parse_date("9999-12-31T23:59:59-12:00") is None
    assert parse_date("2024-05-18T03:00:00+02:00").isoformat() == "2024-05-18T01:00:00+00:00"
    import datetime
    assert parse_date(datetime.date(2020, 1, 2)).isoformat() == "2020-01-02T00:00:00+00:00"


def test_bad_http_framing_costs_the_record_not_the_rest_of_the_shard(tmp_path):
    records = [
        ("response", _http(PAGE, "Content-Encoding: gzip"), "http://x/bad-gzip"),
        ("response", _http(b"zz\r\n" + PAGE, "Transfer-Encoding: chunked"), "http://x/bad-chunks"),
        ("response", _http(PAGE, content_type="text/plain; charset=x-nonsense"), "http://x/bogus-charset"),
        ("response", PAGE, "http://x/no-http-head"),
        ("response", _http(PAGE), "http://x/fine"),
    ]
    for compress in (True, False):
        path = tmp_path / ("f.warc.gz" if compress else "f.warc")
        path.write_bytes(_warc(records, compress))
        docs, dead, _ = rows_of(path)
        assert [d["url"] for d in docs] == ["http://x/bogus-charset", "http://x/fine"]
        reasons = [d["reason"] for d in dead]
        assert reasons[:2] == ["corrupt_record", "corrupt_record"], reasons
        assert "corrupt_shard" not in reasons  # the failed payload is not reported twice


def test_response_without_http_headers_is_not_a_crash(tmp_path):
    # fastwarc leaves http_headers None; reading .get on it raised AttributeError.
    path = tmp_path / "h.warc"
    path.write_bytes(b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 999999\r\n\r\n" + b"x" * 300)
    docs, dead, _ = rows_of(path)
    assert not docs and [d["reason"] for d in dead] == ["truncated_record"]


def test_cut_chunked_plain_warc_is_one_truncated_record(tmp_path):
    data = open(os.path.join(WARC_DIR, "example-iana.org-chunked.warc"), "rb").read()
    path = tmp_path / "cut.warc"
    path.write_bytes(data[:3000])
    docs, dead, _ = rows_of(path)
    assert not docs and [d["reason"] for d in dead] == ["truncated_record"]


def test_gzip_warc_cut_inside_its_last_member_is_never_silent(tmp_path):
    data = open(os.path.join(WARC_DIR, "example.warc.gz"), "rb").read()
    # Inside the response member (Content-Encoding gzip, so lengths cannot tell): it used to
    # be an `empty_text` dead letter; inside the first member it vanished without a trace.
    for cut, reason in [(1000, "truncated_record"), (130, "truncated_shard"), (3500, "truncated_shard")]:
        path = tmp_path / f"cut{cut}.warc.gz"
        path.write_bytes(data[:cut])
        _, dead, _ = rows_of(path)
        assert [d["reason"] for d in dead] == [reason], cut
    docs, dead, _ = rows_of(os.path.join(WARC_DIR, "example.warc.gz"))
    assert len(docs) == 1 and not dead


def test_positions_after_a_resync_are_file_offsets(tmp_path):
    # fastwarc's stream_pos already counts from the file start; adding the resume offset
    # doubled every position after corrupt data and made the next resync skip records.
    first = open(os.path.join(WARC_DIR, "example.warc.gz"), "rb").read()
    second = open(os.path.join(WARC_DIR, "whirlwind.warc.gz"), "rb").read()
    path = tmp_path / "mid.warc.gz"
    path.write_bytes(first + b"\x00" * 4096 + second)
    docs, dead, _ = rows_of(path)
    assert [d["reason"] for d in dead] == ["corrupt_shard"]
    whirlwind = [d for d in docs if "wikipedia" in d["url"]][0]
    assert whirlwind["record_position"] == len(first) + 4096 + 1023  # its offset in whirlwind.warc.gz


def test_wrong_content_length_does_not_swallow_the_records_after_it(tmp_path):
    block = _http(PAGE)
    bad = (b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: http://x/long\r\n"
           b"Content-Type: application/http; msgtype=response\r\n"
           b"Content-Length: %d\r\n\r\n" % (len(block) + 5000)) + block + b"\r\n\r\n"
    path = tmp_path / "len.warc"
    path.write_bytes(bad + _warc([("response", block, "http://x/after")], False))
    docs, dead, _ = rows_of(path)
    assert [d["reason"] for d in dead] == ["truncated_record"]
    assert [d["url"] for d in docs] == ["http://x/after"]


def test_deeply_nested_html_is_extracted_in_bounded_time():
    import time

    from corpus_audit.transforms.read import html_text

    page = ("<div>" * 20_000 + "<p>the text inside</p>" + "</div>" * 20_000).encode()
    start = time.monotonic()
    text, _ = html_text.extract(page)
    assert "the text inside" in text
    assert time.monotonic() - start < 5  # main-content extraction alone took ~10 s
    assert html_text.nesting_depth("<div>" * 1500 + "</div>" * 3000 + "<br>" * 5000) == 1500
    assert html_text.nesting_depth("</div>" * 3000 + "<div>" * 1200) == 1200
    assert html_text.nesting_depth("<p>x</p>" * 5000) == 0


def test_payload_inflating_past_the_limit_is_too_large(tmp_path):
    bomb = gzip.compress(b"<p>" + b"a" * 5_000_000 + b"</p>")  # ~5 KB on disk
    path = tmp_path / "bomb.warc"
    path.write_bytes(_warc([("response", _http(bomb, "Content-Encoding: gzip"), "http://x/bomb")], False))
    docs, dead, _ = rows_of(path, max_bytes=1_000_000)
    assert not docs and [d["reason"] for d in dead] == ["too_large"]
    assert "decoded payload" in dead[0]["detail"]
