"""The one pass over the text: read a shard, score and stage its documents, emit compact keys.

Text is read and extracted once per shard, written to a staged Parquet file on the output
filesystem, and only fixed-size data (band keys, node ids, doc ids, counts) leaves the DoFn.
The last pass (`write_documents.py`) adds the shuffle-derived columns to each staged file,
so document bodies never cross a shuffle.
"""
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus_audit.schemas import STAGED_SCHEMA
from corpus_audit.transforms.audit.progress import ShardTally
from corpus_audit.transforms.dedup import graph
from corpus_audit.transforms.dedup.minhash import MinHasher, exact_keys
from corpus_audit.transforms.dedup.band_files import BandWriter
from corpus_audit.transforms.dedup.sketches import sketch_path, write_sketches
from corpus_audit.transforms.detectors.scoring import load_detector_model
from corpus_audit.transforms.known.index import NgramSampler
from corpus_audit.transforms.language import ENGLISH, UNDETERMINED, LanguageIdentifier
from corpus_audit.transforms.read.readers import read_shard
from corpus_audit.transforms.read.records import is_dead_letter
from corpus_audit.transforms.seen.core import url_keys

DEAD = "dead_letters"
BANDS = "bands"
EXACT = "exact"
ATTRS = "attrs"
NGRAMS = "ngrams"
NGRAM_TOTALS = "ngram_totals"
STAGED = "staged"
COUNTS = "counts"
URLS = "urls"
BAND_KEYS = "band_keys"
OUTPUTS = (DEAD, EXACT, ATTRS, NGRAMS, NGRAM_TOTALS, STAGED, COUNTS, URLS, BAND_KEYS)

BATCH_DOCS = 1000
PARQUET_COMPRESSION = "zstd"


def staged_path(staging_dir, shard_index):
    return FileSystems.join(staging_dir, f"staged-{shard_index:06d}.parquet")


def signatures_path(staging_dir, shard_index):
    """Per-shard MinHash signatures and LSH band keys (rows as in the staged file, zeros for
    texts too short to hash), kept for the seen-pages index."""
    return FileSystems.join(staging_dir, f"signatures-{shard_index:06d}.parquet")


def signature_schema(num_perm, num_bands):
    return pa.schema([pa.field("signature", pa.list_(pa.uint32(), num_perm), nullable=False),
                      pa.field("band_keys", pa.list_(pa.uint64(), num_bands), nullable=False)])


def add_seconds(counts, stage, seconds):
    key = "stage_seconds." + stage
    counts[key] = counts.get(key, 0.0) + seconds


