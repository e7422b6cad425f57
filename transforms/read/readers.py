"""Shard readers: WARC/WET, JSONL and Parquet records in, document or dead-letter rows out.

Every record that could hold a document yields exactly one row, so that
`records read = documents + dead letters` holds per shard. Records that are not documents
by nature (warcinfo, request, metadata, revisit, redirects) are only counted in
`counts["skipped_<kind>"]`. A failure that stops a shard midway (truncated gzip, garbage
between records) yields one dead letter at the position where reading stopped; the
records before it are kept.
"""
import json
import posixpath

from corpus_audit.transforms.read import html_text
from corpus_audit.transforms.read.records import (
    DEFAULT_MAX_DOC_BYTES,
    dead_letter,
    make_document,
)
from corpus_audit.transforms.read.shard_io import (
    GZIP_MAGIC,
    ZstdReader,
    detect_format,
    open_decompressed,
    open_raw,
    sniff_compression,
)

JSON_RESERVED = ("text", "id", "url", "crawl_date")
_HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
_TEXT_TYPES = ("text/plain",)
SNIPPET_BYTES = 1000
_PAYLOAD_FAILED = "the payload"


def read_shard(path, fmt=None, counts=None, max_bytes=DEFAULT_MAX_DOC_BYTES):
    """Rows of one shard; a shard that cannot be opened at all is one dead letter."""
    counts = counts if counts is not None else {}
    fmt = fmt or detect_format(path)
    reader = _READERS.get(fmt)
    if reader is None:
        yield dead_letter(path, fmt or "unknown", -1, "unknown_format",
                          "cannot tell the format from the file name; pass --format")
        return
    if _size_of(path) == 0:
        yield dead_letter(path, fmt, -1, "empty_shard", "the shard holds no records (0 bytes)")
        return
    try:
        yield from reader(path, counts, max_bytes)
    except Exception as exc:  # the reader could not even start (missing file, bad magic)
        yield dead_letter(path, fmt, -1, "unreadable_shard", f"{type(exc).__name__}: {exc}")


def _bump(counts, key, n=1):
    counts[key] = counts.get(key, 0) + n


def _fallback_id(path, position):
    return f"{posixpath.basename(path)}#{position}"


# ---------------------------------------------------------------- WARC / WET


def _read_warc(path, counts, max_bytes, fmt="warc"):
    """WARC response (or WET conversion) records; after corrupt data, resume at the next record.

    The row of the last record read is held back until the end of the stream has been
    checked: a shard cut inside its last record (a gzip member or zstd frame that never ends,
    a plain record whose block is shorter than its Content-Length) must not yield that record
    as a shorter document, nor lose it without a trace.
    """
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    wanted = WarcRecordType.conversion if fmt == "wet" else WarcRecordType.response
    size = _size_of(path)
    base, pending = 0, None  # pending: (offset, error) of corrupt data not yet reported
    records_seen = 0
    while base is not None:
        held = None  # (position, row or None) of the last record: yielded once the next is read
        stream = open_raw(path)
        try:
            if base:
                stream.seek(base)
            records = iter(ArchiveIterator(stream, parse_http=(fmt != "wet"), auto_decode="all"))
            last_pos, last_block, failure, read_any = base, 0, None, False
            payload_failed = False  # the last record's payload raised: it has its dead letter
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except Exception as exc:  # only the parser's own failures become dead letters
                    failure = f"{type(exc).__name__}: {exc}"
                    break
                if held is not None and held[1] is not None:
                    yield held[1]
                held = None
                last_pos, read_any = record.stream_pos, True  # fastwarc counts from the file start
                last_block, payload_failed = _block_length(record), False
                records_seen += 1
                if pending:  # a record was read again: the corrupt stretch is over
                    yield _corrupt(path, fmt, *pending, resumed=base)
                    pending = None
                if record.record_type != wanted:
                    _bump(counts, f"skipped_{record.record_type}")
                    held = (last_pos, None)
                    continue
                row = _warc_record_row(record, last_pos, path, fmt, counts, max_bytes)
                payload_failed = row is not None and row.get("detail", "").startswith(_PAYLOAD_FAILED)
                held = (last_pos, row)
            end = _tell(stream)
        finally:
            stream.close()
        stopped_early = failure is not None or (size is not None and end is not None and end < size)
        cut = None
        if not stopped_early and read_any:
            cut = _cut_inside(path, last_pos, last_block, size)
        if cut is not None:
            cut_kind, why = cut
            row = held[1] if held else None
            if row is not None and row.get("record_position") == last_pos:
                held = (last_pos, dead_letter(
                    path, fmt, last_pos, f"{cut_kind}_record",
                    f"the shard {'ends' if cut_kind == 'truncated' else 'is damaged'} inside this "
                    f"record ({why})", record_id=row.get("doc_id") or row.get("record_id"),
                    raw=row.get("text") or row.get("snippet")))
            else:
                held = (last_pos, dead_letter(
                    path, fmt, last_pos, f"{cut_kind}_shard",
                    f"the shard {'ends' if cut_kind == 'truncated' else 'is damaged'} inside the "
                    f"record at offset {last_pos:,} ({why})"))
        if held is not None and held[1] is not None:
            yield held[1]
        if not stopped_early:
            # A record claiming more bytes than the shard has left either is the cut last
            # record, or has a wrong Content-Length and swallowed the records after it:
            # look for another record header after its start.
            last_row = held[1] if held else None
            if last_row is not None and last_row.get("reason") == "truncated_record":
                base = _next_record_start(path, last_pos + 1)
                continue
            break
        # fastwarc either raised or stopped quietly before the end: look for the next record.
        # (After a payload that failed to decode, the iterator fails on the same bytes: that
        # record has its dead letter already.)
        if not pending and not (payload_failed and read_any):
            pending = (last_pos, failure or "stream ended early")
        base = _next_record_start(path, (last_pos if read_any else base) + 1)
    if pending:
        yield _corrupt(path, fmt, *pending, resumed=None)
    elif records_seen == 0:
        yield _no_records(path, fmt)


