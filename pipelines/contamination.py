"""Benchmark contamination check: which evaluation items occur in an audited crawl (word
n-gram containment, named document and domain) or in an index of known model outputs
(sampled n-gram containment and MinHash near copies, named output and model). Prints a
per-benchmark table; --json writes every item's result and the summary.

Items are read from JSONL(.gz/.zst) or Parquet files: `text`, else the concatenation of
the usual evaluation fields (context/ctx/passage/premise/hypothesis/goal/sentence/
instruction/prompt/question/query/problem/input, then choices/options/endings/answer/
answers/solution/canonical_solution/target/output/completion). The benchmark is the file
name without extensions unless an item has a `benchmark` field; the item id is `id`
(or item_id/task_id/question_id/qid/uid/idx), else BENCHMARK:LINE. Unusable lines are
counted with their reason.
"""
import os
import sys
import tempfile
import time

HELP = "which benchmark items appear in an audited crawl or in known model outputs (n-gram containment)"

DEFAULT_AUDIT_NGRAM = 8
LOCAL_RUNNERS = ("DirectRunner", "FnApiRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner", "PrismRunner")


def add_arguments(ap):
    ap.add_argument("--benchmark", action="append", required=True,
                    help="glob of evaluation item files (JSONL, JSONL.gz/.zst, Parquet); repeat for more")
    ap.add_argument("--against", required=True,
                    help="an audit run (directory with _SUCCESS), a root of runs (its newest run is used), "
                         "or a known-output index (directory with index.json)")
    ap.add_argument("--json", help="write per-item results and the per-benchmark summary here (any Beam filesystem)")
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="an item is contaminated when at least this share of its n-grams occurs in the "
                         "crawl / known outputs (default %(default)s)")
    ap.add_argument("--ngram-size", type=int, default=None,
                    help=f"words per n-gram against an audit (default {DEFAULT_AUDIT_NGRAM}); an index "
                         "always uses the n-gram size and sampling it was built with")
    ap.add_argument("--similarity-threshold", type=float, default=0.5,
                    help="against an index: estimated Jaccard with an output that makes it a near copy "
                         "of the item (default %(default)s)")
    ap.add_argument("--top", type=int, default=5, help="domains / models listed per benchmark (default %(default)s)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def open_target(path, ngram_size=None):
    """("audit", AuditRun, files, spec, None) or ("index", dir, part files, spec, MinHashConfig)."""
    from apache_beam.io.filesystems import FileSystems

    from corpus_audit.pipelines.runs import AuditError, resolve_run
    from corpus_audit.transforms.known import index as ki
    from corpus_audit.transforms.curate.contamination import NgramSpec
    from corpus_audit.transforms.dedup.minhash import MinHashConfig

    path = path.rstrip("/")
    if FileSystems.exists(ki.manifest_path(path)):
        manifest = ki.read_manifest(path)
        ki.check_parts(manifest, path)
        p = manifest["params"]
        spec = NgramSpec(ngram_size=p["ngram_size"], sample=p["ngram_sample"], seed=p["seed"])
        cfg = MinHashConfig(shingle_size=p["shingle_size"], num_bands=p["num_bands"],
                            rows_per_band=p["rows_per_band"], seed=p["seed"])
        if cfg.num_perm != p["num_perm"]:
            raise ki.KnownIndexError(f"{path}: index.json says num_perm {p['num_perm']}, bands × rows give {cfg.num_perm}")
        files = [FileSystems.join(path, part["file"]) for part in manifest["parts"]]
        return "index", path, files, spec, cfg, manifest
    if not FileSystems.exists(path):
        raise AuditError(f"--against {path}: no such directory")
    try:
        run = resolve_run(path)
    except AuditError as exc:
        raise AuditError(f"--against {path} is not a known-output index (no index.json) and not a usable "
                         f"audit: {exc}") from None
    spec = NgramSpec(ngram_size=ngram_size or DEFAULT_AUDIT_NGRAM, sample=1)
    return "audit", run.path, list(run.document_files), spec, None, run.summary


class _Refs:
    """Row → reference tuple, built only for rows that match something."""

    def __init__(self, batch, columns):
        self.cols = [batch.column(c) for c in columns]
        self.n = batch.num_rows

    def __len__(self):
        return self.n

    def __getitem__(self, row):
        return tuple(c[row].as_py() for c in self.cols)


def _row_groups(path):
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as f:
        n = pq.ParquetFile(f).metadata.num_row_groups
    return [(path, g) for g in range(n)]


def _make_scan(kind, spec, cfg, threshold):
    import apache_beam as beam

    class ScanRowGroup(beam.DoFn):
        """One row group of crawl documents (or index entries) → Evidence about the items.
        Text is read and hashed here and never leaves the worker."""

        def setup(self):
            from corpus_audit.transforms.dedup.minhash import MinHasher

            self.sampler = spec.sampler()
            self.hasher = MinHasher(cfg) if cfg is not None else None
            self.scanned = beam.metrics.Metrics.counter("contamination", "rows_scanned")
            self.matched = beam.metrics.Metrics.counter("contamination", "rows_matching_an_item")

        def process(self, unit, bench):
            import numpy as np
            import pyarrow.parquet as pq
            from apache_beam.io.filesystems import FileSystems

            from corpus_audit.transforms.curate import contamination as ct

            path, group = unit
            columns = (["doc_id", "url", "domain", "text"] if kind == "audit"
                       else ["output_id", "model", "ngrams", "signature"])
            with FileSystems.open(path) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=2000, row_groups=[group], columns=columns):
                    if kind == "audit":
                        refs = _Refs(batch, ["doc_id", "url", "domain"])
                        hashes, owners = ct.doc_ngrams(batch.column("text").to_pylist(), spec, self.sampler)
                        ev = ct.scan(bench, hashes, owners, refs, threshold)
                    else:
                        refs = _Refs(batch, ["output_id", "model"])
                        grams = batch.column("ngrams")
                        lengths = grams.value_lengths().to_numpy(zero_copy_only=False)
                        hashes = grams.flatten().to_numpy()
                        owners = np.repeat(np.arange(batch.num_rows), lengths)
                        ev = ct.scan(bench, hashes, owners, refs, threshold)
                        sigs = batch.column("signature").flatten().to_numpy().reshape(batch.num_rows, cfg.num_perm)
                        ev.merge(ct.near_copies(bench, sigs, refs, self.hasher.band_keys))
                    self.scanned.inc(batch.num_rows)
                    self.matched.inc(len(ev.best))
                    yield ev

    return ScanRowGroup()


