"""Finding shards on any Beam filesystem, telling their format, opening them decompressed."""
import gzip
import io
import posixpath

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

FORMATS = ("warc", "wet", "jsonl", "parquet")
_COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_FORMAT_SUFFIXES = {
    ".warc": "warc", ".arc": "warc", ".wat": "warc", ".wet": "wet",
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}


def split_compression(path):
    """('name without compression suffix', 'gzip' | 'zstd' | None)."""
    root, ext = posixpath.splitext(path)
    comp = _COMPRESSION_SUFFIXES.get(ext.lower())
    return (root, comp) if comp else (path, None)


def detect_format(path):
    """Format from the file name (`x.warc.gz` → warc, `x.warc.wet.gz` → wet); None if unknown."""
    root, _ = split_compression(path)
    return _FORMAT_SUFFIXES.get(posixpath.splitext(root)[1].lower())


def expand_inputs(patterns):
    """Sorted, de-duplicated paths matched by glob patterns on any Beam filesystem.

    Raises FileNotFoundError naming the patterns that matched nothing, so a typo fails before
    a pipeline starts instead of producing an empty audit.
    """
    paths, empty = set(), []
    for pattern in patterns:
        found = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
        found = [p for p in found if not posixpath.basename(p).startswith(("_", "."))]
        if not found:
            empty.append(pattern)
        paths.update(found)
    if empty:
        raise FileNotFoundError(f"no input files match: {', '.join(empty)}")
    return sorted(paths)


def open_raw(path):
    """The shard's bytes as stored (still compressed): seekable where the filesystem allows."""
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def open_decompressed(path, compression=None):
    """A binary stream of the shard's content, decompressing gzip or zstd by suffix."""
    raw = open_raw(path)
    comp = compression if compression is not None else split_compression(path)[1]
    if comp == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if comp == "zstd":
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return raw
