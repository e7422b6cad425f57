"""Matching crawl documents against the index of known model outputs, inside the pipeline.

Two kinds of evidence, both found by shuffles on hash keys (never by shipping the index to
every worker):

- near copies: index entries take part in the same LSH band shuffle as the documents; each
  (document, entry) candidate is verified on the whole signature in the same joins as
  near-duplicate candidates (`dedup/clustering.py`), giving `known_similarity`;
- pasted passages: sampled word 8-grams of documents and entries meet in a shuffle on the
  n-gram hash; the share of a document's samples found in any output is
  `known_containment`, and the output sharing the most samples is the one it copies.

The match is named by joining on the entry's partition with the index's (id, model).
"""
import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus_audit.transforms.audit.shuffle_check import CountedGroupByKey
from corpus_audit.transforms.dedup import graph
from corpus_audit.transforms.dedup.band_files import BandWriter
from corpus_audit.transforms.dedup.clustering import _by_shard, _concat, _tag
from corpus_audit.transforms.dedup.minhash import MinHasher
from corpus_audit.transforms.known import index as ki

ANNOTATION_KNOWN = "known"
KIND_NEAR_COPY = "near_copy"
KIND_CONTAINS = "contains"
MAX_ENTRIES_PER_NGRAM = 50
# A "contains" match needs this many sampled n-grams shared with the named output, so that
# one stock phrase in a short page (a third of its three samples) is not a copy.
MIN_SHARED_SAMPLES = 3

BANDS, NGRAMS, ATTRS = "bands", "ngrams", "attrs"


class ReadIndexPart(beam.DoFn):
    """One index part → band files and n-gram samples of its entries, batched by partition
    like the crawl side, plus (entry, output id, model) for naming matches."""

    def __init__(self, index_dir, minhash_config, num_partitions, staging_dir):
        self.index_dir = index_dir
        self.config = minhash_config
        self.num_partitions = num_partitions
        self.staging_dir = staging_dir

    def setup(self):
        self.hasher = MinHasher(self.config)

    def process(self, element):
        part_number, name = element
        P = self.num_partitions
        bands = BandWriter(self.staging_dir, P, f"k{part_number:05d}")
        with FileSystems.open(FileSystems.join(self.index_dir, name)) as f:
            pf = pq.ParquetFile(f)
            row = 0
            for batch in pf.iter_batches(batch_size=5000):
                n = batch.num_rows
                ids = ki.entry_ids(part_number, np.arange(row, row + n))
                row += n
                sigs = batch.column("signature").flatten().to_numpy().reshape(n, self.config.num_perm)
                hashed = np.flatnonzero(sigs.any(axis=1))  # all-zero: too short to shingle
                if len(hashed):
                    keys = self.hasher.band_keys(sigs[hashed]).ravel()
                    bands.add(keys, np.repeat(ids[hashed], self.config.num_bands))
                grams = batch.column("ngrams")
                lengths = grams.value_lengths().to_numpy(zero_copy_only=False)
                hashes = grams.flatten().to_numpy()
                owners = np.repeat(ids, lengths)
                for p, arrays in graph.split_by_partition(P, hashes, hashes, owners):
                    yield beam.pvalue.TaggedOutput(NGRAMS, (p, arrays))
                out_ids = np.array(batch.column("output_id").to_pylist(), dtype=object)
                models = np.array(batch.column("model").to_pylist(), dtype=object)
                for p, arrays in graph.split_by_partition(P, ids, ids, out_ids, models):
                    yield beam.pvalue.TaggedOutput(ATTRS, (p, arrays))
        yield bands.close()  # the band files are the main output, as for a crawl shard


class _NgramJoin(beam.DoFn):
    """Per n-gram partition: hits per document, or (with `candidates`, a sorted array of the
    documents whose hits can reach the containment threshold) the (document, output) pairs of
    those documents only. Most pages share a few stock sentences with many outputs: pairing
    every page with every output it shares a sample with made tens of millions of pairs per
    million pages, of which only the candidates' can ever name a match."""

    def __init__(self, num_partitions, pairs):
        self.num_partitions = num_partitions
        self.pairs = pairs

    def process(self, element, candidates=None):
        _, items = element
        doc_h, doc_n = _concat([x[1:] for x in items if x[0] == "doc"], 2)
        if self.pairs:
            keep = np.isin(doc_n, candidates)
            doc_h, doc_n = doc_h[keep], doc_n[keep]
        ent_h, ent_n = _concat([x[1:] for x in items if x[0] == "entry"], 2)
        (hit_nodes, hit_counts), (pair_docs, pair_entries, pair_counts) = graph.ngram_hits(
            doc_h, doc_n, ent_h, ent_n, MAX_ENTRIES_PER_NGRAM, pairs=self.pairs)
        P = self.num_partitions
        if self.pairs:
            for p, arrays in graph.split_by_partition(P, pair_docs, pair_docs, pair_entries, pair_counts):
                yield p, ("pairs",) + arrays
        else:
            for p, arrays in graph.split_by_partition(P, hit_nodes, hit_nodes, hit_counts):
                yield p, ("hits",) + arrays


