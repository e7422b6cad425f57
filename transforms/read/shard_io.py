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


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def sniff_compression(head):
    """'gzip' | 'zstd' | None from a stream's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def open_decompressed(path, compression=None):
    """A binary stream of the shard's content.

    The compression is read from the stream's magic bytes, not from the name, so a gzip file
    named `.zst` or a plain file named `.gz` is still read (as WARC files are); `compression`
    ("gzip", "zstd" or "none") forces one. A gzip or zstd stream that ends inside a member or
    frame raises EOFError, as a cut shard must not read as a shorter complete one.
    """
    raw = open_raw(path)
    if compression is None:
        head = raw.read(4)
        try:
            raw.seek(0)
        except Exception:  # a filesystem whose streams cannot seek back: open it again
            raw.close()
            raw = open_raw(path)
        comp = sniff_compression(head)
    else:
        comp = None if compression == "none" else compression
    if comp == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if comp == "zstd":
        return io.BufferedReader(ZstdReader(raw), buffer_size=1 << 16)
    return raw


class ZstdReader(io.RawIOBase):
    """Decompressed bytes of concatenated zstd frames; EOFError if the last frame is cut.

    (zstandard's own stream reader returns end-of-stream quietly when its input stops inside
    a frame, which would turn a truncated shard into a shorter, seemingly complete one.)
    """

    def __init__(self, raw, chunk=1 << 16):
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._chunk = chunk
        self._dec = None  # the frame being decoded, None between frames
        self._out = b""

    def readable(self):
        return True

    def readinto(self, buf):
        while not self._out:
            data = self._dec.unused_data if self._dec is not None and self._dec.eof else b""
            if self._dec is not None and self._dec.eof:
                self._dec = None
            if not data:
                data = self._raw.read(self._chunk)
                if not data:
                    if self._dec is not None:
                        raise EOFError("zstd stream ended before the end of its frame")
                    return 0
            if self._dec is None:
                self._dec = self._zstd.ZstdDecompressor().decompressobj()
            self._out = self._dec.decompress(data)
        n = min(len(buf), len(self._out))
        buf[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self):
        if not self.closed:
            self._raw.close()
        super().close()
