"""NearDuplicateClusters in a real Beam pipeline: chains, hot buckets, non-convergence."""
import tempfile

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from corpus_audit.transforms.dedup import graph
from corpus_audit.transforms.dedup.band_files import BandWriter
from corpus_audit.transforms.dedup.clustering import NearDuplicateClusters
from corpus_audit.transforms.dedup.sketches import SketchFiles, sketch_path, write_sketches

U = np.uint64


def node(shard, row):
    return (shard << 32) | row


def run_clusters(band_pairs, n_docs_per_shard, expected_reps, expected_sizes, rounds=20,
                 partitions=4, max_bucket=5000, signatures=None, verify_threshold=0.0):
    """band_pairs: (band key, node) pairs; asserts the representatives and cluster sizes."""
    keys = np.array([k for k, _ in band_pairs], dtype=U)
    nodes = np.array([n for _, n in band_pairs], dtype=U)
    all_nodes = np.array([node(s, r) for s, n in enumerate(n_docs_per_shard) for r in range(n)], dtype=U)
    words = np.full(len(all_nodes), 100, dtype=np.int32)
    ids = np.array([f"doc-{int(n):020d}" for n in all_nodes], dtype=object)
    staging = tempfile.mkdtemp(prefix="clusters-")
    writer = BandWriter(staging, partitions, "s00000")  # band keys reach the clustering as files
    writer.add(keys, nodes)
    bands = [writer.close()]
    attrs = list(graph.split_by_partition(partitions, all_nodes, all_nodes, words, ids))
    sketches = None
    if signatures is not None:  # verification reads each shard's sketches from its staging file
        for shard, n in enumerate(n_docs_per_shard):
            rows = np.zeros((n, 100), dtype=np.uint32)
            for r in range(n):
                if node(shard, r) in signatures:
                    rows[r] = signatures[node(shard, r)]
            write_sketches(sketch_path(staging, shard), graph.verification_sketch(rows))
        sketches = SketchFiles(staging)
    with TestPipeline(runner=FnApiRunner()) as p:
        res = ((p | "B" >> beam.Create(bands), p | "E" >> beam.Create([]), p | "A" >> beam.Create(attrs))
               | NearDuplicateClusters(partitions, rounds, max_bucket, verify_threshold, sketches=sketches,
                                       staging_dir=staging))
        flat = res["annotations"] | beam.FlatMap(
            lambda kv: [(kv[0], int(r), c, int(s), bool(rep)) for r, c, s, rep in zip(*kv[1][1:])]
            if kv[1][0] == "cluster" else [])
        cluster_sets = (flat | beam.Map(lambda t: (t[2], 1)) | beam.CombinePerKey(sum))
        assert_that(flat | "Reps" >> beam.Filter(lambda t: t[4]) | beam.Map(lambda t: t[2])
                    | "DistinctReps" >> beam.Distinct(),
                    equal_to(expected_reps), label="one representative per cluster")
        assert_that(cluster_sets, equal_to(expected_sizes), label="cluster sizes")


def test_chain_across_shards_ends_in_one_cluster():
    # A~B~C~...~Z: consecutive documents share one band key; 26 documents over 3 shards.
    docs = [node(i % 3, i // 3) for i in range(26)]
    pairs = []
    for i in range(25):
        pairs += [(1000 + i, docs[i]), (1000 + i, docs[i + 1])]
    run_clusters(pairs, [9, 9, 8], [f"doc-{min(docs):020d}"], [(f"doc-{min(docs):020d}", 26)])


def test_one_huge_bucket_is_capped():
    docs = [node(0, r) for r in range(300)]
    pairs = [(77, d) for d in docs]
    run_clusters(pairs, [300], [f"doc-{0:020d}"], [(f"doc-{0:020d}", 50)], max_bucket=50)


def test_too_few_rounds_fail_loudly():
    docs = [node(0, r) for r in range(400)]
    pairs = []
    for i in range(399):
        pairs += [(5000 + i, docs[i]), (5000 + i, docs[i + 1])]
    with pytest.raises(Exception, match="did not converge"):
        run_clusters(pairs, [400], [], [], rounds=1)


def test_verification_drops_chance_collisions():
    # Four documents share one band. 0 and 1 agree on 90 of 100 signature values, 2 and 3
    # agree with nobody beyond that band: only 0 and 1 may form a cluster.
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**32, 100)
    sigs = {node(0, 0): base, node(0, 1): np.r_[base[:90], rng.integers(0, 2**32, 10)],
            node(0, 2): np.r_[base[:4], rng.integers(0, 2**32, 96)],
            node(0, 3): np.r_[base[:4], rng.integers(0, 2**32, 96)]}
    pairs = [(9, node(0, r)) for r in range(4)]
    rep = f"doc-{node(0, 0):020d}"
    run_clusters(pairs, [4], [rep], [(rep, 2)], signatures=sigs, verify_threshold=0.4)
