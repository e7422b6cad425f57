"""Beam wiring of near-duplicate clustering; the work itself is in `graph.py`.

Every element is a numpy batch for one hash partition, so the shuffles move band keys,
node ids and doc ids (never text) and Beam's per-element cost is paid per batch, not per
document or per band. Partitions are keyed by a mixed hash of the band key (LSH) or of the
node id (component rounds), so no worker holds all buckets or all edges.
"""
import apache_beam as beam
import numpy as np

from corpus_audit.transforms.audit.shuffle_check import CountedGroupByKey, CountedReshuffle
from corpus_audit.transforms.dedup import band_files, graph
from corpus_audit.transforms.dedup.sketches import SketchFiles
from corpus_audit.transforms.known import index as known_index
from corpus_audit.transforms.seen import index as seen_index

ANNOTATION_CLUSTER = "cluster"
ANNOTATION_EXACT = "exact"
ANNOTATION_RENAME = "rename"


def _concat(batches, width):
    if not batches:
        return tuple(np.empty(0, dtype=np.uint64) for _ in range(width))
    return tuple(np.concatenate([b[i] for b in batches]) for i in range(width))


class _BucketsToEdges(beam.DoFn):
    """Per key partition: star edges of shared buckets (and exact-copy members). Exact keys
    come grouped by a shuffle; band keys are a partition number whose keys are read from the
    band files of every source (`band_files.py`)."""

    def __init__(self, max_bucket_size, exact, num_partitions=1, staging_dir=None):
        self.max_bucket_size = max_bucket_size
        self.exact = exact
        self.num_partitions = num_partitions
        self.staging_dir = staging_dir

    def process(self, element, sources=None):
        if self.exact:
            _, batches = element
            keys, nodes = _concat(list(batches), 2)
        else:
            keys, nodes = band_files.read_partition(self.staging_dir, element[0], sources)
        seen = seen_index.is_seen_entry(nodes)
        if seen.any():  # seen pages share the band and exact shuffles: pair, never link
            doc_src, entry_dst = graph.known_candidates(keys[~seen], nodes[~seen], keys[seen], nodes[seen])
            if len(doc_src) and self.exact:
                for p, arrays in graph.split_by_partition(self.num_partitions, entry_dst, doc_src, entry_dst):
                    yield beam.pvalue.TaggedOutput("seen", (p, arrays))
            elif len(doc_src):
                yield doc_src, entry_dst  # verified on the signature like any candidate
            keys, nodes = keys[~seen], nodes[~seen]
        entries = known_index.is_entry(nodes)
        if entries.any():  # known outputs share the band shuffle: pair documents with them
            doc_src, entry_dst = graph.known_candidates(keys[~entries], nodes[~entries],
                                                        keys[entries], nodes[entries])
            if len(doc_src):
                yield doc_src, entry_dst
            keys, nodes = keys[~entries], nodes[~entries]
        src, dst, stats = graph.bucket_edges(keys, nodes, None if self.exact else self.max_bucket_size)
        if len(src):
            yield (src, dst)
        prefix = "exact_" if self.exact else "lsh_"
        yield beam.pvalue.TaggedOutput("counts", {prefix + k: v for k, v in stats.items()})
        if self.exact and len(src):
            members = graph.sorted_unique(np.concatenate([src, dst]))
            for shard, rows in _by_shard(members):
                yield beam.pvalue.TaggedOutput("annotations", (shard, (ANNOTATION_EXACT, rows)))


