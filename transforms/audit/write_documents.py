"""Last pass: join each staged shard with its cluster annotations and commit the output.

Annotations arrive grouped by shard index (only documents in a multi-document cluster or
with an exact copy have any), so each worker rewrites one staged file at a time, streaming
row groups. Files are written under a temporary name and renamed, so a killed run never
leaves a `documents-*` file that looks complete.
"""
import hashlib
import io
import time

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpus_audit.schemas import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA
from corpus_audit.schemas.documents import SEEN_COLUMNS
from corpus_audit.transforms.audit.shard_pass import PARQUET_COMPRESSION, signatures_path
from corpus_audit.transforms.dedup.clustering import ANNOTATION_CLUSTER, ANNOTATION_EXACT, ANNOTATION_RENAME
from corpus_audit.transforms.detectors.model_io import LM_FEATURES
from corpus_audit.transforms.detectors.lm_pass import lm_from_annotations
from corpus_audit.transforms.detectors.scoring import ensemble_columns, load_detector_model
from corpus_audit.transforms.known.matches import ANNOTATION_KNOWN
from corpus_audit.transforms.seen import core as seen_core
from corpus_audit.transforms.seen import index as seen_index

SEEN_PARTS = "seen_parts"
SEEN_COLUMN_NAMES = [c[0] for c in SEEN_COLUMNS]


def documents_path(output_dir, shard_index, num_shards):
    return FileSystems.join(output_dir, f"documents-{shard_index:05d}-of-{num_shards:05d}.parquet")


def dead_letters_path(output_dir):
    return FileSystems.join(output_dir, "dead_letters-00000-of-00001.parquet")


def write_atomically(path, tmp_path, write):
    """Write through `write(stream)` to tmp_path, then rename over path."""
    sink = FileSystems.create(tmp_path)
    try:
        write(sink)
    finally:
        sink.close()
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp_path], [path])


def annotation_columns(doc_ids, annotations, known_checked):
    """Cluster and known-output columns of one shard's documents from its annotations."""
    n = len(doc_ids)
    doc_ids = np.array(doc_ids, dtype=object)
    for ann in annotations:
        if ann[0] == ANNOTATION_RENAME:  # an id another document had first
            doc_ids[ann[1]] = ann[2]
    cluster_id = doc_ids.copy()
    size = np.ones(n, dtype=np.int32)
    is_rep = np.ones(n, dtype=bool)
    exact = np.zeros(n, dtype=bool)
    for ann in annotations:
        if ann[0] == ANNOTATION_CLUSTER:
            _, rows, cids, sizes, reps = ann
            cluster_id[rows], size[rows], is_rep[rows] = cids, sizes, reps
        elif ann[0] == ANNOTATION_EXACT:
            exact[ann[1]] = True
    cols = {"doc_id": doc_ids, "cluster_id": cluster_id, "cluster_size": size, "is_representative": is_rep,
            "exact_dup": exact}
    # Without an index the similarity columns stay null: "not checked" is not "no match".
    fill = 0.0 if known_checked else np.nan
    known = {"known_similarity": np.full(n, fill), "known_containment": np.full(n, fill),
             "known_match_id": np.full(n, None, dtype=object),
             "known_match_model": np.full(n, None, dtype=object),
             "known_match_kind": np.full(n, None, dtype=object)}
    for ann in annotations:
        if ann[0] == ANNOTATION_KNOWN:
            rows = ann[1]
            for name, values in zip(known, ann[2:]):
                known[name][rows] = values
    return {**cols, **known}


