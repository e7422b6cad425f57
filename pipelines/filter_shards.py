"""Write training shards from an audit run: one document per near-duplicate cluster, known-output
copies dropped if asked, and the share of likely-synthetic documents capped exactly.

Two Beam pipelines. The first reads only the decision columns of every audit file and returns
per-file counts plus the ranking keys of the documents the cap may drop; the driver turns them
into one cutoff and a shard layout (and refuses a cap it cannot meet before anything is
written). The second reads each audit file once more, writes its kept rows as pieces of the
shards they fall in, and one worker per shard concatenates the pieces in audit order. Text is
never shuffled, and the same audit gives byte-identical shards. `manifest.json`, written last,
commits the output.
"""
import gzip
import hashlib
import io
import json
import sys

HELP = "write training shards from an audit: one document per cluster, synthetic share capped"
MANIFEST = "manifest.json"
BATCH_ROWS = 4096


def add_arguments(p):
    from corpus_audit.transforms.curate.training_filter import DEDUP_CHOICES, FORMATS, FilterConfig

    d = FilterConfig()
    p.add_argument("--audit", required=True, help="an audit run directory, or a root of runs (its newest run)")
    p.add_argument("--output", required=True, help="directory for the shards and manifest.json (any Beam filesystem)")
    p.add_argument("--max-synthetic-share", type=float, default=d.max_synthetic_share,
                   help="at most this share of the written documents may have synthetic_likelihood >= "
                        "--threshold (default %(default)s)")
    p.add_argument("--threshold", type=float, default=d.threshold,
                   help="likelihood at which a document counts as synthetic (default %(default)s)")
    p.add_argument("--drop-known-matches", action="store_true",
                   help="drop documents that copy or contain a known model output")
    p.add_argument("--dedup", choices=DEDUP_CHOICES, default=d.dedup,
                   help="keep-representative: one document per near-duplicate cluster (default)")
    p.add_argument("--format", choices=FORMATS, default=d.format, help="shard format (default %(default)s)")
    p.add_argument("--shard-size", type=int, default=d.shard_size,
                   help="documents per shard; the last shard holds the rest (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace shards already committed in --output")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _beam():
    import apache_beam as beam

    return beam


def _open_table_file(path):
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    return pq.ParquetFile(FileSystems.open(path))


def _file_version(pf):
    meta = pf.schema_arrow.metadata or {}
    return meta.get(b"corpus_audit.schema_version", b"").decode() or None


def plan_file(element, config):
    """Counts and droppable ranking keys of one audit file (decision columns only)."""
    from corpus_audit.transforms.curate import training_filter as tf

    index, path = element
    pf = _open_table_file(path)
    out = {"file": index, "path": path, "version": _file_version(pf), "rows": 0, "unflagged": 0,
           "protected": 0, "flagged": 0, "keys": [], "reasons": {}}
    if out["version"] is None or any(c not in pf.schema_arrow.names for c in tf.DECISION_COLUMNS):
        return out
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=tf.DECISION_COLUMNS):
        table = _table(batch)
        reason, flagged, protected = tf.decide(table, config)
        out["rows"] += table.num_rows
        for r in tf.DROP_REASONS:
            n = int((reason == r).sum())
            if n:
                out["reasons"][r] = out["reasons"].get(r, 0) + n
        candidate = int((reason == "").sum())
        out["flagged"] += int(flagged.sum())
        out["unflagged"] += candidate - int(flagged.sum())
        out["protected"] += int(protected.sum())
        out["keys"] += [list(k) for k in tf.droppable_keys(table, flagged, protected)]
    return out


def _table(batch):
    import pyarrow as pa

    return pa.Table.from_batches([batch])


