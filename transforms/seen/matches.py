"""Matching an audit's documents against the seen-pages index, inside the pipeline.

Seen entries join the shuffles the audit already has, as known-output entries do: their band
keys the LSH band shuffle, their verification sketches the signature joins, their text keys the
exact-copy shuffle. The clustering code pairs documents with entries but never links entries
into clusters, so dedup results do not change. A fourth shuffle, keyed by a URL hash, finds
earlier captures of the same URL.

Only entries that can meet the crawl are shipped: the parts are read after the shard pass, with a
Bloom filter of the crawl's band, exact and URL keys as a side input (a few bytes per document),
so an index ten times the crawl costs a read of its parts, not ten crawls of shuffle. The filter
has no false negatives, so the matches are the same as without it.
"""
import io

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from corpus_audit.transforms.audit.shuffle_check import CountedGroupByKey
from corpus_audit.transforms.dedup import graph
from corpus_audit.transforms.dedup.band_files import BandWriter
from corpus_audit.transforms.dedup.clustering import _by_shard, _concat, _tag
from corpus_audit.transforms.dedup.minhash import MinHasher
from corpus_audit.transforms.seen import core
from corpus_audit.transforms.seen import index as si

BANDS, EXACT, ATTRS, URLS = "bands", "exact", "attrs", "urls"
BATCH = 20_000


class ReadSeenPart(beam.DoFn):
    """One index part → the keys of its entries that the crawl may share, batched by partition
    like the crawl side: band files (main), exact keys, URL captures, and each shipped
    entry's earliest seen key. Only the probe keys are read for every row; the attribute
    columns only for rows that pass the filter, and signatures never (verification reads
    them by row group). A part that does not match its manifest record fails the run."""

    def __init__(self, index_dir, minhash_config, num_partitions, runs, staging_dir):
        self.index_dir = index_dir
        self.config = minhash_config
        self.num_partitions = num_partitions
        self.runs = runs
        self.staging_dir = staging_dir

    def setup(self):
        self.hasher = MinHasher(self.config)
        self.rank = {r: i for i, r in enumerate(self.runs)}

    def process(self, element, crawl_keys):
        part_number, part = element
        data = si.read_part_bytes(self.index_dir, part)
        version = si.part_version(part)
        try:
            pf = pq.ParquetFile(io.BytesIO(data))
            expected = si.part_schema(self.config.num_perm, self.config.num_bands, version=version)
            if not pf.schema_arrow.equals(expected, check_metadata=False):
                raise si.SeenIndexError("another schema")
            row, counts = 0, {"seen_entries_read": 0, "seen_entries_shipped": 0}
            self.bands = BandWriter(self.staging_dir, self.num_partitions, f"v{part_number:05d}")
            for probe, fetch in _row_blocks(pf, version):
                yield from self._block(probe, fetch, version, part_number, row, part, crawl_keys, counts)
                row += probe.num_rows
        except si.SeenIndexError:
            raise
        except Exception as exc:  # a damaged part must never read as "not seen"
            raise si.SeenIndexError(f"seen index part {part['file']} is corrupt: {type(exc).__name__}: {exc}") from exc
        if row != part["entries"]:
            raise si.SeenIndexError(f"seen index part {part['file']} has {row} rows, the manifest says {part['entries']}")
        yield self.bands.close()  # band files, the main output as for a crawl shard
        yield beam.pvalue.TaggedOutput("counts", counts)

    def _block(self, probe, fetch, version, part_number, row, part, crawl_keys, counts):
        P, n = self.num_partitions, probe.num_rows
        ids = si.entry_ids(part_number, np.arange(row, row + n))
        counts["seen_entries_read"] += n
        bands, hashed, texts, urls, has_url = si.read_probe_keys(probe, version, self.hasher)
        shipped = np.zeros(n, dtype=bool)
        hashed = np.flatnonzero(hashed)
        if len(hashed):
            keys = bands[hashed]
            may = crawl_keys.may_contain(keys.ravel()).reshape(keys.shape)
            band_ids = np.broadcast_to(ids[hashed][:, None], keys.shape)
            self.bands.add(keys[may], band_ids[may])
            shipped[hashed[may.any(axis=1)]] = True
        may = crawl_keys.may_contain(texts)
        shipped |= may
        for p, arrays in graph.split_by_partition(P, texts[may], texts[may], ids[may]):
            yield beam.pvalue.TaggedOutput(EXACT, (p, arrays))
        url_hit = np.zeros(n, dtype=bool)
        url_hit[has_url] = crawl_keys.may_contain(urls[has_url])
        need = np.flatnonzero(shipped | url_hit)
        if not len(need):
            return
        rest = fetch(need)  # the passing rows' attribute columns, in row order
        u = url_hit[need]
        if u.any():
            run_day = core.day_number(part["run_date"])
            days = core.capture_days(core.timestamps(rest.column("crawl_date").filter(u)), run_day)
            captures = core.seen_key(days, np.full(len(days), self.rank[part["run_id"]]))
            human = np.asarray(pc.equal(rest.column("provenance").filter(u), "human"), dtype=bool)
            rows = need[u]
            for p, arrays in graph.split_by_partition(P, urls[rows], urls[rows], captures, texts[rows], human):
                yield beam.pvalue.TaggedOutput(URLS, (p, ("entry",) + arrays))
        s = shipped[need]
        if s.any():
            first = core.seen_key(_days(rest.column("first_seen_date").filter(s)),
                                  self._ranks(rest.column("first_seen_run").filter(s)))
            rows = need[s]
            counts["seen_entries_shipped"] += len(rows)
            for p, arrays in graph.split_by_partition(P, ids[rows], ids[rows], first):
                yield beam.pvalue.TaggedOutput(ATTRS, (p, ("attr",) + arrays))

    def _ranks(self, run_ids):
        """Run id strings → their ranks, one dictionary lookup per distinct run."""
        if isinstance(run_ids, pa.ChunkedArray):
            run_ids = run_ids.combine_chunks()
        encoded = run_ids.dictionary_encode()
        ranks = np.array([self.rank[r] for r in encoded.dictionary.to_pylist()] or [0], dtype=np.int64)
        return ranks[np.asarray(encoded.indices, dtype=np.int64)]


