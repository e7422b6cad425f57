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

from corpus_audit.transforms import html_text
from corpus_audit.transforms.records import (
    DEFAULT_MAX_DOC_BYTES,
    dead_letter,
    make_document,
)
from corpus_audit.transforms.shard_io import detect_format, open_decompressed, open_raw

JSON_RESERVED = ("text", "id", "url", "crawl_date")
_HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
_TEXT_TYPES = ("text/plain",)


def read_shard(path, fmt=None, counts=None, max_bytes=DEFAULT_MAX_DOC_BYTES):
    """Rows of one shard; a shard that cannot be opened at all is one dead letter."""
    counts = counts if counts is not None else {}
    fmt = fmt or detect_format(path)
    reader = _READERS.get(fmt)
    if reader is None:
        yield dead_letter(path, fmt or "unknown", -1, "unknown_format",
                          "cannot tell the format from the file name; pass --format")
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
    """WARC response (or WET conversion) records; after corrupt data, resume at the next record."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    wanted = WarcRecordType.conversion if fmt == "wet" else WarcRecordType.response
    base, pending = 0, None  # pending: (offset, error) of corrupt data not yet reported
    while base is not None:
        stream = open_raw(path)
        try:
            if base:
                stream.seek(base)
            records = iter(ArchiveIterator(stream, parse_http=(fmt != "wet"), auto_decode="all"))
            last_pos, failure, read_any = base, None, False
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except Exception as exc:  # only the parser's own failures become dead letters
                    failure = f"{type(exc).__name__}: {exc}"
                    break
                last_pos, read_any = base + record.stream_pos, True
                if pending:  # a record was read again: the corrupt stretch is over
                    yield _corrupt(path, fmt, *pending, resumed=base)
                    pending = None
                if record.record_type != wanted:
                    _bump(counts, f"skipped_{record.record_type}")
                    continue
                row = _warc_record_row(record, last_pos, path, fmt, counts, max_bytes)
                if row is not None:
                    yield row
            end = _tell(stream)
        finally:
            stream.close()
        size = _size_of(path)
        if failure is None and (size is None or end is None or end >= size):
            break
        # fastwarc either raised or stopped quietly before the end: look for the next record.
        if not pending:
            pending = (last_pos, failure or "stream ended early")
        base = _next_record_start(path, (last_pos if read_any else base) + 1)
    if pending:
        yield _corrupt(path, fmt, *pending, resumed=None)


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
        payload = record.reader.read()
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
        content_type = (record.http_content_type or "").split(";")[0].strip().lower() or None
        payload = record.reader.read()
        encoded = record.http_headers.get("Transfer-Encoding") or record.http_headers.get("Content-Encoding")
        if len(payload) < record.content_length and not encoded:
            return _truncated(path, fmt, pos, len(payload), record.content_length, doc_id, payload)
        if content_type in _TEXT_TYPES:
            text = payload.decode(record.http_charset or "utf-8", "replace")
        elif content_type is None or content_type in _HTML_TYPES:
            text, generator = html_text.extract(payload, record.http_charset)
        else:
            return dead_letter(path, fmt, pos, "unsupported_content_type",
                               f"HTTP Content-Type {content_type!r} is not text",
                               record_id=doc_id, raw=payload)
    return make_document(doc_id=doc_id, text=text, shard=path, fmt=fmt, position=pos, url=url,
                         crawl_date=date, content_type=content_type, html_generator=generator,
                         max_bytes=max_bytes)


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
        line_no = -1
        while True:
            line_no += 1
            try:
                line = stream.readline(max_bytes + 1)
            except (EOFError, OSError, ValueError) as exc:  # truncated or not really compressed
                yield dead_letter(path, "jsonl", line_no, "truncated_shard",
                                  f"reading stopped at line {line_no}: {type(exc).__name__}: {exc}")
                return
            except Exception as exc:  # zstandard raises its own error type
                yield dead_letter(path, "jsonl", line_no, "truncated_shard",
                                  f"reading stopped at line {line_no}: {type(exc).__name__}: {exc}")
                return
            if not line:
                return
            if len(line) > max_bytes and not line.endswith(b"\n"):
                head = line[:200]
                while line and not line.endswith(b"\n"):  # skip the rest without holding it
                    line = stream.readline(1 << 20)
                yield dead_letter(path, "jsonl", line_no, "too_large",
                                  f"line is over the {max_bytes:,}-byte limit (--max-doc-bytes)",
                                  raw=head)
                continue
            if not line.strip():
                _bump(counts, "skipped_blank_line")
                continue
            yield _json_row(line, path, line_no, max_bytes)


def _json_row(line, path, line_no, max_bytes):
    try:
        obj = json.loads(line)
    except UnicodeDecodeError as exc:
        return dead_letter(path, "jsonl", line_no, "invalid_utf8", str(exc), raw=line)
    except ValueError as exc:
        return dead_letter(path, "jsonl", line_no, "malformed_json", str(exc), raw=line)
    if not isinstance(obj, dict):
        return dead_letter(path, "jsonl", line_no, "malformed_json",
                           f"expected a JSON object, got {type(obj).__name__}", raw=line)
    return _mapping_row(obj, path, "jsonl", line_no, max_bytes)


def _mapping_row(obj, path, fmt, position, max_bytes):
    raw_id = obj.get("id")
    doc_id = str(raw_id) if raw_id not in (None, "") else _fallback_id(path, position)
    text = obj.get("text")
    if text is None:
        return dead_letter(path, fmt, position, "missing_text_field", "record has no `text` field",
                           record_id=doc_id, raw=json.dumps(obj, default=str)[:400])
    if not isinstance(text, str):
        return dead_letter(path, fmt, position, "bad_field_type",
                           f"`text` is {type(text).__name__}, expected a string",
                           record_id=doc_id, raw=repr(text)[:400])
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
        if "text" not in names:
            for row in range(pf.metadata.num_rows):
                yield dead_letter(path, "parquet", row, "missing_text_field",
                                  f"the file has no `text` column (columns: {', '.join(names)[:150]})")
            return
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=1024):
                for obj in batch.to_pylist():
                    yield _mapping_row(obj, path, "parquet", row, max_bytes)
                    row += 1
        except Exception as exc:
            yield dead_letter(path, "parquet", row, "corrupt_shard",
                              f"reading stopped at row {row}: {type(exc).__name__}: {exc}")


_READERS = {"warc": _read_warc, "wet": _read_wet, "jsonl": _read_jsonl, "parquet": _read_parquet}