def _block_length(record):
    try:
        return int(record.headers.get("Content-Length") or 0)
    except ValueError:
        return 0


def _no_records(path, fmt):
    """The dead letter of a WARC stream in which not one record was found."""
    head = _decompressed_head(path, 4096)
    if head is not None and not head.strip():
        return dead_letter(path, fmt, -1, "empty_shard", "the shard holds no records "
                           "(its content is empty or only whitespace)")
    return dead_letter(path, fmt, 0, "corrupt_shard", "no WARC record found in the shard",
                       raw=head)


def _decompressed_head(path, n):
    """Up to `n` bytes of the shard's decompressed content; None if it does not decompress."""
    try:
        with open_decompressed(path) as stream:
            return stream.read(n)
    except Exception:
        return None


def _cut_inside(path, last_pos, last_block, size):
    """("truncated" | "corrupt", why) if the shard ends inside its last record (at
    `last_pos`), or None if it ends cleanly.

    Compressed: the gzip members (or zstd frames) from the one holding the last record on
    must all be complete. Plain: no record header may start after the last record's block.
    """
    with open_raw(path) as stream:
        stream.seek(last_pos)
        comp, start = sniff_compression(stream.read(4)), last_pos
        if comp is None:
            stream.seek(0)
            comp, start = sniff_compression(stream.read(4)), 0
            if comp is None:  # plain WARC
                nxt = _next_record_start(path, last_pos + last_block + 1)
                return None if nxt is None else ("truncated", f"the record header at offset {nxt:,} "
                                                              "is incomplete")
        stream.seek(start)
        if comp == "zstd":
            reader = ZstdReader(stream)
            try:
                while reader.read(1 << 20):
                    pass
            except EOFError:
                return "truncated", "its zstd frame is cut"
            except Exception as exc:
                return "corrupt", f"its zstd frame does not decode: {type(exc).__name__}: {exc}"
            return None
        return _gzip_cut(stream)


def _gzip_cut(stream):
    """("truncated" | "corrupt", why) if a stream of gzip members ends inside one, or
    None if every member is complete
    (bytes after the last member that do not start another one are not a cut)."""
    import zlib

    dec, leftover = None, b""
    while True:
        if dec is not None and dec.unconsumed_tail:
            data = dec.unconsumed_tail
        elif leftover:
            data, leftover = leftover, b""
        else:
            data = stream.read(1 << 16)
            if not data:
                return None if dec is None else ("truncated", "its gzip member is cut")
        if dec is None:
            if not data.startswith(GZIP_MAGIC):
                return None
            dec = zlib.decompressobj(31)
        try:
            dec.decompress(data, 1 << 20)
        except zlib.error as exc:
            return "corrupt", f"its gzip member does not decode: {exc}"
        if dec.eof:
            leftover, dec = dec.unused_data, None