def _merge_evidence():
    import apache_beam as beam

    from corpus_audit.transforms.curate.contamination import Evidence

    class MergeEvidence(beam.CombineFn):
        """Evidence is bounded by the benchmark's size, so it combines globally (with
        combiner lifting, each worker merges its own before the shuffle)."""

        def create_accumulator(self):
            return Evidence()

        def add_input(self, acc, ev):
            return acc.merge(ev)

        def merge_accumulators(self, accs):
            accs = list(accs)
            first = accs[0]
            for a in accs[1:]:
                first.merge(a)
            return first

        def extract_output(self, acc):
            return acc

    return MergeEvidence()


def _write_report(ev, bench, kind, settings, out_path):
    from corpus_audit.pipelines.runs import write_json
    from corpus_audit.transforms.curate.contamination import finalise

    items, bad = bench.items, bench.bad
    results, summaries = finalise(items, bad, bench, ev, settings["threshold"], kind,
                                  settings["similarity_threshold"], settings["top"])
    report = {
        "against": {"kind": kind, "path": settings["against"], "rows_scanned": ev.scanned},
        "benchmarks": summaries,
        "bad_items": [{"benchmark": b.benchmark, "source": b.source, "reason": b.reason, "detail": b.detail}
                      for b in bad],
        "params": {k: settings[k] for k in ("threshold", "ngram_size", "ngram_sample", "min_ngrams",
                                            "similarity_threshold", "benchmark_files")},
        "items": results,
    }
    write_json(out_path, report)


def _load_benchmarks(paths, spec, cfg):
    from corpus_audit.transforms.curate.contamination import load_benchmarks

    return load_benchmarks(list(paths), spec, cfg)