class WritePieces:
    """Per audit file: kept rows → piece files, one per shard they fall in; dropped ids → a list."""

    def __init__(self, config, cutoff, staging, total_shards):
        self.config, self.cutoff, self.staging, self.total = config, cutoff, staging, total_shards

    def __call__(self, element):
        import pyarrow as pa
        import pyarrow.parquet as pq
        from apache_beam.io.filesystems import FileSystems

        from corpus_audit.schemas import TRAINING_SCHEMA
        from corpus_audit.transforms.curate import training_filter as tf

        index, path, offset = element
        pf = _open_table_file(path)
        columns = sorted(set(tf.DECISION_COLUMNS) | set(TRAINING_SCHEMA.names))
        position, writer, current, pieces, dropped = 0, None, None, [], []

        def close():
            if writer is not None:
                writer[1].close() if writer[1] is not None else None
                writer[0].close()
                pieces.append((current, (index, writer[2], writer[3][0])))

        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
            table = _table(batch)
            reason, flagged, protected = tf.decide(table, self.config)
            capped = tf.dropped_by_cap(table, flagged, protected, self.cutoff)
            reason[capped] = tf.SYNTHETIC_CAP
            keep = reason == ""
            dropped += zip(table.column("doc_id").filter(pa.array(~keep)).to_pylist(), reason[~keep].tolist())
            kept = table.filter(pa.array(keep)).select(list(TRAINING_SCHEMA.names)).cast(TRAINING_SCHEMA)
            for shard, first, stop in tf.pieces(offset + position, kept.num_rows, self.config.shard_size):
                if shard != current:
                    close()
                    current = shard
                    name = FileSystems.join(self.staging, f"piece-{shard:05d}-{index:05d}")
                    sink = FileSystems.create(name)
                    pw = pq.ParquetWriter(sink, TRAINING_SCHEMA) if self.config.format == "parquet" else None
                    writer = (sink, pw, name, [0])
                part = kept.slice(first, stop - first)
                if writer[1] is not None:
                    writer[1].write_table(part)
                else:
                    writer[0].write(_jsonl(part))
                writer[3][0] += part.num_rows
            position += kept.num_rows
        close()
        yield from pieces
        if dropped:
            yield ("dropped", (index, dropped))


def _jsonl(table):
    out = io.StringIO()
    for row in table.to_pylist():
        if row.get("crawl_date") is not None:
            row["crawl_date"] = row["crawl_date"].isoformat()
        out.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")
    return out.getvalue().encode("utf-8")


class AssembleShard:
    """Concatenate a shard's pieces in audit order into the final file; return its checksum."""

    def __init__(self, config, output_dir, total_shards):
        self.config, self.output_dir, self.total = config, output_dir, total_shards

    def __call__(self, element):
        import pyarrow.parquet as pq
        from apache_beam.io.filesystems import FileSystems

        from corpus_audit.schemas import TRAINING_SCHEMA
        from corpus_audit.transforms.curate.training_filter import shard_name
        from corpus_audit.transforms.audit.write_documents import write_atomically

        shard, pieces = element
        pieces = sorted(pieces)
        name = shard_name(shard, self.total, self.config.format)
        target = FileSystems.join(self.output_dir, name)
        rows = sum(n for _, _, n in pieces)

        def write(sink):
            if self.config.format == "parquet":
                with pq.ParquetWriter(sink, TRAINING_SCHEMA, compression="zstd") as w:
                    for _, piece, _ in pieces:
                        for batch in _open_table_file(piece).iter_batches(batch_size=BATCH_ROWS):
                            w.write_batch(batch)
            else:
                # mtime=0 and no file name in the header: identical bytes on every run.
                with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, filename="") as gz:
                    for _, piece, _ in pieces:
                        with FileSystems.open(piece) as f:
                            gz.write(f.read())

        write_atomically(target, target + ".tmp", write)
        digest, size = hashlib.sha256(), 0
        with FileSystems.open(target) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
        FileSystems.delete([p for _, p, _ in pieces])
        yield {"file": name, "documents": rows, "bytes": size, "sha256": digest.hexdigest()}