def _corrupt(path, fmt, offset, failure, resumed):
    after = f"; resumed at offset {resumed:,}" if resumed is not None else "; nothing readable after it"
    return dead_letter(path, fmt, offset, "corrupt_shard",
                       f"unreadable data after the record at offset {offset:,} ({failure}){after}")


_GZIP_MAGIC = b"\x1f\x8b\x08"


def _next_record_start(path, start, chunk=1 << 20):
    """Offset of the next gzip member or plain record that begins with a WARC header."""
    import zlib

    with open_raw(path) as stream:
        stream.seek(start)
        offset, tail = start, b""
        while True:
            data = stream.read(chunk)
            if not data:
                return None
            buf = tail + data
            buf_start = offset - len(tail)
            for magic in (_GZIP_MAGIC, b"WARC/1.0\r\n", b"WARC/1.1\r\n"):
                i = buf.find(magic)
                while i != -1:
                    if magic == _GZIP_MAGIC:
                        try:
                            head = zlib.decompressobj(31).decompress(buf[i:i + 4096], 16)
                        except zlib.error:
                            head = b""
                        ok = head.startswith(b"WARC/")
                    else:
                        ok = True
                    if ok and buf_start + i >= start:
                        return buf_start + i
                    i = buf.find(magic, i + 1)
            offset += len(data)
            tail = buf[-4096:]


def _tell(stream):
    try:
        return stream.tell()
    except Exception:
        return None


def _size_of(path):
    from apache_beam.io.filesystems import FileSystems

    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:
        return None


def _warc_record_row(record, pos, path, fmt, counts, max_bytes):
    headers = record.headers
    record_id = (headers.get("WARC-Record-ID") or "").strip("<>") or None
    if record_id and record_id.startswith("urn:uuid:"):
        record_id = record_id[len("urn:uuid:"):]
    url = (headers.get("WARC-Target-URI") or "").strip().strip("<>") or None
    date = headers.get("WARC-Date")
    doc_id = record_id or _fallback_id(path, pos)
    content_type = None
    generator = None
    if record.content_length > max_bytes:
        record.consume()
        return dead_letter(path, fmt, pos, "too_large",
                           f"record of {record.content_length:,} bytes is over --max-doc-bytes",
                           record_id=doc_id)
    if fmt == "wet":
        payload, problem = _read_payload(record, max_bytes)
        if problem:
            return dead_letter(path, fmt, pos, *problem, record_id=doc_id, raw=payload)
        if len(payload) < record.content_length:
            return _truncated(path, fmt, pos, len(payload), record.content_length, doc_id, payload)
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return dead_letter(path, fmt, pos, "invalid_utf8", str(exc), record_id=doc_id, raw=payload)
    else:
        status = _status(record)
        if status is not None and not 200 <= status < 300:
            _bump(counts, "skipped_http_status")
            record.consume()
            return None
        payload, problem = _read_payload(record, max_bytes)
        if problem:
            return dead_letter(path, fmt, pos, *problem, record_id=doc_id, raw=payload)
        http = record.http_headers
        encoded = http is not None and (http.get("Transfer-Encoding") or http.get("Content-Encoding"))
        if len(payload) < record.content_length and not encoded:
            return _truncated(path, fmt, pos, len(payload), record.content_length, doc_id, payload)
        if http is None:
            return dead_letter(path, fmt, pos, "corrupt_record",
                               "response record without a parseable HTTP status line and headers",
                               record_id=doc_id, raw=payload)
        content_type = (record.http_content_type or "").split(";")[0].strip().lower() or None
        charset = record.http_charset
        try:
            if content_type in _TEXT_TYPES:
                text = html_text.decode(payload, charset)
            elif content_type is None or content_type in _HTML_TYPES:
                text, generator = html_text.extract(payload, charset)
            else:
                return dead_letter(path, fmt, pos, "unsupported_content_type",
                                   f"HTTP Content-Type {content_type!r} is not text",
                                   record_id=doc_id, raw=payload)
        except Exception as exc:  # the extractor gave up on this page: lose the page, not the shard
            return dead_letter(path, fmt, pos, "corrupt_record",
                               f"text extraction failed: {type(exc).__name__}: {exc}",
                               record_id=doc_id, raw=payload)
    return make_document(doc_id=doc_id, text=text, shard=path, fmt=fmt, position=pos, url=url,
                         crawl_date=date, content_type=content_type, html_generator=generator,
                         max_bytes=max_bytes)