class WriteDocuments(beam.DoFn):
    def __init__(self, output_dir, staging_dir, num_shards, known_checked=False, detectors=None,
                 allow_domains=(), deny_domains=(), lm=None, prior=None, seen=None):
        self.seen = seen  # a seen_core.SeenPlan, or None without a seen-pages index
        self.lm = lm  # LMOptions, or None for no LM tier
        self.prior = prior
        self.output_dir = output_dir
        self.staging_dir = staging_dir
        self.num_shards = num_shards
        self.known_checked = known_checked
        self.detectors = detectors
        self.allow_domains = allow_domains
        self.deny_domains = deny_domains

    def setup(self):
        self.model = load_detector_model(self.detectors)
        # the LM pass (lm_pass.py) scored the documents; its statistics arrive as annotations
        self.lm_on = self.model is not None and self.model.has_lm and self.lm is not None and self.lm.mode != "off"

    def process(self, element):
        started = time.perf_counter()
        shard_index, grouped = element
        (staged,) = grouped["staged"]
        annotations = list(grouped["annotations"])
        pf = pq.ParquetFile(FileSystems.open(staged))
        doc_ids = pf.read(columns=["doc_id"]).column(0).to_pylist()
        cols = annotation_columns(doc_ids, annotations, self.known_checked)
        counts = {"documents_written": len(doc_ids),
                  "duplicates": int((~cols["is_representative"]).sum()),
                  "clusters_multi": int((cols["is_representative"] & (cols["cluster_size"] > 1)).sum()),
                  "exact_dup_documents": int(cols["exact_dup"].sum())}
        matched = np.array([k is not None for k in cols["known_match_kind"]], dtype=bool)
        _count_values(counts, "known_match.", cols["known_match_model"][matched])
        _count_values(counts, "known_kind.", cols["known_match_kind"][matched])
        folded = seen_core.fold_annotations(len(doc_ids), annotations) if self.seen else None
        piece = _SeenPiece(self.seen, self.staging_dir, shard_index) if self.seen else None
        lm_stats = lm_from_annotations(len(doc_ids), annotations) if self.lm_on else None
        if lm_stats is not None:
            given = np.isfinite(lm_stats[LM_FEATURES[0]]) & ~cols["is_representative"]
            _bump(counts, "lm_given_to_members", int(given.sum()))

        def write(sink):
            with pq.ParquetWriter(sink, DOCUMENT_SCHEMA, compression=PARQUET_COMPRESSION) as writer:
                start = 0
                for batch in pf.iter_batches(batch_size=10_000):
                    stop = start + batch.num_rows
                    arrays = {name: batch.column(name) for name in batch.schema.names}
                    lm = None if lm_stats is None else self._lm_columns(lm_stats, start, stop)
                    seen_cols, signals = self._seen_columns(batch, folded, start, stop, counts)
                    scored, bins = ensemble_columns(self.model, batch, cols, start, stop,
                                                    self.allow_domains, self.deny_domains, lm, self.prior,
                                                    seen=signals)
                    _count_scores(counts, scored, bins)
                    if piece is not None:
                        piece.add(batch, cols["doc_id"][start:stop], scored, seen_cols, start, stop)
                    for name, values in {**cols, **scored, **seen_cols}.items():
                        chunk = values[start:stop] if name in cols else values
                        mask = np.isnan(chunk) if chunk.dtype.kind == "f" else None
                        arrays[name] = pa.array(chunk, type=DOCUMENT_SCHEMA.field(name).type, mask=mask)
                    writer.write_table(pa.Table.from_pydict(arrays, schema=DOCUMENT_SCHEMA))
                    start = stop
                if pf.metadata.num_rows == 0:
                    writer.write_table(DOCUMENT_SCHEMA.empty_table())

        final = documents_path(self.output_dir, shard_index, self.num_shards)
        tmp = FileSystems.join(self.staging_dir, f"final-{shard_index:06d}.parquet")
        write_atomically(final, tmp, write)
        if piece is not None:
            t0 = time.perf_counter()
            record = piece.commit()
            if record:
                yield beam.pvalue.TaggedOutput(SEEN_PARTS, record)
            counts["stage_seconds.seen_index_write"] = time.perf_counter() - t0
        counts["stage_seconds.ensemble_and_write"] = time.perf_counter() - started - counts.get(
            "stage_seconds.lm_detector", 0.0) - counts.get("stage_seconds.seen_index_write", 0.0)
        yield counts

    def _seen_columns(self, batch, folded, start, stop, counts):
        """The seen columns of rows start:stop and their provenance signals (nulls, None without
        a seen-pages index)."""
        n = stop - start
        if self.seen is None:
            return {name: np.full(n, None, dtype=object) for name in SEEN_COLUMN_NAMES}, None
        rows = tuple(f[start:stop] for f in folded)
        days = seen_core.capture_days(seen_core.timestamps(batch.column("crawl_date")), self.seen.run_day)
        own = seen_core.seen_key(days, np.full(n, self.seen.rank))
        has_url = np.array([bool(u) for u in batch.column("url").to_pylist()], dtype=bool)
        cols = seen_core.seen_columns(rows, own, has_url, self.seen.runs)
        kinds = cols["seen_before"]
        _bump(counts, "seen.exact", int((kinds == seen_core.EXACT).sum()))
        _bump(counts, "seen.near", int((kinds == seen_core.NEAR).sum()))
        _bump(counts, "seen.new", int(sum(k is None for k in kinds)))
        _bump(counts, "seen.url_seen", int(rows[2].sum()))
        _bump(counts, "seen.url_changed", int((rows[2] & rows[3]).sum()))
        return cols, seen_core.provenance_signals(cols, rows, self.seen.cutoff)

    def _lm_columns(self, lm_stats, start, stop):
        """LM statistics and det_lm of rows start:stop."""
        out = {k: v[start:stop] for k, v in lm_stats.items()}
        out["det_lm"] = self.model.score_lm(out)
        return out


