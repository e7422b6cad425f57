"""Documents and dead letters as plain dicts, plus the checks every reader shares.

Readers yield either a document row (keys of schemas.SOURCE_COLUMNS) or a dead-letter row
(keys of schemas.DEAD_LETTER_COLUMNS); `is_dead_letter` tells them apart. Plain dicts keep
the rows cheap to build and map 1:1 onto the Parquet schemas.
"""
import json
import re
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

import xxhash

# Control characters other than tab/newline/carriage return, and U+FFFD from lossy decoding.
_BINARY_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")

DEFAULT_MAX_DOC_BYTES = 10_000_000
BINARY_SHARE = 0.05
SNIPPET_CHARS = 200


def normalise(text):
    """Lower-case and collapse whitespace: the form that defines "the same text"."""
    return " ".join(text.split()).lower()


def text_hash(text):
    return xxhash.xxh3_128_hexdigest(normalise(text).encode("utf-8", "surrogatepass"))


def domain_of(url):
    if not url:
        return None
    try:
        host = urlsplit(url.strip("<>")).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


def parse_date(value):
    """A datetime in UTC from an ISO-8601 string, a datetime or date, or epoch seconds; None if
    unusable, including an instant outside the years 1-9999 once in UTC (0001-01-01T00:00+14:00),
    which Parquet would store but no reader could turn back into a datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, date):  # a Parquet date32 column
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        s = value.strip()
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        try:
            return _utc(datetime.fromisoformat(s))
        except ValueError:
            return None
    return None


def _utc(dt):
    if not dt.tzinfo:
        return dt.replace(tzinfo=timezone.utc)
    try:
        return dt.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def text_problem(text, max_bytes=DEFAULT_MAX_DOC_BYTES):
    """(reason, detail) if `text` cannot be a document, else None."""
    if not text or not text.strip():
        return "empty_text", "no text after extraction and stripping"
    if len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        return "too_large", f"text is over the {max_bytes:,}-byte limit (--max-doc-bytes)"
    sample = text[:100_000]
    bad = len(_BINARY_RE.findall(sample))
    if bad > BINARY_SHARE * len(sample):
        return "binary_content", f"{bad} of {len(sample)} characters are control or undecodable"
    return None


def snippet(value):
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value[: SNIPPET_CHARS * 4]).decode("utf-8", "replace")
    return str(value)[:SNIPPET_CHARS]


def utf8_safe(value):
    """`value` with unpaired surrogates (from JSON `\\ud800` escapes or undecodable file names)
    replaced by '?', so that it can be written to Parquet; other values unchanged."""
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
    return value


def dead_letter(shard, fmt, position, reason, detail, record_id=None, raw=None):
    return {
        "source_shard": utf8_safe(shard),
        "source_format": fmt,
        "record_position": int(position),
        "record_id": utf8_safe(record_id),
        "reason": reason,
        "detail": utf8_safe(detail),
        "snippet": utf8_safe(snippet(raw)),
    }


def is_dead_letter(row):
    return "reason" in row


def make_document(*, doc_id, text, shard, fmt, position, url=None, crawl_date=None,
                  content_type=None, html_generator=None, metadata=None,
                  max_bytes=DEFAULT_MAX_DOC_BYTES):
    """A document row, or a dead letter if the text is unusable."""
    problem = text_problem(text, max_bytes)
    if problem:
        return dead_letter(shard, fmt, position, *problem, record_id=doc_id, raw=text)
    text = text.strip()
    if metadata:
        try:
            metadata = json.dumps(metadata, sort_keys=True, ensure_ascii=False, default=str)
        except (RecursionError, ValueError) as exc:
            return dead_letter(shard, fmt, position, "bad_field_type",
                               f"other fields cannot be stored as JSON metadata: {type(exc).__name__}: {exc}",
                               record_id=doc_id, raw=text)
    row = {
        "doc_id": str(doc_id),
        "url": url,
        "domain": domain_of(url),
        "crawl_date": parse_date(crawl_date),
        "source_shard": shard,
        "source_format": fmt,
        "record_position": int(position),
        "content_type": content_type,
        "html_generator": html_generator,
        "text": text,
        "text_hash": None,
        "n_chars": len(text),
        "n_words": None,  # filled by the shard pass, which tokenises the text anyway
        "metadata": metadata or None,
    }
    for key in ("text", "doc_id", "url", "metadata", "html_generator", "content_type", "source_shard"):
        value = row[key]
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                return dead_letter(shard, fmt, position, "invalid_utf8",
                                   f"`{key}` holds an unpaired surrogate ({exc.object[exc.start]!r} at "
                                   f"character {exc.start:,}), which UTF-8 cannot encode",
                                   record_id=doc_id, raw=text)
    row["text_hash"] = text_hash(text)
    return row