def _read_payload(record, max_bytes):
    """(payload bytes, None) or (what was read, (reason, detail)) for a payload that is cut,
    does not decode (bad chunked framing or Content-Encoding), or decodes to over
    `max_bytes` (a compression bomb must not be inflated in memory)."""
    try:
        payload = record.reader.read(max_bytes + 1)
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"
        if "end of file" in str(exc).lower() or isinstance(exc, EOFError):
            return b"", ("truncated_record", f"{_PAYLOAD_FAILED} ends early ({message})")
        return b"", ("corrupt_record", f"{_PAYLOAD_FAILED} does not decode ({message})")
    if len(payload) > max_bytes:
        try:
            record.consume()
        except Exception:
            pass
        return payload[:SNIPPET_BYTES], ("too_large", f"decoded payload is over the {max_bytes:,}-byte "
                                                      "limit (--max-doc-bytes)")
    return payload, None


def _truncated(path, fmt, pos, got, expected, doc_id, payload):
    return dead_letter(path, fmt, pos, "truncated_record",
                       f"payload has {got:,} of its {expected:,} bytes", record_id=doc_id, raw=payload)


def _status(record):
    try:
        return record.http_headers.status_code
    except Exception:
        return None


def _read_wet(path, counts, max_bytes):
    return _read_warc(path, counts, max_bytes, fmt="wet")


# ---------------------------------------------------------------- JSONL


def _read_jsonl(path, counts, max_bytes):
    with open_decompressed(path) as stream:
        line_no, records = -1, 0
        while True:
            line_no += 1
            try:
                line = stream.readline(max_bytes + 1)
            except Exception as exc:  # gzip/zstd stream cut short or corrupt (zstd has its own error)
                yield _stream_error(path, "jsonl", line_no, exc)
                return
            if not line:
                if records == 0:  # nothing but blank lines, or nothing at all
                    yield dead_letter(path, "jsonl", -1, "empty_shard", "the shard holds no records "
                                      f"(its content is {'only blank lines' if line_no else 'empty'})")
                return
            records += 1
            if len(line) > max_bytes and not line.endswith(b"\n"):
                head = line[:200]
                try:
                    while line and not line.endswith(b"\n"):  # skip the rest without holding it
                        line = stream.readline(1 << 20)
                except Exception as exc:
                    yield dead_letter(path, "jsonl", line_no, "too_large",
                                      f"line is over the {max_bytes:,}-byte limit (--max-doc-bytes)",
                                      raw=head)
                    yield _stream_error(path, "jsonl", line_no + 1, exc)
                    return
                yield dead_letter(path, "jsonl", line_no, "too_large",
                                  f"line is over the {max_bytes:,}-byte limit (--max-doc-bytes)",
                                  raw=head)
                continue
            if not line.strip():
                _bump(counts, "skipped_blank_line")
                records -= 1
                continue
            yield _json_row(line, path, line_no, max_bytes)


def _stream_error(path, fmt, line_no, exc):
    """The dead letter of a compressed stream that stops at line `line_no`: cut short (EOF)
    or holding bytes that do not decompress."""
    reason = "truncated_shard" if isinstance(exc, EOFError) else "corrupt_shard"
    return dead_letter(path, fmt, line_no, reason,
                       f"reading stopped at line {line_no}: {type(exc).__name__}: {exc}")