def write_dropped(element, output_dir):
    """One Parquet file of (doc_id, reason) per audit file that lost documents."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    from corpus_audit.transforms.audit.write_documents import write_atomically

    index, rows = element
    table = pa.table({"doc_id": [r[0] for r in rows], "reason": [r[1] for r in rows]})
    path = FileSystems.join(output_dir, f"dropped-{index:05d}.parquet")
    write_atomically(path, path + ".tmp", lambda sink: pq.write_table(table, sink, compression="zstd"))
    return len(rows)


def _run_pipeline(build, beam_args):
    from apache_beam.options.pipeline_options import PipelineOptions

    from corpus_audit.pipelines.local_runner import make_runner

    beam = _beam()
    options = PipelineOptions(beam_args)
    with beam.Pipeline(runner=make_runner(options), options=options) as p:
        build(p)


def _dump(path, obj):
    from corpus_audit.pipelines.runs import write_json

    write_json(path, obj)


def prepare_output(output_dir, overwrite):
    from apache_beam.io.filesystems import FileSystems

    from corpus_audit.pipelines.runs import dir_entries

    manifest = FileSystems.join(output_dir, MANIFEST)
    if FileSystems.exists(manifest):
        if not overwrite:
            raise FileExistsError(f"{output_dir} already holds committed shards; pass --overwrite or choose "
                                  "another --output")
        FileSystems.delete([manifest])
    stale = [m.path for pattern in ("shard-*", "dropped-*", f"{MANIFEST}.tmp")
             for r in FileSystems.match([FileSystems.join(output_dir, pattern)]) for m in r.metadata_list]
    stale += dir_entries(FileSystems.join(output_dir, "_staging"))
    if stale:
        FileSystems.delete(stale)


def filter_audit(audit, output_dir, config, beam_args, overwrite=False, progress=True):
    """Run both pipelines; returns the manifest dict."""
    from apache_beam.io.filesystems import FileSystems

    from corpus_audit.pipelines.runs import AuditError, read_json, remove_dir, resolve_run
    from corpus_audit.schemas import SCHEMA_VERSION
    from corpus_audit.transforms.curate import training_filter as tf

    beam = _beam()
    run = resolve_run(audit)
    if config.max_synthetic_share < 1.0 and not run.summary.get("synthetic", {}).get("documents_scored"):
        raise AuditError(f"{run.path}: the audit has no synthetic_likelihood (it ran without detectors), "
                         "so the synthetic cap cannot be enforced; re-run the audit with detectors or pass "
                         "--max-synthetic-share 1")
    files = list(enumerate(run.document_files))
    if not files or not run.summary.get("documents_written"):
        raise AuditError(f"{run.path}: the audit holds no documents")
    output_dir = output_dir.rstrip("/")
    prepare_output(output_dir, overwrite)
    staging = FileSystems.join(output_dir, "_staging")
    FileSystems.mkdirs(staging)
    log = (lambda msg: print(f"[corpus-audit] {msg}", file=sys.stderr)) if progress else (lambda msg: None)
    try:
        plan_path = FileSystems.join(staging, "plan.json")
        log(f"planning {run.summary['documents_written']:,} documents of {run.path}")
        _run_pipeline(lambda p: (p
                                 | "ListAuditFiles" >> beam.Create(files)
                                 | "SpreadFiles" >> beam.Reshuffle()
                                 | "PlanFiles" >> beam.Map(plan_file, config)
                                 | "CollectPlans" >> beam.combiners.ToList()
                                 | "WritePlan" >> beam.Map(lambda plans: _dump(plan_path, plans))), beam_args)
        plans = sorted(read_json(plan_path), key=lambda f: f["file"])
        bad = [f["path"] for f in plans if f["version"] != SCHEMA_VERSION]
        if bad:
            raise AuditError(f"{run.path}: {len(bad)} file(s) are not documents of schema version "
                             f"{SCHEMA_VERSION} (mixed versions cannot be filtered together), e.g. {bad[0]}")
        rows = sum(f["rows"] for f in plans)
        if rows != run.summary["documents_written"]:
            raise AuditError(f"{run.path}: files hold {rows} documents, audit.json says "
                             f"{run.summary['documents_written']}")
        unflagged = sum(f["unflagged"] for f in plans)
        protected = sum(f["protected"] for f in plans)
        keys = [tuple(k) for f in plans for k in f["keys"]]
        cutoff, n_cap = tf.cap_cutoff(unflagged, protected, keys, config.max_synthetic_share)
        kept = []
        for f in plans:
            dropped = sum(1 for k in f["keys"] if cutoff is not None and tuple(k) <= cutoff)
            kept.append(f["unflagged"] + f["flagged"] - dropped)
        offsets, total_shards = tf.layout(kept, config.shard_size)
        log(f"keeping {sum(kept):,} documents in {total_shards} shard(s); the cap drops {n_cap:,}")
        shards_path = FileSystems.join(staging, "shards.json")
        tasks = [(f["file"], f["path"], offsets[i]) for i, f in enumerate(plans)]

        def build(p):
            written = (p
                       | "ListAuditFiles" >> beam.Create(tasks)
                       | "SpreadFiles" >> beam.Reshuffle()
                       | "WritePieces" >> beam.FlatMap(WritePieces(config, cutoff, staging, total_shards)))
            shards = (written
                      | "OnlyPieces" >> beam.Filter(lambda kv: kv[0] != "dropped")
                      | "PiecesByShard" >> beam.GroupByKey()
                      | "AssembleShards" >> beam.FlatMap(AssembleShard(config, output_dir, total_shards))
                      | "CollectShards" >> beam.combiners.ToList())
            dropped = (written
                       | "OnlyDropped" >> beam.Filter(lambda kv: kv[0] == "dropped")
                       | "WriteDropped" >> beam.Map(lambda kv: write_dropped(kv[1], output_dir))
                       | "CountDropped" >> beam.combiners.Count.Globally())
            _ = (shards
                 | "WriteShardList" >> beam.Map(lambda s, d: _dump(shards_path, {"shards": s, "dropped_files": d}),
                                                beam.pvalue.AsSingleton(dropped)))

        _run_pipeline(build, beam_args)
        result = read_json(shards_path)
    finally:
        remove_dir(staging)
    shards = sorted(result["shards"], key=lambda s: s["file"])
    reasons = {r: sum(f["reasons"].get(r, 0) for f in plans) for r in tf.DROP_REASONS}
    reasons[tf.SYNTHETIC_CAP] = n_cap
    flagged_before = sum(f["flagged"] for f in plans)
    candidates = unflagged + flagged_before
    written = sum(s["documents"] for s in shards)
    if written != rows - sum(reasons.values()):
        raise RuntimeError(f"wrote {written} documents, expected {rows - sum(reasons.values())}")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "audit": {"run": run.path, "run_id": run.run_id, "inputs": run.summary.get("inputs"),
                  "detector_version": (run.summary.get("synthetic") or {}).get("detector_version")},
        "parameters": config.to_dict(),
        "counts": {"documents_in": rows, "dropped": reasons, "documents_out": written},
        "synthetic": {
            "threshold": config.threshold,
            "max_share": config.max_synthetic_share,
            "flagged_before_cap": flagged_before,
            "flagged_out": flagged_before - n_cap,
            "human_labelled_flagged": protected,
            "share_before_cap": round(flagged_before / candidates, 6) if candidates else None,
            "share_out": round((flagged_before - n_cap) / written, 6) if written else None,
        },
        "shards": shards,
        "dropped_lists": result["dropped_files"],
    }
    _dump(FileSystems.join(output_dir, MANIFEST), manifest)
    return manifest


def run(args, beam_args):
    from corpus_audit.transforms.curate.training_filter import FilterConfig

    config = FilterConfig(max_synthetic_share=args.max_synthetic_share, threshold=args.threshold,
                          drop_known_matches=args.drop_known_matches, dedup=args.dedup, format=args.format,
                          shard_size=args.shard_size)
    m = filter_audit(args.audit, args.output, config, beam_args, overwrite=args.overwrite, progress=not args.quiet)
    c, s = m["counts"], m["synthetic"]
    dropped = ", ".join(f"{k} {v:,}" for k, v in c["dropped"].items())
    print(f"documents in      {c['documents_in']:,}")
    print(f"dropped           {sum(c['dropped'].values()):,} ({dropped})")
    print(f"documents out     {c['documents_out']:,} in {len(m['shards'])} shard(s)")
    before = "n/a" if s["share_before_cap"] is None else f"{s['share_before_cap']:.1%}"
    after = "n/a" if s["share_out"] is None else f"{s['share_out']:.1%}"
    print(f"synthetic share   {before} before the cap, {after} written (cap {s['max_share']:.1%} at "
          f"likelihood >= {s['threshold']})")
    print(f"manifest          {args.output.rstrip('/')}/{MANIFEST}")
    return 0
