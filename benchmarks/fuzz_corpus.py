"""A fuzz corpus of damaged and hostile crawl shards, made from real shards.

The bases are real: the Common Crawl and warcio WARC/WET/WAT files of the sample crawl and `tests/data`,
and JSONL, Parquet, WARC and WET shards built from the real texts of
`tests/data/detect-sample.jsonl.gz`. Each fuzz shard applies one damage to a base:
truncation at a random point, flipped bytes, the wrong compression for its name, NUL
bytes, giant lines, fields of the wrong type, duplicate ids (within a shard, across shards,
the same file under two names), empty files, random garbage, mixed encodings, JSON that
nests too deeply, and WARC responses with broken HTML and broken HTTP framing.

Everything random goes through one `random.Random(seed)`; gzip members carry no timestamp
and zstd frames no dictionary id, so the same seed writes byte-identical files.

    python benchmarks/fuzz_corpus.py OUT_DIR [--seed 0]

writes the shards and `_manifest.json` (a name starting with `_`, so an audit of
`OUT_DIR/*` does not read it): for each shard its file name, the damage, the base and
`giant_lines` (the longest line or record planted, in bytes).
"""
import argparse
import gzip
import io
import json
import os
import random
import uuid
from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
SAMPLE_CRAWL = os.path.join(PROJECT, "pipelines", "sample_crawl")
TEST_DATA = os.path.join(PROJECT, "tests", "data")
DETECT = os.path.join(TEST_DATA, "detect-sample.jsonl.gz")
REAL_WARCS = {n: os.path.join(SAMPLE_CRAWL, n) for n in (
    "whirlwind.warc.gz", "whirlwind.warc.wet.gz", "example.warc.gz", "example-iana.org-chunked.warc",
    "example-wget-bad-target-uri.warc.gz")}
REAL_WARCS["whirlwind.warc.wat.gz"] = os.path.join(TEST_DATA, "whirlwind.warc.wat.gz")
MANIFEST = "_manifest.json"

# Sizes chosen so that an audit with --max-doc-bytes GIANT_LIMIT sees lines both under and
# over the limit while the whole corpus stays a few megabytes.
GIANT_LIMIT = 1_000_000


@dataclass
class Shard:
    name: str
    damage: str
    base: str
    giant_lines: int = 0


# ---------------------------------------------------------------- real material


def load_texts(path=DETECT, n=240, max_words=180, seed=0):
    """`n` distinct real texts (one per group), whitespace kept as stored, cut to `max_words`."""
    rng = random.Random(seed)
    seen, texts = set(), []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["group"] in seen or len(r["text"].split()) < 40:
                continue
            seen.add(r["group"])
            words = r["text"].split(" ")
            texts.append(" ".join(words[:rng.randint(40, max_words)]))
            if len(texts) >= n:
                break
    return texts


def gz(data):
    return gzip.compress(data, mtime=0)


def zst(data):
    return zstandard.ZstdCompressor(write_content_size=True).compress(data)


def jsonl_bytes(rows):
    return b"".join((r if isinstance(r, bytes) else
                     (r if isinstance(r, str) else json.dumps(r)).encode("utf-8")) + b"\n"
                    for r in rows)


def parquet_bytes(table, **kw):
    buf = io.BytesIO()
    pq.write_table(table, buf, **kw)
    return buf.getvalue()


def warc_record(rng, rtype, block, uri="http://example.org/", extra=(), length=None):
    """One WARC/1.0 record; `length` overrides the true Content-Length."""
    rid = uuid.UUID(int=rng.getrandbits(128), version=4)
    headers = [("WARC-Type", rtype), ("WARC-Record-ID", f"<urn:uuid:{rid}>"),
               ("WARC-Target-URI", uri), ("WARC-Date", "2024-05-18T01:58:10Z"),
               *extra, ("Content-Length", str(len(block) if length is None else length))]
    if rtype == "response":
        headers.insert(4, ("Content-Type", "application/http; msgtype=response"))
    elif rtype == "conversion":
        headers.insert(4, ("Content-Type", "text/plain"))
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8") + block + b"\r\n\r\n"