def _json_row(line, path, line_no, max_bytes):
    try:
        obj = json.loads(line)
    except UnicodeDecodeError as exc:
        return dead_letter(path, "jsonl", line_no, "invalid_utf8", str(exc), raw=line)
    except ValueError as exc:
        return dead_letter(path, "jsonl", line_no, "malformed_json", str(exc), raw=line)
    except RecursionError:
        return dead_letter(path, "jsonl", line_no, "malformed_json",
                           "JSON nested too deeply to parse", raw=line)
    if not isinstance(obj, dict):
        return dead_letter(path, "jsonl", line_no, "malformed_json",
                           f"expected a JSON object, got {type(obj).__name__}", raw=line)
    return _mapping_row(obj, path, "jsonl", line_no, max_bytes)


class Unconvertible:
    """A Parquet value that pyarrow cannot turn into a Python object (e.g. a timestamp
    outside the years 1-9999); kept in place of the value so that only its record suffers."""

    def __init__(self, error):
        self.error = error

    def __str__(self):
        return f"<unconvertible: {self.error}>"

    __repr__ = __str__


def _safe_json(obj, limit=400):
    try:
        return json.dumps(obj, default=str, ensure_ascii=False)[:limit]
    except (RecursionError, ValueError):
        return "<value nested too deeply to print>"


def _mapping_row(obj, path, fmt, position, max_bytes):
    raw_id = obj.get("id")
    if raw_id in (None, ""):
        doc_id = _fallback_id(path, position)
    elif isinstance(raw_id, str) or (isinstance(raw_id, (int, float)) and not isinstance(raw_id, bool)):
        doc_id = str(raw_id)
    else:
        return dead_letter(path, fmt, position, "bad_field_type",
                           f"`id` is {type(raw_id).__name__}, expected a string or a number",
                           raw=_safe_json(obj))
    text = obj.get("text")
    if text is None:
        return dead_letter(path, fmt, position, "missing_text_field", "record has no `text` field",
                           record_id=doc_id, raw=_safe_json(obj))
    if not isinstance(text, str):
        detail = f"`text` is {type(text).__name__}, expected a string"
        if isinstance(text, Unconvertible):
            detail = f"`text` cannot be read: {text.error}"
        return dead_letter(path, fmt, position, "bad_field_type", detail,
                           record_id=doc_id, raw=_safe_json(text))
    url = obj.get("url")
    url = url if isinstance(url, str) and url else None
    metadata = {k: v for k, v in obj.items() if k not in JSON_RESERVED}
    return make_document(doc_id=doc_id, text=text, shard=path, fmt=fmt, position=position,
                         url=url, crawl_date=obj.get("crawl_date"), metadata=metadata,
                         max_bytes=max_bytes)


# ---------------------------------------------------------------- Parquet


def _read_parquet(path, counts, max_bytes):
    import pyarrow.parquet as pq

    with open_raw(path) as stream:
        pf = pq.ParquetFile(stream)
        names = pf.schema_arrow.names
        if pf.metadata.num_rows == 0:
            yield dead_letter(path, "parquet", -1, "empty_shard", "the shard holds no records "
                              f"(a Parquet file with 0 rows; columns: {', '.join(names)[:150]})")
            return
        if "text" not in names:
            for row in range(pf.metadata.num_rows):
                yield dead_letter(path, "parquet", row, "missing_text_field",
                                  f"the file has no `text` column (columns: {', '.join(names)[:150]})")
            return
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=1024):
                for obj in _batch_rows(batch):
                    yield _mapping_row(obj, path, "parquet", row, max_bytes)
                    row += 1
        except Exception as exc:
            yield dead_letter(path, "parquet", row, "corrupt_shard",
                              f"reading stopped at row {row}: {type(exc).__name__}: {exc}")


def _batch_rows(batch):
    """The batch as dicts; a value pyarrow cannot convert becomes `Unconvertible`, so that one
    bad cell costs its row, not the rest of the shard."""
    try:
        return batch.to_pylist()
    except Exception:
        pass
    rows = [{} for _ in range(batch.num_rows)]
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            values = column.to_pylist()
        except Exception:
            values = []
            for i in range(len(column)):
                try:
                    values.append(column[i].as_py())
                except Exception as exc:
                    values.append(Unconvertible(f"{type(exc).__name__}: {exc}"))
        for row, value in zip(rows, values):
            row[name] = value
    return rows


_READERS = {"warc": _read_warc, "wet": _read_wet, "jsonl": _read_jsonl, "parquet": _read_parquet}