def _parts(items, tag, width):
    return _concat([x[1:] for x in items if x[0] == tag], width)


class _ScoreDocuments(beam.DoFn):
    """Per document partition: best near copy and containment. A document that is no near
    copy but shares enough samples with the outputs to contain one goes on as `pending`
    (and its id as a `candidate`) to learn which output supplies the most."""

    def __init__(self, num_partitions, similarity_threshold, containment_threshold):
        self.num_partitions = num_partitions
        self.similarity_threshold = similarity_threshold
        self.containment_threshold = containment_threshold

    def process(self, element):
        _, items = element
        sim_docs, sim_entries, sim = _parts(items, "sim", 3)
        hit_nodes, hit_counts = _parts(items, "hits", 2)
        total_nodes, totals = _parts(items, "total", 2)
        # Each n-gram partition reported its own counts: add them up per document.
        hit_nodes, hit_counts = graph.sum_by_key(hit_counts, hit_nodes)
        s_docs, s_entries, s_best = graph.best_by_node(sim_docs, sim_entries, sim)
        docs = graph.sorted_unique(np.concatenate([s_docs, hit_nodes]))
        if len(docs) == 0:
            return
        similarity = np.zeros(len(docs))
        entry = np.zeros(len(docs), dtype=np.uint64)
        at = np.searchsorted(docs, s_docs)
        similarity[at], entry[at] = s_best, s_entries
        hits = np.zeros(len(docs))
        hits[np.searchsorted(docs, hit_nodes)] = hit_counts
        order = np.argsort(total_nodes)
        sampled = graph.lookup(total_nodes[order], totals[order], docs).astype(np.float64)
        containment = np.divide(hits, sampled, out=np.zeros(len(docs)), where=sampled > 0)
        near = similarity >= self.similarity_threshold
        # One output's share of the samples is at most the share found in any output.
        pending = ~near & (hits >= MIN_SHARED_SAMPLES) & (hits >= self.containment_threshold * np.maximum(sampled, 1))
        if pending.any():
            yield beam.pvalue.TaggedOutput("candidates", docs[pending])
            for p, arrays in graph.split_by_partition(self.num_partitions, docs[pending], docs[pending],
                                                      similarity[pending], containment[pending], sampled[pending]):
                yield beam.pvalue.TaggedOutput("pending", (p, ("pending",) + arrays))
        done = ~pending
        yield from _results(self.num_partitions, docs[done], similarity[done], containment[done],
                            np.where(near[done], KIND_NEAR_COPY, None).astype(object), entry[done])


class _ContainedOutputs(beam.DoFn):
    """Per document partition: for each pending document, the output sharing the most samples,
    a `contains` match when it supplies the containment threshold on its own. Overlaps
    scattered over many outputs (stock sentences) raise known_containment but copy nothing."""

    def __init__(self, num_partitions, containment_threshold):
        self.num_partitions = num_partitions
        self.containment_threshold = containment_threshold

    def process(self, element):
        _, items = element
        docs, similarity, containment, sampled = _parts(items, "pending", 4)
        if len(docs) == 0:
            return
        order = np.argsort(docs)
        docs, similarity, containment, sampled = docs[order], similarity[order], containment[order], sampled[order]
        pair_docs, pair_entries, pair_counts = _parts(items, "pairs", 3)
        (pair_docs, pair_entries), pair_counts = graph.sum_by_key(pair_counts, pair_docs, pair_entries)
        c_docs, c_entries, c_shared = graph.best_by_node(pair_docs, pair_entries, pair_counts)
        enough = c_shared >= MIN_SHARED_SAMPLES
        c_docs, c_entries, c_shared = c_docs[enough], c_entries[enough], c_shared[enough]
        best_share = np.zeros(len(docs))
        with_pair = np.isin(docs, c_docs)
        best_share[with_pair] = graph.lookup(c_docs, c_shared, docs[with_pair]) / np.maximum(sampled[with_pair], 1)
        contains = best_share >= self.containment_threshold
        entry = np.zeros(len(docs), dtype=np.uint64)
        entry[contains] = graph.lookup(c_docs, c_entries, docs[contains])
        yield from _results(self.num_partitions, docs, similarity, containment,
                            np.where(contains, KIND_CONTAINS, None).astype(object), entry)