def _by_shard(nodes, *columns):
    """Split node-indexed columns by shard (node >> 32) into (shard, (rows, *columns))."""
    shards = (nodes >> np.uint64(32)).astype(np.int64)
    rows = (nodes & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return graph.split_by_key(shards, rows, *columns)


class _AttachSourceSketch(beam.DoFn):
    """Per source file: each candidate edge picks up its source's sketch, read from that file,
    and moves on to its destination's file."""

    def __init__(self, sketches):
        self.sketches = sketches

    def process(self, element):
        key, batches = element
        src, dst = _concat(list(batches), 2)
        if len(src) == 0:
            return
        src, dst = graph.unique_edges(src, dst)
        yield from _by_file(dst, src, dst, self.sketches.lookup(key, src))


class _VerifyEdges(beam.DoFn):
    """Per destination file: keep the candidate edges whose sketches agree enough.

    Edges to known-output entries leave on the `known` output with their agreement, keyed
    by the document's partition."""

    def __init__(self, threshold, num_partitions, sketches):
        self.threshold = threshold
        self.num_partitions = num_partitions
        self.sketches = sketches

    def process(self, element):
        key, edges = element
        edges = list(edges)
        if not edges:
            return
        src, dst = _concat([e[:2] for e in edges], 2)
        sig_src = np.concatenate([e[2] for e in edges])
        agreement = graph.signature_agreement(sig_src, self.sketches.lookup(key, dst))
        keep = agreement >= self.threshold
        known = known_index.is_entry(dst)
        seen = seen_index.is_seen_entry(dst)
        dedup = ~known & ~seen
        yield beam.pvalue.TaggedOutput("counts", {
            "candidate_pairs": int(dedup.sum()),
            "candidate_pairs_rejected": int((dedup & ~keep).sum()),
            "known_candidate_pairs": int(known.sum())})
        if (keep & dedup).any():
            yield src[keep & dedup], dst[keep & dedup]
        k = keep & known
        for p, arrays in graph.split_by_partition(self.num_partitions, src[k], src[k], dst[k],
                                                  agreement[k]):
            yield beam.pvalue.TaggedOutput("known", (p, ("sim",) + arrays))
        s = seen & keep
        for p, arrays in graph.split_by_partition(self.num_partitions, dst[s], src[s], dst[s], agreement[s]):
            yield beam.pvalue.TaggedOutput("seen", (p, ("sim",) + arrays))


def _by_file(nodes, *columns):
    """(file key, columns) for each file the nodes' sketches are in (SketchFiles.file_keys)."""
    return graph.split_by_key(SketchFiles.file_keys(nodes), *columns)


def _tag(tag):
    return lambda kv: (kv[0], (tag,) + tuple(kv[1]))


class _Step(beam.DoFn):
    """One large-star or small-star step for a node partition."""

    def __init__(self, kind, num_partitions):
        self.kind = kind
        self.num_partitions = num_partitions

    def process(self, element):
        _, batches = element
        u, v = _concat(list(batches), 2)
        if self.kind == "large":
            child, parent = graph.large_star(u, v)
            # small-star groups by the larger endpoint, which is `child`.
            yield from graph.split_by_partition(self.num_partitions, child, child, parent)
        else:
            child, parent = graph.small_star(u, v)
            yield from _undirected((child, parent), self.num_partitions)


class _ResolveRoots(beam.DoFn):
    """Per node partition: prove the edges are stars, then give each member its root and
    attributes, keyed by the root's partition."""

    def __init__(self, num_partitions, rounds):
        self.num_partitions = num_partitions
        self.rounds = rounds

    def process(self, element):
        _, items = element
        edges = [x[1:] for x in items if x[0] == "edge"]
        attrs = [x[1:] for x in items if x[0] == "attr"]
        child, parent = _concat(edges, 2)
        problems = graph.check_stars(child, parent)
        if any(problems.values()):
            raise RuntimeError(
                f"near-duplicate components did not converge in {self.rounds} rounds "
                f"({problems}); rerun with a larger --cc-rounds")
        if not attrs:
            return
        a_nodes, a_words, a_ids = (np.concatenate([a[i] for a in attrs]) for i in range(3))
        order = np.argsort(a_nodes)
        a_nodes = a_nodes[order]
        # Members: every child (root = its parent) and every root (root = itself).
        is_marker = child == parent
        markers = graph.sorted_unique(parent[is_marker])
        nodes = np.concatenate([child[~is_marker], markers])
        roots = np.concatenate([parent[~is_marker], markers])
        if len(nodes):
            yield from graph.split_by_partition(
                self.num_partitions, roots, roots, nodes,
                graph.lookup(a_nodes, a_words[order], nodes), graph.lookup(a_nodes, a_ids[order], nodes))


def _key_by_source_file(edges):
    src, dst = edges
    return _by_file(src, src, dst)


def _undirected(edges, num_partitions):
    """Both directions of every edge, keyed by the partition of the first node."""
    a, b = graph.both_directions(*edges)
    return graph.split_by_partition(num_partitions, a, a, b)


def _downward(element):
    """The last small-star emitted both directions: keep (child, parent) with child > parent."""
    _, (a, b) = element
    down = a > b
    return a[down], b[down]


def _mark_roots(batch, num_partitions):
    child, parent = batch
    for p, (c, par) in graph.split_by_partition(num_partitions, child, child, parent):
        yield p, ("edge", c, par)
    roots = graph.sorted_unique(parent)
    for p, (r,) in graph.split_by_partition(num_partitions, roots, roots):
        yield p, ("edge", r, r)


def _key_by_id(element, num_partitions):
    _, (nodes, words, ids) = element
    return graph.split_by_partition(num_partitions, graph.id_hashes(ids), nodes, words, ids)


class _UniqueIds(beam.DoFn):
    """Per id partition: documents that share an input id get distinct doc_ids, so a cluster_id
    (a doc_id) names one document. Attributes go on keyed by node, renames to their shards."""

    def __init__(self, num_partitions):
        self.num_partitions = num_partitions

    def process(self, element):
        _, batches = element
        nodes, words, ids = _concat(list(batches), 3)
        order = np.argsort(nodes)
        nodes, words, ids = nodes[order], words[order], ids[order]
        renamed, new_ids = graph.unique_ids(nodes, ids)
        if len(renamed):
            ids[np.searchsorted(nodes, renamed)] = new_ids
            for shard, cols in _by_shard(renamed, new_ids):
                yield beam.pvalue.TaggedOutput("annotations", (shard, (ANNOTATION_RENAME,) + cols))
            yield beam.pvalue.TaggedOutput("counts", {"duplicate_ids_renamed": len(renamed)})
        yield from graph.split_by_partition(self.num_partitions, nodes, nodes, words, ids)


def _representatives(element):
    _, batches = element
    roots, nodes, words, ids = (np.concatenate([b[i] for b in batches]) for i in range(4))
    node, cluster_id, size, is_rep = graph.choose_representatives(roots, nodes, words, ids)
    for shard, cols in _by_shard(node, cluster_id, size, is_rep):
        yield shard, (ANNOTATION_CLUSTER,) + cols


class NearDuplicateClusters(beam.PTransform):
    """(band sources, exact-key batches, attribute batches) → per-shard cluster annotations.

    `bands` names the sources (shards, index parts) whose band files are written in
    `staging_dir`; exact-text keys (partitioned by key) and attributes (partitioned by node)
    are PCollections of (partition, arrays) from the shard pass. Known-output entries (ids with
    the top bit set) may join the band input; their verified similarities
    come out as `known_similarities`. Seen-page entries (bit 62) may join the band and exact
    inputs; their verified similarities and exact pairs come out as `seen_similarities` and
    `seen_exact`, keyed by entry partition. Verification reads sketches through `sketches` (a
    SketchFiles). Output is a dict with `annotations`: (shard index, (kind, rows, ...)),
    `counts`: dicts of statistics, and those (None without the index).
    """

    def __init__(self, num_partitions, rounds, max_bucket_size, verify_threshold=0.0,
                 with_known_outputs=False, with_seen=False, sketches=None, staging_dir=None):
        super().__init__()
        self.staging_dir = staging_dir
        self.num_partitions = num_partitions
        self.rounds = rounds
        self.max_bucket_size = max_bucket_size
        self.verify_threshold = verify_threshold
        self.with_known_outputs = with_known_outputs
        self.with_seen = with_seen
        self.sketches = sketches
        if (verify_threshold > 0 or with_known_outputs or with_seen) and sketches is None:
            raise ValueError("verification needs the sketch files (sketches=SketchFiles(...))")

    def expand(self, inputs):
        bands, exact, attrs = inputs
        P = self.num_partitions
        # Every band file is written before any partition is read: the sources are a side input.
        sources = beam.pvalue.AsSingleton(bands | "BandSources" >> beam.combiners.ToList())
        lsh = (bands.pipeline
               | "BandPartitions" >> beam.Create([(p, p) for p in range(P)])
               | "SpreadBandPartitions" >> CountedReshuffle()
               | "BandBucketsToEdges" >> beam.ParDo(
                   _BucketsToEdges(self.max_bucket_size, exact=False, staging_dir=self.staging_dir),
                   sources).with_outputs("counts", main="edges"))
        ex = (exact
              | "GroupExactKeys" >> CountedGroupByKey()
              | "ExactBucketsToEdges" >> beam.ParDo(
                  _BucketsToEdges(None, exact=True, num_partitions=P)).with_outputs(
                      "counts", "annotations", "seen", main="edges"))
        candidates, verify_counts, known, seen = lsh.edges, [], None, None
        if self.verify_threshold > 0 or self.with_known_outputs or self.with_seen:
            # Grouped by the file of the source's sketch, then of the destination's: a chance
            # collision of one band never links two documents by itself.
            verified = (candidates
                        | "KeyBySourceFile" >> beam.FlatMap(_key_by_source_file)
                        | "GroupBySourceFile" >> CountedGroupByKey()
                        | "AttachSourceSketch" >> beam.ParDo(_AttachSourceSketch(self.sketches))
                        | "GroupByDestinationFile" >> CountedGroupByKey()
                        | "VerifyEdges" >> beam.ParDo(_VerifyEdges(self.verify_threshold, P, self.sketches))
                        .with_outputs("counts", "known", "seen", main="edges"))
            candidates, verify_counts, known, seen = verified.edges, [verified.counts], verified.known, verified.seen
        edges = (candidates, ex.edges) | "AllEdges" >> beam.Flatten()

        # Large-star wants both directions of every edge, keyed by node.
        step = edges | "Undirected" >> beam.FlatMap(_undirected, P)
        for r in range(self.rounds):
            step = (step
                    | f"GroupLarge{r}" >> CountedGroupByKey()
                    | f"LargeStar{r}" >> beam.ParDo(_Step("large", P))
                    | f"GroupSmall{r}" >> CountedGroupByKey()
                    | f"SmallStar{r}" >> beam.ParDo(_Step("small", P)))
        stars = step | "StarEdges" >> beam.Map(_downward)
        marked = stars | "MarkRoots" >> beam.FlatMap(_mark_roots, P)
        unique = (attrs
                  | "KeyAttrsById" >> beam.FlatMap(_key_by_id, P)
                  | "GroupById" >> CountedGroupByKey()
                  | "UniqueIds" >> beam.ParDo(_UniqueIds(P)).with_outputs("annotations", "counts", main="attrs"))
        attr_items = unique.attrs | "TagAttrs" >> beam.Map(_tag("attr"))
        members = ((marked, attr_items)
                   | "EdgesAndAttrs" >> beam.Flatten()
                   | "GroupByNode" >> CountedGroupByKey()
                   | "ResolveRoots" >> beam.ParDo(_ResolveRoots(P, self.rounds))
                   | "GroupByRoot" >> CountedGroupByKey()
                   | "ChooseRepresentatives" >> beam.FlatMap(_representatives))
        annotations = (members, ex.annotations, unique.annotations) | "AllAnnotations" >> beam.Flatten()
        counts = [lsh.counts, ex.counts, unique.counts] + verify_counts | "ClusterCounts" >> beam.Flatten()
        return {"annotations": annotations, "counts": counts, "known_similarities": known,
                "seen_similarities": seen if self.with_seen else None,
                "seen_exact": ex.seen if self.with_seen else None}
