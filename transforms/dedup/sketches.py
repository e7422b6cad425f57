"""Verification sketches read from files instead of shuffled.

The verification joins need each candidate pair's two MinHash sketches. Shuffled, every
document's sketch (200 bytes) travels twice and stays in the shuffle's memory from the shard
pass to the last join. Written once per shard next to its staged documents (and read from the
index parts for known-output and seen-page entries), a sketch is read only by the worker verifying an edge
of its file, and only the edges are shuffled.
"""
import io

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus_audit.transforms.dedup.graph import verification_sketch

_LOW32 = np.uint64(0xFFFFFFFF)
_NUMBER_BITS = np.uint64((1 << 62) - 1)
DOCUMENT, SEEN, KNOWN = 0, 1, 2


def sketch_path(staging_dir, shard_index):
    return FileSystems.join(staging_dir, f"sketches-{shard_index:05d}.npy")


def write_sketches(path, sketches):
    """(documents, num_perm) uint16, row = the document's row in its shard; zeros where a
    document was too short to hash (no edge ever names it)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(sketches, dtype=np.uint16), allow_pickle=False)
    with FileSystems.create(path) as f:
        f.write(buf.getvalue())


class SketchFiles:
    """Where a node's sketch is: crawl documents in their shard's sketch file, known-output
    entries (bit 63) in their index part, seen-page entries (bit 62) in their seen-index part.
    Index parts are read by row group, only those holding the rows asked for."""

    def __init__(self, staging_dir, index_dir=None, index_parts=(), seen_dir=None, seen_parts=()):
        self.staging_dir = staging_dir
        self.parts = {KNOWN: (index_dir, list(index_parts)), SEEN: (seen_dir, list(seen_parts))}

    @staticmethod
    def file_keys(nodes):
        """One group key per file: kind << 32 | shard or part number."""
        nodes = np.asarray(nodes, dtype=np.uint64)
        kind = nodes >> np.uint64(62)
        kind = np.where(kind >= 2, KNOWN, np.where(kind == 1, SEEN, DOCUMENT)).astype(np.int64)
        number = ((nodes & _NUMBER_BITS) >> np.uint64(32)).astype(np.int64)
        return (kind << 32) | number

    @staticmethod
    def rows(nodes):
        return (np.asarray(nodes, dtype=np.uint64) & _LOW32).astype(np.int64)

    def lookup(self, key, nodes):
        kind, number = key >> 32, key & 0xFFFFFFFF
        rows = self.rows(nodes)
        if kind == DOCUMENT:
            with FileSystems.open(sketch_path(self.staging_dir, number)) as f:
                return np.load(io.BytesIO(f.read()), allow_pickle=False)[rows]
        folder, names = self.parts[kind]
        with FileSystems.open(FileSystems.join(folder, names[number])) as f:
            pf = pq.ParquetFile(f)
            starts = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
            groups = np.unique(np.searchsorted(starts, rows, side="right") - 1)
            column = pf.read_row_groups(groups.tolist(), columns=["signature"]).column("signature").combine_chunks()
        signatures = column.flatten().to_numpy().reshape(len(column), -1)
        # Rows of the groups read, in order: a row's place is its offset within them.
        offsets = np.concatenate([np.arange(starts[g], starts[g + 1]) for g in groups])
        return verification_sketch(signatures[np.searchsorted(offsets, rows)])