def _results(num_partitions, docs, similarity, containment, kind, entry):
    """Unmatched documents still carry their scores (as annotations); matched ones go on to
    the entry's partition to be named."""
    matched = np.array([k is not None for k in kind], dtype=bool)
    none = np.full((~matched).sum(), None, dtype=object)
    for shard, cols in _by_shard(docs[~matched], similarity[~matched], containment[~matched], none, none,
                                 kind[~matched]):
        yield beam.pvalue.TaggedOutput("annotations", (shard, (ANNOTATION_KNOWN,) + cols))
    for p, arrays in graph.split_by_partition(num_partitions, entry[matched], entry[matched], docs[matched],
                                              similarity[matched], containment[matched], kind[matched]):
        yield p, ("match",) + arrays


class _SortedUnion(beam.CombineFn):
    def create_accumulator(self):
        return []

    def add_input(self, acc, docs):
        acc.append(docs)
        return acc

    def merge_accumulators(self, accs):
        return [a for acc in accs for a in acc]

    def extract_output(self, acc):
        return graph.sorted_unique(np.concatenate(acc)) if acc else np.empty(0, dtype=np.uint64)


def _name_matches(element):
    _, items = element
    attrs = [x[1:] for x in items if x[0] == "attr"]
    matches = [x[1:] for x in items if x[0] == "match"]
    if not matches:
        return
    ids, out_ids, models = (np.concatenate([a[i] for a in attrs]) for i in range(3))
    order = np.argsort(ids)
    ids = ids[order]
    entries, docs, sim, cont, kind = (np.concatenate([m[i] for m in matches]) for i in range(5))
    names = graph.lookup(ids, out_ids[order], entries)
    model = graph.lookup(ids, models[order], entries)
    for shard, cols in _by_shard(docs, sim, cont, names, model, kind):
        yield shard, (ANNOTATION_KNOWN,) + cols


class KnownOutputMatches(beam.PTransform):
    """(verified doc-entry similarities, doc n-gram samples, doc sample totals, index n-gram
    samples, index attributes) → per-shard `known` annotations."""

    def __init__(self, num_partitions, similarity_threshold, containment_threshold):
        super().__init__()
        self.num_partitions = num_partitions
        self.similarity_threshold = similarity_threshold
        self.containment_threshold = containment_threshold

    def expand(self, inputs):
        similarities, doc_ngrams, doc_totals, index_ngrams, index_attrs = inputs
        P = self.num_partitions
        by_ngram = ((doc_ngrams | "TagDocNgrams" >> beam.Map(_tag("doc")),
                     index_ngrams | "TagIndexNgrams" >> beam.Map(_tag("entry")))
                    | "AllNgrams" >> beam.Flatten()
                    | "GroupByNgram" >> CountedGroupByKey())
        hits = by_ngram | "SharedNgrams" >> beam.ParDo(_NgramJoin(P, pairs=False))
        scored = ((hits, similarities, doc_totals | "TagTotals" >> beam.Map(_tag("total")))
                  | "EvidenceByDocument" >> beam.Flatten()
                  | "GroupByDocument" >> CountedGroupByKey()
                  | "ScoreDocuments" >> beam.ParDo(_ScoreDocuments(
                      P, self.similarity_threshold, self.containment_threshold)).with_outputs(
                          "annotations", "pending", "candidates", main="matches"))
        candidates = scored.candidates | "ContainmentCandidates" >> beam.CombineGlobally(_SortedUnion())
        pairs = by_ngram | "CandidatePairs" >> beam.ParDo(_NgramJoin(P, pairs=True),
                                                          beam.pvalue.AsSingleton(candidates))
        contained = ((scored.pending, pairs)
                     | "PendingAndPairs" >> beam.Flatten()
                     | "GroupPendingByDocument" >> CountedGroupByKey()
                     | "ContainedOutputs" >> beam.ParDo(_ContainedOutputs(P, self.containment_threshold))
                     .with_outputs("annotations", main="matches"))
        named = ((scored.matches, contained.matches, index_attrs | "TagEntryAttrs" >> beam.Map(_tag("attr")))
                 | "MatchesAndEntries" >> beam.Flatten()
                 | "GroupByEntry" >> CountedGroupByKey()
                 | "NameMatches" >> beam.FlatMap(_name_matches))
        return (named, scored.annotations, contained.annotations) | "KnownAnnotations" >> beam.Flatten()