def warcinfo(rng):
    return warc_record(rng, "warcinfo", b"software: fuzz_corpus\r\nformat: WARC File Format 1.0\r\n")


def http_block(body, content_type="text/html; charset=utf-8", status="200 OK", extra=()):
    head = f"HTTP/1.1 {status}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in extra)
    if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in extra):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1", "replace") + b"\r\n" + body


def html_page(title, paragraphs, generator=None):
    meta = f'<meta name="generator" content="{generator}">' if generator else ""
    body = "".join(f"<p>{p}</p>\n" for p in paragraphs)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>{meta}"
            f"</head><body><nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
            f"<main><h1>{title}</h1>\n{body}</main><footer>(c) example</footer></body></html>")


def warc_file(records, compress):
    """Per-record gzip members, like Common Crawl, or one plain stream."""
    return b"".join(gz(r) for r in records) if compress else b"".join(records)


def sentences(text):
    parts = [p.strip() for p in text.replace("\n", " ").split(". ") if p.strip()]
    return parts or [text]


# ---------------------------------------------------------------- damage


def truncate(rng, data):
    return data[:rng.randint(1, max(1, len(data) - 1))]


def flip_bytes(rng, data, n=None, start=0):
    buf = bytearray(data)
    for _ in range(n or rng.randint(1, 8)):
        i = rng.randrange(start, len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def insert_at(rng, data, piece, start=0):
    i = rng.randint(start, len(data))
    return data[:i] + piece + data[i:]


def garbage(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


# ---------------------------------------------------------------- the corpus


class _Builder:
    def __init__(self, out_dir, rng, texts):
        self.out, self.rng, self.texts = out_dir, rng, texts
        self.shards = []
        self._next_text = 0

    def add(self, name, data, damage, base, giant=0):
        assert not any(s.name == name for s in self.shards), name
        with open(os.path.join(self.out, name), "wb") as f:
            f.write(data)
        self.shards.append(Shard(name, damage, base, giant))

    def take(self, k):
        """The next `k` real texts (cycling)."""
        out = [self.texts[(self._next_text + i) % len(self.texts)] for i in range(k)]
        self._next_text += k
        return out

    def records(self, prefix, k):
        return [{"id": f"{prefix}-{i}", "text": t, "url": f"https://www.example.org/{prefix}/{i}",
                 "crawl_date": "2023-0%d-1%dT08:00:00Z" % (1 + i % 9, i % 10), "lang": "en",
                 "score": round(self.rng.random(), 4)}
                for i, t in enumerate(self.take(k))]

    def html_warc(self, prefix, k, compress=True):
        recs = [warcinfo(self.rng)]
        for i, t in enumerate(self.take(k)):
            page = html_page(f"{prefix} page {i}", sentences(t), generator="WordPress 6.4").encode()
            uri = f"https://www.example.org/{prefix}/{i}"
            recs.append(warc_record(self.rng, "request", b"GET / HTTP/1.1\r\n\r\n", uri))
            recs.append(warc_record(self.rng, "response", http_block(page), uri))
        return warc_file(recs, compress)

    def wet(self, prefix, k, compress=True):
        recs = [warcinfo(self.rng)] + [
            warc_record(self.rng, "conversion", t.encode("utf-8"), f"https://example.net/{prefix}/{i}")
            for i, t in enumerate(self.take(k))]
        return warc_file(recs, compress)


def build(out_dir, seed=0, texts=None):
    """Write the fuzz corpus into `out_dir`; returns the list of `Shard`s (also in _manifest.json)."""
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(seed)
    b = _Builder(out_dir, rng, texts if texts is not None else load_texts(seed=seed))
    real = {n: open(p, "rb").read() for n, p in REAL_WARCS.items()}

    # Intact bases, so the audit has documents to keep and every damage has a control.
    for name, data in real.items():
        b.add("real-" + name, data, "none", name)
    for i in range(3):
        b.add(f"clean-{i}.jsonl", jsonl_bytes(b.records(f"clean{i}", 8)), "none", "jsonl")
        b.add(f"clean-{i}.jsonl.gz", gz(jsonl_bytes(b.records(f"cleangz{i}", 8))), "none", "jsonl.gz")
        b.add(f"clean-{i}.jsonl.zst", zst(jsonl_bytes(b.records(f"cleanzst{i}", 8))), "none", "jsonl.zst")
        b.add(f"clean-{i}.parquet", parquet_bytes(pa.Table.from_pylist(b.records(f"cleanpq{i}", 8))),
              "none", "parquet")
        b.add(f"clean-html-{i}.warc.gz", b.html_warc(f"cleanhtml{i}", 4), "none", "html warc")
    b.add("clean-html.warc", b.html_warc("cleanplain", 4, compress=False), "none", "html warc")
    b.add("clean.warc.wet.gz", b.wet("cleanwet", 4), "none", "wet")
    b.add("clean.wet", b.wet("cleanwetplain", 4, compress=False), "none", "wet")

    # Truncation at random points.
    for name, data in real.items():
        for k in range(3):
            b.add(f"trunc{k}-{name}", truncate(rng, data), "truncated", name)
    for k in range(4):
        plain = jsonl_bytes(b.records(f"trunc{k}", 10))
        b.add(f"trunc{k}.jsonl", truncate(rng, plain), "truncated", "jsonl")
        b.add(f"trunc{k}.jsonl.gz", truncate(rng, gz(plain)), "truncated", "jsonl.gz")
        b.add(f"trunc{k}.jsonl.zst", truncate(rng, zst(plain)), "truncated", "jsonl.zst")
        table = pa.Table.from_pylist(b.records(f"truncpq{k}", 10))
        b.add(f"trunc{k}.parquet", truncate(rng, parquet_bytes(table, row_group_size=3)),
              "truncated", "parquet")
        b.add(f"trunc{k}-html.warc.gz", truncate(rng, b.html_warc(f"trunchtml{k}", 3)),
              "truncated", "html warc")
    b.add("trunc-html.warc", truncate(rng, b.html_warc("truncplain", 3, compress=False)),
          "truncated", "html warc")
    b.add("trunc.warc.wet.gz", truncate(rng, b.wet("truncwet", 3)), "truncated", "wet")

    # Flipped bytes.
    for name, data in real.items():
        for k in range(2):
            b.add(f"flip{k}-{name}", flip_bytes(rng, data), "byte_flips", name)
    for k in range(3):
        plain = jsonl_bytes(b.records(f"flip{k}", 10))
        b.add(f"flip{k}.jsonl", flip_bytes(rng, plain, 20), "byte_flips", "jsonl")
        b.add(f"flip{k}.jsonl.gz", flip_bytes(rng, gz(plain), start=10), "byte_flips", "jsonl.gz")
        b.add(f"flip{k}.jsonl.zst", flip_bytes(rng, zst(plain), start=6), "byte_flips", "jsonl.zst")
        table = pa.Table.from_pylist(b.records(f"flippq{k}", 10))
        b.add(f"flip{k}.parquet", flip_bytes(rng, parquet_bytes(table, row_group_size=4)),
              "byte_flips", "parquet")
        b.add(f"flip{k}-html.warc.gz", flip_bytes(rng, b.html_warc(f"fliphtml{k}", 3)),
              "byte_flips", "html warc")
        b.add(f"flip{k}-html.warc", flip_bytes(rng, b.html_warc(f"flipplain{k}", 3, compress=False), 12),
              "byte_flips", "html warc")

    # Compression that does not match the name.
    for k in range(2):
        plain = jsonl_bytes(b.records(f"wrongc{k}", 6))
        b.add(f"wrongc{k}-gzip-named.jsonl.zst", gz(plain), "wrong_compression", "jsonl")
        b.add(f"wrongc{k}-zstd-named.jsonl.gz", zst(plain), "wrong_compression", "jsonl")
        b.add(f"wrongc{k}-plain-named.jsonl.gz", plain, "wrong_compression", "jsonl")
        b.add(f"wrongc{k}-plain-named.jsonl.zst", plain, "wrong_compression", "jsonl")
        b.add(f"wrongc{k}-gzip-named.jsonl", gz(plain), "wrong_compression", "jsonl")
        b.add(f"wrongc{k}-twice.jsonl.gz", gz(gz(plain)), "wrong_compression", "jsonl")
    b.add("wrongc-plain-named.warc.gz", b.html_warc("wrongcw", 3, compress=False),
          "wrong_compression", "html warc")
    b.add("wrongc-zstd-named.warc.gz", zst(b.html_warc("wrongcz", 3, compress=False)),
          "wrong_compression", "html warc")
    b.add("wrongc-gzip-named.warc", b.html_warc("wrongcg", 3), "wrong_compression", "html warc")
    b.add("wrongc-whole-gzip.warc.gz", gz(b.html_warc("wrongcwhole", 3, compress=False)),
          "wrong_compression", "html warc")
    b.add("wrongc-zstd.warc.zst", zst(b.html_warc("wrongczst", 3, compress=False)),
          "none", "html warc")
    b.add("wrongc-gzip-named.parquet.gz",
          gz(parquet_bytes(pa.Table.from_pylist(b.records("wrongcpq", 4)))), "wrong_compression",
          "parquet")
    b.add("wrongc-parquet-named.jsonl",
          parquet_bytes(pa.Table.from_pylist(b.records("wrongcpj", 4))), "wrong_format", "parquet")
    b.add("wrongc-jsonl-named.parquet", jsonl_bytes(b.records("wrongcjp", 4)), "wrong_format", "jsonl")
    b.add("wrongc-warc-named.jsonl", real["whirlwind.warc.gz"], "wrong_format", "whirlwind.warc.gz")
    b.add("wrongc-jsonl-named.warc", jsonl_bytes(b.records("wrongcjw", 4)), "wrong_format", "jsonl")
    b.add("wrongc-jsonl-named.warc.wet.gz", gz(jsonl_bytes(b.records("wrongcjwet", 4))),
          "wrong_format", "jsonl")

    # NUL bytes.
    for k in range(3):
        rows = b.records(f"nul{k}", 8)
        rows[1]["text"] = rows[1]["text"].replace(" ", "\x00", 3)       # escaped as \u0000
        rows[2]["text"] = "\x00" * 2000 + rows[2]["text"]               # mostly NUL
        data = jsonl_bytes(rows)
        data = insert_at(rng, data, b"\x00" * rng.randint(1, 64))       # raw NULs in the stream
        b.add(f"nul{k}.jsonl", data, "nul_bytes", "jsonl")
        b.add(f"nul{k}.jsonl.gz", gz(data + b"\x00" * 100 + b"\n"), "nul_bytes", "jsonl")
        b.add(f"nul{k}-html.warc", insert_at(rng, b.html_warc(f"nulw{k}", 3, compress=False),
                                              b"\x00" * rng.randint(1, 500)), "nul_bytes", "html warc")
    b.add("nul-between-members.warc.gz",
          real["example.warc.gz"] + b"\x00" * 4096 + real["whirlwind.warc.gz"], "nul_bytes", "real")
    page = html_page("nul page", [t.replace(" ", " \x00", 5) for t in b.take(2)]).encode()
    b.add("nul-in-html.warc.gz", warc_file([warcinfo(rng), warc_record(rng, "response", http_block(page))],
                                           True), "nul_bytes", "html warc")
    b.add("nul-only.jsonl", b"\x00" * 5000, "nul_bytes", "none")

    # Giant lines: one under and one over GIANT_LIMIT, one without a newline at the end.
    for k in range(2):
        rows = b.records(f"giant{k}", 4)
        big = " ".join(b.take(40))
        rows[1]["text"] = (big + " ") * (300_000 // len(big) + 1)                # ~300 KB: a document
        rows[2]["text"] = (big + " ") * (int(1.5 * GIANT_LIMIT) // len(big) + 1)  # over the limit
        data = jsonl_bytes(rows)
        b.add(f"giant{k}.jsonl", data, "giant_lines", "jsonl", len(rows[2]["text"]))
        b.add(f"giant{k}.jsonl.gz", gz(data), "giant_lines", "jsonl", len(rows[2]["text"]))
    noeol = jsonl_bytes(b.records("noeol", 3)) + json.dumps({"id": "noeol-last", "text": " ".join(
        b.take(30))}).encode()
    b.add("giant-no-final-newline.jsonl", noeol, "giant_lines", "jsonl")
    b.add("giant-blank-line.jsonl", jsonl_bytes(b.records("giantblank", 2)) + b" " * (GIANT_LIMIT + 10)
          + b"\n" + jsonl_bytes(b.records("giantblank2", 2)), "giant_lines", "jsonl", GIANT_LIMIT + 10)
    b.add("giant-not-json.jsonl", b"x" * (2 * GIANT_LIMIT) + b"\n" + jsonl_bytes(b.records("giantnj", 2)),
          "giant_lines", "jsonl", 2 * GIANT_LIMIT)
    big = " ".join(b.take(60)).encode()
    page = html_page("giant", [big.decode()] * (int(1.3 * GIANT_LIMIT) // len(big) + 1)).encode()
    b.add("giant-response.warc.gz", warc_file([warcinfo(rng), warc_record(rng, "response", http_block(page))],
                                              True), "giant_lines", "html warc", len(page))
    b.add("giant-header.warc", warc_record(rng, "response", http_block(b"<p>x</p>"),
                                           extra=[("X-Junk", "y" * 200_000)]),
          "giant_lines", "html warc", 200_000)

    # Fields of the wrong type.
    odd_values = [42, 3.5, True, None, ["a", "list"], {"an": "object"}, "", [], {}, 1e308,
                  -10 ** 30, float("nan")]
    for k, bad in enumerate(odd_values):
        rows = b.records(f"type{k}", 6)
        rows[1]["text"] = bad
        rows[2]["id"] = {"nested": bad} if k % 2 else [bad, "x"]
        rows[3]["id"] = bad
        rows[4]["url"] = bad
        rows[4]["crawl_date"] = bad
        rows[5]["lang"] = {"deep": [bad, {"x": bad}]}
        b.add(f"types{k}.jsonl", jsonl_bytes(rows), "wrong_field_types", "jsonl")
    rows = b.records("dates", 8)
    for row, date in zip(rows, ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "yesterday",
                                "2024-13-45", 10 ** 12, -10 ** 11, "1970-01-01", 1.7e9]):
        row["crawl_date"] = date
    b.add("types-dates.jsonl", jsonl_bytes(rows), "wrong_field_types", "jsonl")
    rows = b.records("urls", 6)
    for row, url in zip(rows, ["http://[::1", "not a url", "https://" + "a" * 70_000 + ".com/",
                               "http://exa mple.com/\x00", "https://www.\u00e9xample.org/", "//x"]):
        row["url"] = url
    b.add("types-urls.jsonl", jsonl_bytes(rows), "wrong_field_types", "jsonl")
    texts = b.take(6)
    b.add("types-text-int.parquet", parquet_bytes(pa.table({"id": ["a", "b"], "text": [1, 2]})),
          "wrong_field_types", "parquet")
    b.add("types-text-list.parquet", parquet_bytes(pa.table({"id": ["a", "b"], "text": [[texts[0]], None]})),
          "wrong_field_types", "parquet")
    b.add("types-text-struct.parquet", parquet_bytes(pa.table({
        "text": pa.array([{"t": texts[1]}, {"t": texts[2]}])})), "wrong_field_types", "parquet")
    b.add("types-text-binary.parquet", parquet_bytes(pa.table({
        "id": ["bin-a", "bin-b"], "text": pa.array([texts[3].encode(), b"\xff\xfe"], pa.binary())})),
          "wrong_field_types", "parquet")
    b.add("types-id-struct.parquet", parquet_bytes(pa.table({
        "id": pa.array([{"a": 1}, {"a": 2}]), "text": texts[4:6],
        "crawl_date": pa.array([0, 10 ** 15], pa.timestamp("s")),
        "url": [1, 2]})), "wrong_field_types", "parquet")
    b.add("types-dates.parquet", parquet_bytes(pa.table({
        "id": ["d1", "d2", "d3"], "text": b.take(3),
        "crawl_date": pa.array([0, 1, None], pa.date32()),
        "extra": pa.array([b"\x00\xff", None, b"x"], pa.binary())})), "wrong_field_types", "parquet")
    b.add("types-no-text.parquet", parquet_bytes(pa.table({"body": b.take(3)})), "wrong_field_types",
          "parquet")
    b.add("types-empty-table.parquet", parquet_bytes(pa.table({"id": pa.array([], pa.string()),
                                                               "text": pa.array([], pa.string())})),
          "empty", "parquet")

    # Duplicate ids: within a shard, across shards, the same file under two names.
    rows = b.records("dupin", 6)
    rows[3]["id"] = rows[1]["id"]
    rows[4]["id"] = rows[1]["id"]
    rows[5] = dict(rows[2])  # the same record twice
    b.add("dup-within.jsonl", jsonl_bytes(rows), "duplicate_ids", "jsonl")
    shared_ids = b.records("dupacross", 5)
    b.add("dup-across-a.jsonl", jsonl_bytes(shared_ids), "duplicate_ids", "jsonl")
    other = b.records("dupacrossb", 5)
    for row, src in zip(other, shared_ids):
        row["id"] = src["id"]
    b.add("dup-across-b.jsonl.gz", gz(jsonl_bytes(other)), "duplicate_ids", "jsonl")
    b.add("dup-across-c.parquet", parquet_bytes(pa.Table.from_pylist(other)), "duplicate_ids", "parquet")
    for name in ("whirlwind.warc.gz", "example.warc.gz"):
        b.add("dup-copy-" + name, real[name], "duplicate_ids", name)
    b.add("dup-copy-a.jsonl", open(os.path.join(out_dir, "clean-0.jsonl"), "rb").read(),
          "duplicate_ids", "clean-0.jsonl")
    b.add("dup-copy-b.jsonl.zst", open(os.path.join(out_dir, "clean-0.jsonl.zst"), "rb").read(),
          "duplicate_ids", "clean-0.jsonl.zst")

    # Empty files.
    for name in ("empty.jsonl", "empty-zero-byte.jsonl.gz", "empty-zero-byte.jsonl.zst",
                 "empty-zero-byte.warc.gz", "empty.warc", "empty.wet", "empty-zero-byte.warc.wet.gz",
                 "empty.parquet", "empty-zero-byte.parquet.gz"):
        b.add(name, b"", "empty", "none")
    b.add("empty-gzip-member.jsonl.gz", gz(b""), "empty", "none")
    b.add("empty-zstd-frame.jsonl.zst", zst(b""), "empty", "none")
    b.add("empty-gzip-member.warc.gz", gz(b""), "empty", "none")
    b.add("empty-blank-lines.jsonl", b"\n \n\t\n\r\n", "empty", "none")
    b.add("empty-whitespace.warc", b"\r\n\r\n  \n", "empty", "none")

    # Random garbage under every name.
    for k, name in enumerate(("x.jsonl", "x.jsonl.gz", "x.jsonl.zst", "x.parquet", "x.warc",
                              "x.warc.gz", "x.warc.wet.gz", "x.wet", "x.wat", "x.warc.zst")):
        data = garbage(rng, rng.randint(1, 20_000))
        if name.endswith(".gz") and k % 2:
            data = b"\x1f\x8b\x08" + data  # a gzip magic in front of the noise
        if name.endswith(".parquet"):
            data = b"PAR1" + data + b"PAR1"
        b.add(f"garbage{k}-{name}", data, "garbage", "none")
    b.add("garbage-warc-header-only.warc", b"WARC/1.0\r\nWARC-Type: response\r\nContent-Length: 999999\r\n\r\n"
          + garbage(rng, 300), "garbage", "none")
    b.add("garbage-text.txt", b"plain notes, not a shard\n", "unknown_format", "none")
    b.add("garbage-noext", garbage(rng, 100), "unknown_format", "none")

    # Mixed encodings.
    for k in range(3):
        rows = b.records(f"enc{k}", 6)
        lines = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in rows]
        lines[1] = json.dumps({"id": f"enc{k}-latin1", "text": "Caf\u00e9 cr\u00e8me, na\u00efve "
                               + rows[1]["text"]}, ensure_ascii=False).encode("latin-1", "replace")
        lines[2] = json.dumps({"id": f"enc{k}-cp1252", "text": "\u201cquoted\u201d \u2013 "
                               + rows[2]["text"]}, ensure_ascii=False).encode("cp1252", "replace")
        lines[3] = b'{"id": "enc%d-surrogate", "text": "lone \\ud800 surrogate %s"}' % (
            k, rows[3]["text"].encode("ascii", "replace"))
        lines[4] = b'{"id": "enc%d-\\udfff", "text": "id with a lone surrogate"}' % k
        b.add(f"enc{k}.jsonl", b"\n".join(lines) + b"\n", "mixed_encoding", "jsonl")
    rows = b.records("bom", 4)
    b.add("enc-bom.jsonl", b"\xef\xbb\xbf" + jsonl_bytes(rows), "mixed_encoding", "jsonl")
    b.add("enc-utf16.jsonl", jsonl_bytes(b.records("utf16", 3)).decode().encode("utf-16"),
          "mixed_encoding", "jsonl")
    rows = b.records("surr", 3)
    rows[0]["url"] = "https://example.org/\ud83d"
    rows[1]["lang"] = "\udc80\udc81"
    b.add("enc-surrogates.jsonl", jsonl_bytes(rows), "mixed_encoding", "jsonl")
    b.add("enc-crlf.jsonl", jsonl_bytes(b.records("crlf", 4)).replace(b"\n", b"\r\n"), "mixed_encoding", "jsonl")
    b.add("enc-cr-only.jsonl", jsonl_bytes(b.records("cronly", 4)).replace(b"\n", b"\r"), "mixed_encoding",
          "jsonl")
    t = b.take(3)
    recs = [warcinfo(rng),
            warc_record(rng, "response", http_block(html_page("latin", [t[0] + " caf\u00e9"]).encode("latin-1", "replace"),
                                                    "text/html; charset=utf-8")),
            warc_record(rng, "response", http_block(html_page("bogus", [t[1]]).encode(),
                                                    "text/html; charset=no-such-charset")),
            warc_record(rng, "response", http_block(html_page("utf16", [t[2]]).encode("utf-16"),
                                                    "text/html; charset=utf-16"))]
    b.add("enc-charsets.warc.gz", warc_file(recs, True), "mixed_encoding", "html warc")
    b.add("enc-wet-latin1.wet", warc_file([warc_record(rng, "conversion", ("caf\u00e9 " + b.take(1)[0])
                                                       .encode("latin-1", "replace"))], False),
          "mixed_encoding", "wet")

    # JSON that is valid but hostile.
    rows = b.records("json", 3)
    b.add("json-deep.jsonl", jsonl_bytes([rows[0], b"[" * 100_000 + b"]" * 100_000,
                                          b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                                          b'{"id": "deep-text", "text": "ok ' + b"x " * 30 + b'", "m": '
                                          + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
                                          rows[1]]), "hostile_json", "jsonl")
    b.add("json-odd.jsonl", jsonl_bytes([b"[1, 2]", b'"a string"', b"12", b"null", b"true",
                                         b'{"id": "nan", "text": NaN}', b'{"text": "dup", "text": '
                                         + json.dumps(rows[2]["text"]).encode() + b"}",
                                         b'{"id": ' + b"9" * 5000 + b', "text": "big int id"}',
                                         b'{"text": "trailing comma",}', b"{}",
                                         b'{"text": "sep\\u2028line\\u2029para \\u0085 next"}']),
          "hostile_json", "jsonl")

    # WARC responses with broken HTML and broken HTTP framing.
    t = b.take(16)
    pages = [
        ("unclosed", f"<html><body><div><p>{t[0]}<div><span>{t[1]}<table><tr><td>cell"),
        ("mismatched", f"<p><b><i>{t[2]}</b></i></p></div></div></body><p>{t[3]}</html></html>"),
        ("script-open", f"<html><body><p>{t[4]}</p><script>var x = '<p>not text</p>';"),
        ("comment-open", f"<html><body><p>{t[5]}</p><!-- {t[6]}"),
        ("nested", "<div>" * 20_000 + f"<p>{t[7]}</p>" + "</div>" * 20_000),
        ("attrs", f"<p class='a\"b' data-x=<<>> {'x=1 ' * 10000}>{t[8]}</p>"),
        ("cdata", f"<html><![CDATA[ {t[9]} ]]><p>{t[10]}</p><svg><foreignObject><p>{t[11]}"),
        ("only-tags", "<html><head></head><body>" + "<br>" * 5000 + "</body></html>"),
        ("entities", f"<p>&amp;&lt;&#0;&#x110000;&#xD800;&bogus; {t[12]} &#99999999999;</p>"),
        ("meta-generator", f"<html><head><meta name=GENERATOR content='{'g' * 5000}'>"
                           f"<meta name='generator'></head><p>{t[13]}</p>"),
    ]
    recs = [warcinfo(rng)]
    for label, page in pages:
        recs.append(warc_record(rng, "response", http_block(page.encode()), f"https://broken.example/{label}"))
    b.add("html-broken.warc.gz", warc_file(recs, True), "broken_html", "html warc")
    b.add("html-broken.warc", warc_file(recs, False), "broken_html", "html warc")
    body = html_page("framing", [t[14]]).encode()
    framing = [
        ("no-content-type", http_block(body, content_type=None)),
        ("image", http_block(b"\x89PNG\r\n\x1a\n" + garbage(rng, 2000), "image/png")),
        ("status-404", http_block(body, status="404 Not Found")),
        ("status-garbage", b"HTTP/1.1 abc\r\nContent-Type: text/html\r\n\r\n" + body),
        ("no-http-head", body),
        ("http-head-only", b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"),
        ("bad-gzip-encoding", http_block(body, extra=[("Content-Encoding", "gzip")])),
        ("real-gzip-encoding", http_block(gz(body), extra=[("Content-Encoding", "gzip")])),
        ("bad-chunks", http_block(b"zz\r\n" + body + b"\r\n0\r\n\r\n",
                                  extra=[("Transfer-Encoding", "chunked")])),
        ("short-chunks", http_block(b"ffff\r\n" + body, extra=[("Transfer-Encoding", "chunked")])),
        ("brotli", http_block(garbage(rng, 300), extra=[("Content-Encoding", "br")])),
        ("text-plain-latin1", http_block(("caf\u00e9 " + t[15]).encode("latin-1", "replace"), "text/plain")),
        ("text-plain-bogus", http_block(t[15].encode(), "text/plain; charset=x-nonsense")),
        ("xml", http_block(b"<?xml version='1.0'?><rss><item><title>" + t[15].encode()
                           + b"</title></item></rss>", "application/xml")),
        ("empty-body", http_block(b"")),
    ]
    recs = [warcinfo(rng)]
    for label, block in framing:
        recs.append(warc_record(rng, "response", block, f"https://framing.example/{label}"))
    b.add("http-framing.warc.gz", warc_file(recs, True), "broken_http", "html warc")
    recs = [warcinfo(rng),
            warc_record(rng, "response", http_block(body), "https://len.example/long", length=len(body) + 5000),
            warc_record(rng, "response", http_block(body), "https://len.example/short", length=20),
            warc_record(rng, "response", http_block(body), "https://len.example/neg", length=-5),
            warc_record(rng, "response", http_block(body), "https://len.example/nan", length="abc"),
            warc_record(rng, "response", http_block(body), "https://len.example/ok")]
    b.add("warc-lengths.warc", warc_file(recs, False), "broken_http", "html warc")
    b.add("warc-lengths.warc.gz", warc_file(recs, True), "broken_http", "html warc")
    b.add("warc-version.warc", warc_file([warc_record(rng, "response", http_block(body)).replace(
        b"WARC/1.0", b"WARC/9.9", 1)], False), "broken_http", "html warc")

    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump({"seed": seed, "shards": [asdict(s) for s in b.shards]}, f, indent=1)
    return b.shards


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    shards = build(args.out_dir, args.seed)
    total = sum(os.path.getsize(os.path.join(args.out_dir, s.name)) for s in shards)
    kinds = {}
    for s in shards:
        kinds[s.damage] = kinds.get(s.damage, 0) + 1
    print(f"{len(shards)} shards, {total / 1e6:.1f} MB in {args.out_dir}")
    for k, v in sorted(kinds.items()):
        print(f"  {k:20s} {v}")


if __name__ == "__main__":
    main()