def check(args, beam_args):
    """Everything that can fail before the pipeline: returns the prepared inputs."""
    from corpus_audit.transforms.curate.contamination import ContaminationError, read_benchmarks
    from corpus_audit.transforms.read.shard_io import expand_inputs

    if not 0 < args.threshold <= 1:
        raise ValueError(f"--threshold {args.threshold}: must be in (0, 1]")
    if args.ngram_size is not None and args.ngram_size < 1:
        raise ValueError(f"--ngram-size {args.ngram_size}: must be at least 1")
    try:
        paths = expand_inputs(args.benchmark)
    except FileNotFoundError as exc:
        raise ContaminationError(f"--benchmark: {exc}") from None
    target = open_target(args.against, args.ngram_size)
    items, bad = read_benchmarks(paths)
    if not items:
        reasons = {}
        for b in bad:
            reasons[b.reason] = reasons.get(b.reason, 0) + 1
        detail = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "the files are empty"
        raise ContaminationError(f"no usable benchmark items in {', '.join(paths)} ({detail})")
    return paths, target, items, bad


def run(args, beam_args):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from corpus_audit.pipelines.local_runner import make_runner
    from corpus_audit.transforms.curate.contamination import MIN_NGRAMS, format_table

    start = time.monotonic()
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    if not args.json and runner and runner not in LOCAL_RUNNERS:
        raise ValueError(f"--json is required with --runner={runner}: a worker writes the results there")
    paths, (kind, against, files, spec, cfg, _), items, bad = check(args, beam_args)
    if kind == "index" and args.ngram_size and args.ngram_size != spec.ngram_size and not args.quiet:
        print(f"[corpus-audit] the index uses {spec.ngram_size}-grams; --ngram-size ignored", file=sys.stderr)
    if not args.quiet:
        print(f"[corpus-audit] {len(items):,} items ({len(bad)} bad) from {len(paths)} file(s) against "
              f"{kind} {against}: {len(files)} file(s), {spec.ngram_size}-grams"
              f"{'' if spec.sample == 1 else f' sampled 1 in {spec.sample}'}", file=sys.stderr)
    settings = {"threshold": args.threshold, "similarity_threshold": args.similarity_threshold, "top": args.top,
                "against": against, "ngram_size": spec.ngram_size, "ngram_sample": spec.sample,
                "min_ngrams": MIN_NGRAMS, "benchmark_files": paths}
    tmpdir = None
    out_path = args.json
    if not out_path:
        tmpdir = tempfile.mkdtemp(prefix="contamination-")
        out_path = os.path.join(tmpdir, "contamination.json")
    try:
        with beam.Pipeline(runner=make_runner(options), options=options) as p:
            # The benchmark is small: read and hashed once, then a side input of every worker,
            # so the crawl's n-grams are looked up where they are computed and never shuffled.
            # (Read inside the pipeline, not pickled into its graph: Beam bz2-compresses the graph.)
            side = (p
                    | "BenchmarkFiles" >> beam.Create([tuple(paths)])
                    | "ReadAndHashBenchmarks" >> beam.Map(_load_benchmarks, spec, cfg))
            units = (p
                     | "ListFiles" >> beam.Create(files)
                     | "SpreadFiles" >> beam.Reshuffle()
                     | "ListRowGroups" >> beam.FlatMap(_row_groups)
                     # One unit per row group (~10k documents), spread over the workers.
                     | "SpreadRowGroups" >> beam.Reshuffle())
            (units
             | "ScanRowGroups" >> beam.ParDo(_make_scan(kind, spec, cfg, args.threshold),
                                             beam.pvalue.AsSingleton(side))
             | "MergeEvidence" >> beam.CombineGlobally(_merge_evidence())
             | "WriteReport" >> beam.Map(_write_report, beam.pvalue.AsSingleton(side), kind, settings, out_path))
        from corpus_audit.pipelines.runs import read_json

        report = read_json(out_path)
    finally:
        if tmpdir:
            import shutil

            shutil.rmtree(tmpdir, ignore_errors=True)
    seconds = time.monotonic() - start
    print(format_table(report["benchmarks"], kind))
    scanned = report["against"]["rows_scanned"]
    print(f"{scanned:,} {'documents' if kind == 'audit' else 'known outputs'} scanned, "
          f"{len(items):,} items, {seconds:.1f} s"
          + (f"; results in {args.json}" if args.json else ""))
    return 0