class _SeenPiece:
    """This shard's rows of the run's seen-pages part: written under a name no manifest lists
    yet (the run's commit adds it), with the size and sha256 the manifest will hold."""

    def __init__(self, plan, staging_dir, shard_index):
        self.plan = plan
        self.shard_index = shard_index
        with FileSystems.open(signatures_path(staging_dir, shard_index)) as f:
            staged = pq.read_table(f)
        self.signatures, self.bands = staged.column("signature"), staged.column("band_keys")
        self.schema = seen_index.part_schema(plan.minhash.num_perm, plan.minhash.num_bands, plan.run_id)
        self.tables = []

    def add(self, batch, doc_ids, scored, seen_cols, start, stop):
        likelihood = np.asarray(scored["synthetic_likelihood"], dtype=np.float64)
        signatures = self.signatures.slice(start, stop - start).combine_chunks()
        bands = self.bands.slice(start, stop - start).combine_chunks()
        keys = seen_index.probe_keys(None, signatures.flatten().to_numpy().reshape(len(signatures), -1),
                                     batch.column("text_hash").to_pylist(), batch.column("url").to_pylist(),
                                     bands=bands.flatten().to_numpy().reshape(len(bands), -1))
        self.tables.append(pa.table({
            "doc_id": pa.array(doc_ids, pa.string()),
            "url": batch.column("url"),
            "text_hash": batch.column("text_hash"),
            "signature": signatures,
            "crawl_date": batch.column("crawl_date"),
            "provenance": pa.array(scored["provenance"], pa.string()),
            "synthetic_likelihood": pa.array(likelihood, pa.float32(), mask=np.isnan(likelihood)),
            "first_seen_run": pa.array(seen_cols["first_seen_run"], pa.string()),
            "first_seen_date": pa.array(seen_cols["first_seen_date"], pa.date32()),
            **seen_index.probe_columns(keys),
        }, schema=self.schema))

    def commit(self):
        rows = sum(t.num_rows for t in self.tables)
        if rows == 0:
            return None
        buf = io.BytesIO()
        pq.write_table(pa.concat_tables(self.tables), buf, compression=PARQUET_COMPRESSION,
                       row_group_size=seen_index.PART_ROW_GROUP)
        data = buf.getvalue()
        name = self.plan.part_name(self.shard_index)
        with FileSystems.create(FileSystems.join(self.plan.index_dir, name)) as f:
            f.write(data)
        runs = sorted(set().union(*(set(t.column("first_seen_run").to_pylist()) for t in self.tables)))
        return {"file": name, "version": seen_index.FORMAT_VERSION, "entries": rows, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), "first_seen_runs": runs}


def _bump(counts, key, n=1):
    counts[key] = counts.get(key, 0) + n


def _count_scores(counts, scored, bins):
    for stack, values in bins.items():
        for b in np.flatnonzero(values):
            _bump(counts, f"share_bin.{stack}.{b:03d}", int(values[b]))
    likelihood = scored["synthetic_likelihood"]
    scored_rows = ~np.isnan(likelihood)
    _bump(counts, "likelihood_scored", int(scored_rows.sum()))
    _bump(counts, "likelihood_ge_0_5", int((likelihood[scored_rows] >= 0.5).sum()))
    counts["likelihood_sum"] = counts.get("likelihood_sum", 0.0) + float(likelihood[scored_rows].sum())
    _count_values(counts, "provenance.", scored["provenance"])
    _count_values(counts, "provenance_reason.", scored["provenance_reason"])


def _count_values(counts, prefix, values):
    """Add one count per distinct value (strings) under `prefix + value`."""
    if len(values):
        for value, n in zip(*np.unique(values.astype(str), return_counts=True)):
            _bump(counts, prefix + value, int(n))


def dead_letter_sort_key(row):
    return (row["source_shard"], row["record_position"], row["reason"], row["detail"])


def write_dead_letters(rows, output_dir, staging_dir):
    """All dead letters in one file, sorted by shard and position so reruns are identical."""
    rows = sorted(rows, key=dead_letter_sort_key)

    def write(sink):
        pq.write_table(pa.Table.from_pylist(rows, schema=DEAD_LETTER_SCHEMA), sink,
                       compression=PARQUET_COMPRESSION)

    write_atomically(dead_letters_path(output_dir),
                     FileSystems.join(staging_dir, "dead_letters.parquet"), write)
    return len(rows)