class AuditShard(beam.DoFn):
    def __init__(self, staging_dir, minhash_config, num_partitions, max_doc_bytes,
                 total_shards, fmt=None, progress=True, ngram_config=None, detectors=None,
                 progress_tally=None, seen=False):
        self.staging_dir = staging_dir
        self.seen = seen  # set when the audit joins a seen-pages index: URL keys and signatures
        self.config = minhash_config
        self.num_partitions = num_partitions
        self.max_doc_bytes = max_doc_bytes
        self.total_shards = total_shards
        self.fmt = fmt
        self.show_progress = progress
        self.progress_tally = progress_tally  # the driver's tally file (progress.RunProgress), if any
        self.ngram_config = ngram_config  # set when the audit matches known outputs
        self.detectors = detectors  # a model directory, "default", or None for no detectors

    def setup(self):
        self.hasher = MinHasher(self.config)
        self.sampler = NgramSampler(self.ngram_config) if self.ngram_config else None
        self.model = load_detector_model(self.detectors)
        self.languages = LanguageIdentifier()
        self.progress = ShardTally(self.total_shards, self.progress_tally) if self.show_progress else None

    def process(self, element, ngram_filter=None):
        """`ngram_filter` (a side input, with known outputs) drops the n-gram samples that no
        known output can share before they are shuffled."""
        shard_index, path = element
        self.ngram_filter = ngram_filter
        counts = {"shards": 1}
        out_path = staged_path(self.staging_dir, shard_index)
        sink = FileSystems.create(out_path)
        writer = pq.ParquetWriter(sink, STAGED_SCHEMA, compression=PARQUET_COMPRESSION)
        self.sig_sink = self.sig_writer = None
        if self.seen:
            self.sig_sink = FileSystems.create(signatures_path(self.staging_dir, shard_index))
            self.sig_writer = pq.ParquetWriter(self.sig_sink, signature_schema(self.config.num_perm, self.config.num_bands),
                                               compression=PARQUET_COMPRESSION)
        batch, n_docs = [], 0
        self.sketches = []
        self.bands = BandWriter(self.staging_dir, self.num_partitions, f"s{shard_index:05d}")
        started = time.perf_counter()
        try:
            for row in read_shard(path, self.fmt, counts, self.max_doc_bytes):
                counts["records_read"] = counts.get("records_read", 0) + 1
                if is_dead_letter(row):
                    key = "dead_letter." + row["reason"]
                    counts[key] = counts.get(key, 0) + 1
                    yield beam.pvalue.TaggedOutput(DEAD, row)
                    continue
                batch.append(row)
                if len(batch) >= BATCH_DOCS:
                    yield from self._flush(batch, shard_index, n_docs, writer, counts)
                    n_docs += len(batch)
                    batch = []
            if batch:
                yield from self._flush(batch, shard_index, n_docs, writer, counts)
                n_docs += len(batch)
        finally:
            writer.close()
            sink.close()
            if self.sig_writer is not None:
                self.sig_writer.close()
                self.sig_sink.close()
        counts["documents"] = n_docs
        write_sketches(sketch_path(self.staging_dir, shard_index),
                       np.concatenate(self.sketches) if self.sketches else np.zeros((0, self.config.num_perm)))
        self.sketches = []
        yield self.bands.close()  # the band files are this shard's main output
        # Worker seconds per stage; reading and extraction is what the other stages leave over.
        spent = sum(v for k, v in counts.items() if k.startswith("stage_seconds."))
        add_seconds(counts, "read_extract", time.perf_counter() - started - spent)
        if self.progress:
            self.progress.shard_done(shard_index, n_docs)
        yield beam.pvalue.TaggedOutput(STAGED, (shard_index, out_path))
        yield beam.pvalue.TaggedOutput(COUNTS, counts)

    def _flush(self, batch, shard_index, first_row, writer, counts):
        """Score and stage a batch of documents, then emit their keys for the shuffles."""
        t0 = time.perf_counter()
        shingles, grams, too_short = self._annotate(batch, counts)
        t1 = time.perf_counter()
        writer.write_table(pa.Table.from_pylist(batch, schema=STAGED_SCHEMA))
        t2 = time.perf_counter()
        add_seconds(counts, "stage_write", t2 - t1)
        counts["too_short"] = counts.get("too_short", 0) + int(too_short.sum())
        nodes = (np.uint64(shard_index) << np.uint64(32)) + np.arange(
            first_row, first_row + len(batch), dtype=np.uint64)
        yield from self._keys(batch, nodes, shingles, grams, too_short, counts)
        add_seconds(counts, "signatures_and_keys", time.perf_counter() - t2)
        add_seconds(counts, "tokenize_and_shingle", t1 - t0 - counts.pop("_detector_seconds", 0.0))
        if self.progress:
            self.progress.documents_read(shard_index, first_row + len(batch), len(batch))

    def _annotate(self, batch, counts):
        """Fill n_words, too_short, language and detector columns; return shingles and n-gram
        samples. Detectors score English documents only: they are trained on English."""
        shingles, grams = [], []
        for row in batch:
            wh = self.hasher.word_hashes(row["text"])
            row["n_words"] = len(wh)
            shingles.append(self.hasher.shingles(row["text"], wh))
            if self.sampler:
                grams.append(self.sampler.sample(wh))
        too_short = np.array([len(s) < self.config.min_shingles for s in shingles])
        for row, short in zip(batch, too_short):
            row["too_short"] = bool(short)
        t0 = time.perf_counter()
        codes, lang_scores = self.languages.identify([row["text"] for row in batch])
        for row, code, score in zip(batch, codes, lang_scores):
            row["language"] = code
            row["language_score"] = None if code is None else float(score)
            key = "language." + (code or UNDETERMINED)
            counts[key] = counts.get(key, 0) + 1
        t1 = time.perf_counter()
        add_seconds(counts, "language", t1 - t0)
        if self.model is not None:
            english = [i for i, code in enumerate(codes) if code == ENGLISH]
            scores = self.model.score_detectors([batch[i]["text"] for i in english]) if english else {}
            for name, values in scores.items():
                for j, i in enumerate(english):
                    batch[i]["det_" + name] = float(values[j])
            add_seconds(counts, "detectors", time.perf_counter() - t1)
        counts["_detector_seconds"] = time.perf_counter() - t0
        return shingles, grams, too_short

    def _keys(self, batch, nodes, shingles, grams, too_short, counts):
        """Band keys (main output), exact-text keys, signatures, n-gram samples, attributes:
        numpy batches keyed by hash partition."""
        P = self.num_partitions
        long_idx = np.flatnonzero(~too_short)
        all_sigs = np.zeros((len(batch), self.config.num_perm), dtype=np.uint32) if self.seen else None
        all_bands = np.zeros((len(batch), self.config.num_bands), dtype=np.uint64) if self.seen else None
        if len(long_idx):
            sigs = self.hasher.signatures([shingles[i] for i in long_idx])
            band_rows = self.hasher.band_keys(sigs)
            if self.seen:
                all_sigs[long_idx], all_bands[long_idx] = sigs, band_rows
            keys = band_rows.ravel()
            self.bands.add(keys, np.repeat(nodes[long_idx], self.config.num_bands))
            if self.seen:  # for the filter of the seen index's entries that can meet this crawl
                yield beam.pvalue.TaggedOutput(BAND_KEYS, (0, (graph.sorted_unique(keys),)))
            sketch = np.zeros((len(batch), sigs.shape[1]), dtype=np.uint16)
            sketch[long_idx] = graph.verification_sketch(sigs)
            self.sketches.append(sketch)
        exact = exact_keys([row["text_hash"] for row in batch])
        for p, arrays in graph.split_by_partition(P, exact, exact, nodes):
            yield beam.pvalue.TaggedOutput(EXACT, (p, arrays))
        if self.seen:
            self.sig_writer.write_table(pa.table({
                "signature": pa.FixedSizeListArray.from_arrays(pa.array(all_sigs.ravel(), pa.uint32()),
                                                               self.config.num_perm),
                "band_keys": pa.FixedSizeListArray.from_arrays(pa.array(all_bands.ravel(), pa.uint64()),
                                                               self.config.num_bands)},
                schema=signature_schema(self.config.num_perm, self.config.num_bands)))
            urls, has_url = url_keys([row["url"] for row in batch])
            for p, arrays in graph.split_by_partition(P, urls[has_url], urls[has_url], nodes[has_url],
                                                      exact[has_url]):
                yield beam.pvalue.TaggedOutput(URLS, (p, arrays))
        if self.sampler:
            lengths = np.array([len(g) for g in grams], dtype=np.int64)
            counts["ngram_samples"] = counts.get("ngram_samples", 0) + int(lengths.sum())
            hashes = np.concatenate(grams) if grams else np.empty(0, dtype=np.uint64)
            owners = np.repeat(nodes, lengths)
            if self.ngram_filter is not None:
                maybe_known = self.ngram_filter.may_contain(hashes)
                hashes, owners = hashes[maybe_known], owners[maybe_known]
            counts["ngram_samples_shuffled"] = counts.get("ngram_samples_shuffled", 0) + len(hashes)
            for p, arrays in graph.split_by_partition(P, hashes, hashes, owners):
                yield beam.pvalue.TaggedOutput(NGRAMS, (p, arrays))
            for p, arrays in graph.split_by_partition(P, nodes, nodes, lengths):
                yield beam.pvalue.TaggedOutput(NGRAM_TOTALS, (p, arrays))
        words = np.array([row["n_words"] for row in batch], dtype=np.int32)
        ids = np.array([row["doc_id"] for row in batch], dtype=object)
        for p, arrays in graph.split_by_partition(P, nodes, nodes, words, ids):
            yield beam.pvalue.TaggedOutput(ATTRS, (p, arrays))