ATTRIBUTES = ["crawl_date", "provenance", "first_seen_run", "first_seen_date"]


def _row_blocks(pf, version):
    """(probe columns, fetch(rows) → those rows' attribute columns) per block of a part:
    version-2 parts by row group, reading attributes only when a row passes; version-1 parts
    in batches of every column the key recomputation needs."""
    if version == 1:
        for batch in pf.iter_batches(batch_size=BATCH, columns=si.PROBE_COLUMNS[1] + ATTRIBUTES):
            yield batch, lambda rows, batch=batch: batch.take(pa.array(rows))
        return
    for g in range(pf.num_row_groups):
        probe = pf.read_row_group(g, columns=si.PROBE_COLUMNS[2])
        yield probe, lambda rows, g=g: pf.read_row_group(g, columns=ATTRIBUTES).take(pa.array(rows))


def _days(dates):
    """date32 values → days since 1970-01-01."""
    return np.asarray(dates.to_numpy(zero_copy_only=False).astype("datetime64[D]"), dtype=np.int64)


def _earliest(element):
    """Per entry partition: each (document, entry) match picks up the entry's earliest seen key;
    per document the minimum goes to its shard."""
    _, items = element
    attrs = [x[1:] for x in items if x[0] == "attr"]
    near = [x[1:] for x in items if x[0] == "sim"]
    exact = [x[1:] for x in items if x[0] == "exact"]
    if not attrs or not (near or exact):
        return
    ids, keys = _concat(attrs, 2)
    n_docs, n_entries = _concat(near, 2)
    e_docs, e_entries = _concat(exact, 2)
    docs = np.concatenate([n_docs, e_docs])
    entries = np.concatenate([n_entries, e_entries])
    is_exact = np.r_[np.zeros(len(n_docs), dtype=bool), np.ones(len(e_docs), dtype=bool)]
    docs, first, ex = core.earliest_matches(docs, entries, is_exact, ids, keys)
    for shard, cols in _by_shard(docs, first, ex):
        yield shard, (core.ANNOTATION_SEEN,) + cols


class _NearEnough(beam.DoFn):
    """Verified (document, entry) agreements → the near copies (≥ the similarity threshold)."""

    def __init__(self, threshold):
        self.threshold = threshold

    def process(self, element):
        p, (_, docs, entries, agreement) = element
        keep = agreement >= self.threshold
        if keep.any():
            yield p, ("sim", docs[keep], entries[keep])


def _url_join(element):
    _, items = element
    d_urls, d_nodes, d_texts = _concat([x[1:] for x in items if x[0] == "doc"], 3)
    e = [x[1:] for x in items if x[0] == "entry"]
    if not e or not len(d_urls):
        return
    e_urls, e_caps, e_texts = _concat([x[:3] for x in e], 3)
    e_human = np.concatenate([x[3] for x in e])
    nodes, changed, human = core.latest_by_url(d_urls, d_nodes, d_texts, e_urls, e_caps, e_texts, e_human)
    for shard, cols in _by_shard(nodes, changed, human):
        yield shard, (core.ANNOTATION_SEEN_URL,) + cols


class SeenMatches(beam.PTransform):
    """(verified doc-entry similarities and exact pairs keyed by entry partition, entry attrs,
    document URL keys, entry URL captures) → per-shard `seen` and `seen_url` annotations."""

    def __init__(self, similarity_threshold):
        super().__init__()
        self.similarity_threshold = similarity_threshold

    def expand(self, inputs):
        similarities, exact_pairs, entry_attrs, doc_urls, entry_urls = inputs
        by_entry = ((similarities | "NearCopies" >> beam.ParDo(_NearEnough(self.similarity_threshold)),
                     exact_pairs | "TagExactPairs" >> beam.Map(_tag("exact")),
                     entry_attrs)
                    | "SeenEvidence" >> beam.Flatten()
                    | "GroupByEntry" >> CountedGroupByKey()
                    | "EarliestSeen" >> beam.FlatMap(_earliest))
        by_url = ((doc_urls | "TagDocUrls" >> beam.Map(_tag("doc")), entry_urls)
                  | "AllUrls" >> beam.Flatten()
                  | "GroupByUrl" >> CountedGroupByKey()
                  | "LatestCaptureOfUrl" >> beam.FlatMap(_url_join))
        return (by_entry, by_url) | "SeenAnnotations" >> beam.Flatten()
