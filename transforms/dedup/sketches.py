"""Verification sketches read from files instead of shuffled.

The verification joins need each candidate pair's two MinHash sketches. Shuffled, every
document's sketch (200 bytes) travels twice and stays in the shuffle's memory from the shard
pass to the last join. Written once per shard next to its staged documents (and read from the
known-output index's parts for entries), a sketch is read only by the worker verifying an edge
of its file, and only the edges are shuffled.
"""
import io

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus_audit.transforms.dedup.graph import verification_sketch
from corpus_audit.transforms.known import index as ki

_LOW32 = np.uint64(0xFFFFFFFF)


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
    entries (top bit set) in their index part."""

    def __init__(self, staging_dir, index_dir=None, index_parts=()):
        self.staging_dir = staging_dir
        self.index_dir = index_dir
        self.index_parts = list(index_parts)  # part file names, by part number

    @staticmethod
    def file_keys(nodes):
        """Shard index for documents, -(part + 1) for entries: one group key per file."""
        nodes = np.asarray(nodes, dtype=np.uint64)
        entry = ki.is_entry(nodes)
        high = ((nodes & ~ki.ENTRY_BIT) >> np.uint64(32)).astype(np.int64)
        return np.where(entry, -high - 1, high)

    @staticmethod
    def rows(nodes):
        return (np.asarray(nodes, dtype=np.uint64) & _LOW32).astype(np.int64)

    def load(self, key):
        if key >= 0:
            with FileSystems.open(sketch_path(self.staging_dir, key)) as f:
                return np.load(io.BytesIO(f.read()), allow_pickle=False)
        name = self.index_parts[-key - 1]
        with FileSystems.open(FileSystems.join(self.index_dir, name)) as f:
            column = pq.read_table(f, columns=["signature"]).column("signature").combine_chunks()
        return verification_sketch(column.flatten().to_numpy().reshape(len(column), -1))

    def lookup(self, key, nodes):
        return self.load(key)[self.rows(nodes)]
