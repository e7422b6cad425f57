"""LSH band keys written to files per (partition, source) instead of shuffled.

Band keys are the largest thing a crawl document contributes to the shuffles: 25 keys and
their node ids, 400 bytes per document. The local runner holds every shuffle in the driver,
decoded and then encoded again for its workers, so at a million documents the band shuffle
alone took gigabytes of the driver. Written by the stage that computes them (a shard, an
index part), one file per hash partition, they are read back by the one worker that buckets
that partition, once every source is done. Files live in the run's staging directory on the
output filesystem, so every worker of a cluster reaches them.
"""
import io

import numpy as np
from apache_beam.io.filesystems import FileSystems

from corpus_audit.transforms.dedup import graph

_EMPTY = np.empty(0, dtype=np.uint64)


def band_path(staging_dir, partition, source):
    return FileSystems.join(staging_dir, "bands", f"p{partition:04d}-{source}.npy")


class BandWriter:
    """Collects a source's (key, node) pairs in batches; `close` writes one file per
    partition (empty ones too, so a reader knows every file exists) and returns the source."""

    def __init__(self, staging_dir, num_partitions, source):
        self.staging_dir = staging_dir
        self.num_partitions = num_partitions
        self.source = source
        self.parts = [[] for _ in range(num_partitions)]

    def add(self, keys, nodes):
        for p, (k, n) in graph.split_by_partition(self.num_partitions, keys, keys, nodes):
            self.parts[p].append(np.stack([k, n]))

    def close(self):
        for p, chunks in enumerate(self.parts):
            pairs = np.concatenate(chunks, axis=1) if chunks else np.empty((2, 0), dtype=np.uint64)
            buf = io.BytesIO()
            np.save(buf, pairs.astype(np.uint64), allow_pickle=False)
            with FileSystems.create(band_path(self.staging_dir, p, self.source)) as f:
                f.write(buf.getvalue())
        self.parts = [[] for _ in range(self.num_partitions)]
        return self.source


def read_partition(staging_dir, partition, sources):
    """(keys, nodes) of one partition from every source, in source order."""
    keys, nodes = [_EMPTY], [_EMPTY]
    for source in sorted(sources):
        with FileSystems.open(band_path(staging_dir, partition, source)) as f:
            pairs = np.load(io.BytesIO(f.read()), allow_pickle=False)
        keys.append(pairs[0])
        nodes.append(pairs[1])
    return np.concatenate(keys), np.concatenate(nodes)
