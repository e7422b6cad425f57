"""Documents and dead letters as plain dicts, plus the checks every reader shares.

Readers yield either a document row (keys of schemas.SOURCE_COLUMNS) or a dead-letter row
(keys of schemas.DEAD_LETTER_COLUMNS); `is_dead_letter` tells them apart. Plain dicts keep
the rows cheap to build and map 1:1 onto the Parquet schemas.
"""
import json
import re
from datetime import datetime, timezone
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
    """A datetime (UTC) from an ISO-8601 string, a datetime or epoch seconds; None if unusable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
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
            dt = datetime.fromisoformat(s)
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
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


def dead_letter(shard, fmt, position, reason, detail, record_id=None, raw=None):
    return {
        "source_shard": shard,
        "source_format": fmt,
        "record_position": int(position),
        "record_id": record_id,
        "reason": reason,
        "detail": detail,
        "snippet": snippet(raw),
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
    return {
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
        "text_hash": text_hash(text),
        "n_chars": len(text),
        "n_words": None,  # filled by the shard pass, which tokenises the text anyway
        "metadata": json.dumps(metadata, sort_keys=True, ensure_ascii=False, default=str)
        if metadata else None,
    }
