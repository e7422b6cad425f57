"""The `corpus-audit` command.

Unknown `--flags` are handed to Beam, so any runner option (`--runner=DataflowRunner
--project=… --region=…`, `--direct_running_mode=multi_processing --direct_num_workers=2`)
works unchanged.
"""
import argparse
import datetime
import importlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field


class _DropOptionalGcpWarning(logging.Filter):
    """Beam warns on import that the optional GCP client is missing; local runs do not need it."""

    def filter(self, record):
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_DropOptionalGcpWarning())
# Local worker processes relay a harmless start-up warning through this logger.
logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)

from corpus_audit.pipelines.runs import AuditError, default_run_id
from corpus_audit.transforms.audit.shuffle_check import ShuffleLost
from corpus_audit.transforms.dedup.minhash import MinHashConfig
from corpus_audit.transforms.known.index import KnownIndexError, NgramConfig
from corpus_audit.transforms.read.records import DEFAULT_MAX_DOC_BYTES
from corpus_audit.transforms.read.shard_io import FORMATS
from corpus_audit.transforms.detectors.ensemble import DEFAULT_PRIOR
from corpus_audit.transforms.detectors.lm_stage import LM_MODES, LMOptions

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "sample_crawl")
SAMPLE_INPUTS = [os.path.join(SAMPLE_DIR, "*.warc*"), os.path.join(SAMPLE_DIR, "*.jsonl*")]
SAMPLE_KNOWN_OUTPUTS = os.path.join(SAMPLE_DIR, "known_outputs", "*.jsonl*")


@dataclass
class AuditSettings:
    inputs: list
    output: str
    format: str = None
    overwrite: bool = False
    progress: bool = True
    partitions: int = 8
    cc_rounds: int = 12
    max_doc_bytes: int = DEFAULT_MAX_DOC_BYTES
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    ngram: NgramConfig = field(default_factory=NgramConfig)
    known_outputs: str = None
    detectors: str = "default"
    allow_domains: str = None
    deny_domains: str = None
    similarity_threshold: float = 0.5
    containment_threshold: float = 0.3
    run_id: str = None
    update_index: str = None
    lm: LMOptions = field(default_factory=LMOptions)
    prior: float = DEFAULT_PRIOR
    seen_index: str = None
    human_reference: str = None
    seen_cutoff: datetime.date = datetime.date(2022, 11, 30)
    run_date: str = None


def _add_hash_args(ap):
    """MinHash and n-gram parameters: an index and the audits that use it must agree."""
    d, n = MinHashConfig(), NgramConfig()
    g = ap.add_argument_group("hashing (an index and its audits must use the same values)")
    g.add_argument("--shingle-size", type=int, default=d.shingle_size, help="words per shingle (default %(default)s)")
    g.add_argument("--bands", type=int, default=d.num_bands, help="LSH bands (default %(default)s)")
    g.add_argument("--rows", type=int, default=d.rows_per_band, help="rows per band (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="hash seed (default %(default)s)")
    g.add_argument("--ngram-size", type=int, default=n.ngram_size,
                   help="words per n-gram for known-output containment (default %(default)s)")
    g.add_argument("--ngram-sample", type=int, default=n.ngram_sample,
                   help="keep 1 in this many n-grams, chosen by hash (default %(default)s)")
    return g


def _add_audit_args(ap):
    d = MinHashConfig()
    ap.add_argument("--output", required=True,
                    help="root directory (any Beam filesystem); the run is written to OUTPUT/RUN_ID/")
    ap.add_argument("--run-id", default=None,
                    help="name of this run under --output (default: today's UTC date, e.g. 2026-11-22); "
                         "the run counts as complete once OUTPUT/RUN_ID/_SUCCESS exists")
    ap.add_argument("--format", choices=FORMATS, help="force the input format instead of using file extensions")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing audit in --output")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--max-doc-bytes", type=int, default=DEFAULT_MAX_DOC_BYTES,
                    help="records larger than this become dead letters (default %(default)s)")
    k = ap.add_argument_group("known model outputs")
    k.add_argument("--known-outputs",
                   help="index directory (corpus-audit index build), or a glob of output files "
                        "(JSONL/Parquet with text, id, model) indexed on the fly")
    k.add_argument("--similarity-threshold", type=float, default=0.5,
                   help="estimated Jaccard with an output that makes a document a near copy (default %(default)s)")
    k.add_argument("--containment-threshold", type=float, default=0.3,
                   help="share of a document's n-grams found in known outputs that makes it a match "
                        "(default %(default)s)")
    k.add_argument("--update-index",
                   help="after the run, add the documents labelled synthetic to this index (created if "
                        "missing) so the next audit finds copies of them")
    sp = ap.add_argument_group("seen pages (what earlier runs read)")
    sp.add_argument("--seen-index",
                    help="seen-pages index directory (any Beam filesystem): documents are matched against the "
                         "earlier runs it holds (seen_before, first_seen_run, url_seen_before, ...), and this run's "
                         "documents are added to it when the run commits; created by the first run")
    sp.add_argument("--seen-cutoff", default="2022-11-30",
                    help="text first seen before this date (YYYY-MM-DD) is human evidence; a page rewritten after "
                         "it into text that scores synthetic is machine-edited (default %(default)s)")
    sp.add_argument("--run-date",
                    help="date of this run (YYYY-MM-DD), the capture date of documents without a crawl_date "
                         "(default: the run id if it is a date, else today, UTC)")
    det = ap.add_argument_group("detectors and provenance")
    det.add_argument("--model", default="default",
                     help="detector model directory from `corpus-audit train` (default: the model shipped "
                          "in the package)")
    det.add_argument("--no-detectors", action="store_true",
                     help="skip the detectors: no synthetic_likelihood (e.g. to time deduplication alone)")
    det.add_argument("--prior", type=float, default=DEFAULT_PRIOR,
                     help="machine share the crawl is expected to have; the likelihood is Bayes' rule "
                          "with this prior instead of the training mix (default %(default)s)")
    det.add_argument("--lm-detector", choices=LM_MODES, default=LMOptions.mode,
                     help="language-model tier: score every document (all; GPU workers or small crawls), "
                          "a fixed sample by doc_id hash (sample), or none (default %(default)s)")
    det.add_argument("--lm-sample-rate", type=float, default=LMOptions.sample_rate,
                     help="share of documents the LM scores with --lm-detector sample (default %(default)s)")
    det.add_argument("--lm-tokens", type=int, default=LMOptions.tokens,
                     help="tokens per document the LM reads; must be those the model's LM head was trained "
                          "on (the shipped model: %(default)s)")
    det.add_argument("--lm-threads", type=int, default=None,
                     help="CPU threads per worker for the LM (default: the worker's cores)")
    det.add_argument("--lm-gpu-layers", type=int, default=0,
                     help="layers to offload to a GPU (llama.cpp built with CUDA; -1 = all)")
    det.add_argument("--human-reference",
                     help="an earlier audit run (or a root of runs: its newest) of text known to be human from "
                          "the same sites, such as a crawl from before 2023, audited with the same detector "
                          "model: its documents join this crawl's dated ones as the share estimate's human "
                          "reference")
    det.add_argument("--allow-domains", help="file of domains (one per line) whose pages are human-written")
    det.add_argument("--deny-domains", help="file of domains (one per line) known to publish generated text")
    g = _add_hash_args(ap)
    g.title = "near-duplicate clustering and hashing"
    g.add_argument("--verify-threshold", type=float, default=d.verify_threshold,
                   help="candidate pairs need at least this estimated Jaccard; 0 keeps every LSH "
                        "collision (default %(default)s)")
    g.add_argument("--min-shingles", type=int, default=d.min_shingles,
                   help="documents with fewer shingles only match exact copies (default %(default)s)")
    g.add_argument("--max-bucket-size", type=int, default=d.max_bucket_size,
                   help="LSH buckets larger than this link only their smallest members (default %(default)s)")
    g.add_argument("--partitions", type=int, default=8,
                   help="hash partitions of each shuffle; raise it with the number of workers (default %(default)s)")
    g.add_argument("--cc-rounds", type=int, default=12,
                   help="large-star/small-star rounds; the run fails loudly if they do not suffice "
                        "(default %(default)s)")


def _settings(args, inputs, output):
    d = MinHashConfig()
    return AuditSettings(
        inputs=inputs, output=output, format=args.format, overwrite=args.overwrite,
        progress=not args.quiet, partitions=getattr(args, "partitions", 8),
        cc_rounds=getattr(args, "cc_rounds", 12),
        max_doc_bytes=getattr(args, "max_doc_bytes", DEFAULT_MAX_DOC_BYTES),
        minhash=MinHashConfig(shingle_size=args.shingle_size, num_bands=args.bands,
                              rows_per_band=args.rows, seed=args.seed,
                              verify_threshold=getattr(args, "verify_threshold", d.verify_threshold),
                              min_shingles=getattr(args, "min_shingles", d.min_shingles),
                              max_bucket_size=getattr(args, "max_bucket_size", d.max_bucket_size)),
        ngram=NgramConfig(ngram_size=args.ngram_size, ngram_sample=args.ngram_sample, seed=args.seed),
        known_outputs=getattr(args, "known_outputs", None),
        detectors=None if getattr(args, "no_detectors", False) else getattr(args, "model", "default"),
        allow_domains=getattr(args, "allow_domains", None),
        deny_domains=getattr(args, "deny_domains", None),
        similarity_threshold=getattr(args, "similarity_threshold", 0.5),
        containment_threshold=getattr(args, "containment_threshold", 0.3),
        run_id=getattr(args, "run_id", None) or default_run_id(),
        update_index=getattr(args, "update_index", None),
        lm=LMOptions(mode=getattr(args, "lm_detector", LMOptions.mode),
                     sample_rate=_rate(getattr(args, "lm_sample_rate", LMOptions.sample_rate), "--lm-sample-rate"),
                     tokens=getattr(args, "lm_tokens", LMOptions.tokens),
                     threads=getattr(args, "lm_threads", None), gpu_layers=getattr(args, "lm_gpu_layers", 0)),
        prior=_rate(getattr(args, "prior", DEFAULT_PRIOR), "--prior", open_interval=True),
        seen_index=getattr(args, "seen_index", None),
        human_reference=getattr(args, "human_reference", None),
        seen_cutoff=_date(getattr(args, "seen_cutoff", "2022-11-30"), "--seen-cutoff"),
        run_date=_date(getattr(args, "run_date", None), "--run-date") and args.run_date,
    )


def _date(value, option):
    if value is None:
        return None
    try:
        return datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def _rate(x, option, open_interval=False):
    if not (0 < x < 1 if open_interval else 0 <= x <= 1):
        raise ValueError(f"{option} {x} is not a share in {'(0, 1)' if open_interval else '[0, 1]'}")
    return float(x)


def print_summary(summary, out=sys.stdout):
    dl = ", ".join(f"{k} {v}" for k, v in summary["dead_letters_by_reason"].items()) or "none"
    print(f"shards            {summary['shards']}", file=out)
    print(f"records read      {summary['records_read']:,}", file=out)
    print(f"documents written {summary['documents_written']:,}", file=out)
    print(f"dead letters      {summary['dead_letters']:,} ({dl})", file=out)
    print(f"near-dup clusters {summary['clusters']:,} holding {summary['duplicates']:,} duplicates "
          f"({summary['exact_dup_documents']:,} documents with an exact copy)", file=out)
    print(f"too short to hash {summary['too_short_documents']:,}", file=out)
    languages = summary.get("languages") or {}
    if languages:
        shown = list(languages.items())[:8]
        rest = sum(v for _, v in list(languages.items())[8:])
        print("languages         " + ", ".join(f"{k} {v:,}" for k, v in shown)
              + (f", {len(languages) - 8} others {rest:,}" if rest else ""), file=out)
    synthetic = summary.get("synthetic") or {}
    if synthetic.get("documents_scored"):
        labels = ", ".join(f"{k} {v}" for k, v in synthetic["provenance"].items())
        print(f"synthetic         {synthetic['share_likelihood_ge_0_5']:.1%} of the {synthetic['documents_scored']:,} "
              f"scored (English) documents have "
              f"synthetic_likelihood >= 0.5 (mean {synthetic['mean_likelihood']:.3f}); provenance: {labels}",
              file=out)
        est = synthetic.get("share_estimate")
        if est:
            print(f"synthetic share   {est['value']:.1%} estimated, 95 % interval {est['low']:.1%}-{est['high']:.1%} "
                  f"of the English documents ({est['stack']}, "
                  + (f"against {est['anchor_documents']:,} human reference documents"
                     + (f" ({est['human_reference_documents']:,} from {est['human_reference_run']})"
                        if est.get("human_reference_run") else " dated before the cut-off") + ", "
                     if est.get("anchor_documents") else "against the development data's references, ")
                  + f"{est['known_output_copies']} known copies; "
                  f"{est.get('not_english', 0):,} in other languages not counted; prior {synthetic['prior']})", file=out)
        lm = synthetic.get("lm_detector") or {}
        if lm.get("mode", "off") != "off":
            scope = "every document" if lm["mode"] == "all" else f"a {lm['sample_rate']:.0%} sample by doc_id"
            full = ((est or {}).get("by_stack") or {}).get("full")
            print(f"LM detector       {scope}, first {lm['tokens']} tokens: {lm['documents_scored']:,} documents "
                  f"scored, {lm.get('documents_given_representative', 0):,} given their cluster "
                  f"representative's statistics"
                  + (f"; with the LM the share reads {full['value']:.1%} ({full['low']:.1%}-{full['high']:.1%}) "
                     f"over the {full['fitted_documents']:,} documents it covers" if full else ""), file=out)
    known = summary.get("known_outputs")
    if known:
        kinds = ", ".join(f"{k} {v}" for k, v in known["matched_by_kind"].items()) or "none"
        print(f"known outputs     {known['documents_matched']:,} documents match the "
              f"{known['entries']:,} outputs in {known['index']} ({kinds})", file=out)
    seen = summary.get("seen")
    if seen:
        print(f"seen pages        {seen['exact']:,} exact and {seen['near']:,} near copies of pages earlier runs "
              f"saw, {seen['new']:,} new; {seen['url_changed']:,} of {seen['url_seen']:,} known URLs changed text "
              f"({seen['entries']:,} entries in {seen['index']})", file=out)
    print(f"seconds           {summary['seconds']} ({summary['documents_per_second']} records/s)", file=out)


# Subcommands that live in their own module: corpus_audit.pipelines.<module> defines HELP,
# add_arguments(parser) and run(args, beam_args) -> exit code, and imports heavy things lazily.
COMMANDS = {"filter": "filter_shards", "history": "history", "contamination": "contamination", "report": "report",
            "worker-pool": "portable"}


def build_parser():
    ap = argparse.ArgumentParser(
        prog="corpus-audit",
        description="Audit web crawls before training: read WARC/WET/JSONL/Parquet shards, extract "
                    "text, cluster near-duplicates, match known model outputs, score every document "
                    "with a stack of detectors and a calibrated synthetic_likelihood, label its "
                    "provenance, and write annotated Parquet. Options not listed here are passed to "
                    "Apache Beam (e.g. --runner, --direct_num_workers).")
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="audit shards into OUTPUT/RUN_ID/: documents, dead letters, audit.json, _SUCCESS",
                       description="Audit crawl shards. Writes OUTPUT/RUN_ID/documents-*.parquet (one row "
                                   "per document), dead_letters-*.parquet (records that could not be read, "
                                   "with the reason), audit.json (counts) and, last, _SUCCESS.")
    a.add_argument("--input", action="append", required=True,
                   help="glob of shards on any Beam filesystem; repeat for more (.gz/.zst decompressed)")
    _add_audit_args(a)
    d = sub.add_parser("demo", help="audit the sample crawl bundled with the package and print a summary",
                       description="Audit the bundled sample crawl (real WARC files plus WARC and JSONL "
                                   "shards of MIT-licensed human and machine texts with planted "
                                   "near-duplicates).")
    _add_audit_args(d)
    ix = sub.add_parser("index", help="build, extend or describe an index of known model outputs",
                        description="An index of known model outputs (JSONL/Parquet files with text, id, "
                                    "model; optional prompt, created) that `audit --known-outputs` matches "
                                    "crawl documents against.")
    isub = ix.add_subparsers(dest="index_command", required=True)
    for name, text in (("build", "create a new index from output files"),
                       ("add", "append output files to an existing index; existing parts stay untouched")):
        b = isub.add_parser(name, help=text, description=text)
        b.add_argument("--input", action="append", required=True, help="glob of output files; repeat for more")
        b.add_argument("--index", required=True, help="index directory (any Beam filesystem)")
        b.add_argument("--format", choices=FORMATS, help="force the input format")
        b.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
        if name == "build":
            b.add_argument("--overwrite", action="store_true", help="replace an existing index")
            _add_hash_args(b)
    info = isub.add_parser("info", help="entries, models, size on disk and parameters of an index")
    info.add_argument("--index", required=True)
    t = sub.add_parser("train", help="train every detector and the calibrated ensemble from labelled data",
                       description="Train the detectors and the stacked, calibrated ensemble on labelled "
                                   "JSONL(.gz) files (text, label human|machine; optional source, generator, "
                                   "domain, group, language) and write a model directory usable with "
                                   "`audit --model`.")
    t.add_argument("--data", action="append", required=True, help="glob of labelled files; repeat for more")
    t.add_argument("--out", required=True, help="model directory to write")
    t.add_argument("--seed", type=int, default=42)
    lm_help = ("LM statistics of the labelled rows, by id (scripts/lm_features.py); adds the "
               "language-model family. Rows it lacks are trained without it.")
    t.add_argument("--lm-features", help=lm_help)
    e = sub.add_parser("evaluate", help="AUROC and TPR at 1 %%/5 %% FPR under grouped CV and leave-one-source-out",
                       description="Evaluate every detector and the ensemble on labelled data: grouped "
                                   "cross-validation and leave-one-source-out (retraining per fold), overall "
                                   "and per source, generator, domain and length bucket.")
    e.add_argument("--data", action="append", required=True, help="glob of labelled files; repeat for more")
    e.add_argument("--model", help="also score this trained model directory as it is")
    e.add_argument("--report", help="write the evaluation report (Markdown) here")
    e.add_argument("--lm-features", help=lm_help)
    e.add_argument("--cv", action="store_true", help="also grouped 5-fold cross-validation (in-source)")
    e.add_argument("--scores", help="write every row's leave-one-source-out scores (by id, no text) to this .npz")
    for name, module in COMMANDS.items():
        m = importlib.import_module(f"corpus_audit.pipelines.{module}")
        m.add_arguments(sub.add_parser(name, help=m.HELP, description=m.__doc__))
    s = sub.add_parser("schema", help="print the documented output schema as a Markdown table")
    s.add_argument("--dead-letters", action="store_true", help="the dead-letter schema instead")
    return ap


def _index_command(args, beam_args):
    from corpus_audit.pipelines.index import build_or_add, index_info
    from corpus_audit.transforms.known.index import models_of, read_manifest

    if args.index_command == "info":
        print(json.dumps(index_info(args.index), indent=2))
        return 0
    if args.index_command == "add":
        # An append must hash exactly as the index was built.
        p = read_manifest(args.index)["params"]
        args.shingle_size, args.bands, args.rows, args.seed = (p["shingle_size"], p["num_bands"],
                                                               p["rows_per_band"], p["seed"])
        args.ngram_size, args.ngram_sample, args.overwrite = p["ngram_size"], p["ngram_sample"], False
    manifest, dead = build_or_add(_settings(args, args.input, None), beam_args, args.index,
                                  append=args.index_command == "add", progress=not args.quiet)
    print(f"index {args.index}: {manifest['entries']:,} outputs from {len(manifest['parts'])} part(s), "
          f"models {json.dumps(models_of(manifest))}; {dead} dead letter(s); {manifest['seconds']} s")
    return 0


# Options that name files. Local paths become absolute in the driver: the workers of a
# portable runner (or a worker pool) need not share the driver's working directory.
PATH_OPTIONS = ("input", "output", "index", "audit", "against", "benchmark", "json", "html", "compare", "root",
                "known_outputs", "update_index", "seen_index", "model", "allow_domains", "deny_domains",
                "human_reference")


def _absolute(value):
    if isinstance(value, list):
        return [_absolute(v) for v in value]
    if not isinstance(value, str) or value == "default" or "://" in value:
        return value
    return os.path.abspath(value)


def main(argv=None):
    args, beam_args = build_parser().parse_known_args(argv)
    for name in PATH_OPTIONS:
        if getattr(args, name, None) is not None:
            setattr(args, name, _absolute(getattr(args, name)))
    if args.command == "schema":
        from corpus_audit.schemas import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, describe

        print(describe(DEAD_LETTER_SCHEMA if args.dead_letters else DOCUMENT_SCHEMA))
        return 0
    unknown = [a for a in beam_args if not a.startswith("--")]
    if unknown:
        print(f"corpus-audit: unexpected arguments: {' '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        if args.command in ("train", "evaluate"):
            from corpus_audit.pipelines import train

            if args.command == "train":
                print(json.dumps(train.train(args.data, args.out, seed=args.seed, lm_features=args.lm_features),
                                 indent=2, default=str))
            else:
                train.evaluate(args.data, model_dir=args.model, report_path=args.report,
                               lm_features=args.lm_features, cv=args.cv, scores_path=args.scores)
            return 0
        if args.command == "index":
            return _index_command(args, beam_args)
        if args.command in COMMANDS:
            return importlib.import_module(f"corpus_audit.pipelines.{COMMANDS[args.command]}").run(args, beam_args)
        return _audit_command(args, beam_args)
    except (FileNotFoundError, FileExistsError, KnownIndexError, AuditError, ValueError) as exc:
        print(f"corpus-audit: {exc}", file=sys.stderr)
        return 2
    except ShuffleLost as exc:  # a runner fault: the same command may well succeed when retried
        print(f"corpus-audit: {exc}", file=sys.stderr)
        return 3


def _audit_command(args, beam_args):
    from corpus_audit.pipelines.audit import run_audit

    inputs = args.input if args.command == "audit" else SAMPLE_INPUTS
    settings = _settings(args, inputs, args.output)
    if args.command == "demo" and not settings.known_outputs:
        settings.known_outputs = SAMPLE_KNOWN_OUTPUTS
    if not args.quiet:
        print(f"[corpus-audit] auditing {', '.join(inputs)} -> {args.output}", file=sys.stderr)
    summary = run_audit(settings, beam_args)
    print_summary(summary)
    print(f"results in {summary['run_dir']}", file=sys.stdout)
    update = summary.get("seen_index_update")
    if update:
        note = " (replacing this run's earlier entries)" if update["replaced"] else ""
        print(f"seen index        {update['added']:,} documents added{note}; {update['entries']:,} entries from "
              f"{update['runs']} run(s) in {update['index']}")
    if settings.update_index:
        from corpus_audit.pipelines.index import add_run_to_index

        added = add_run_to_index(summary["run_dir"], settings.run_id, settings.update_index, settings, beam_args,
                                 progress=settings.progress)
        note = " (this run was added before)" if added["already_added"] else ""
        print(f"index updated     {added['added']:,} synthetic documents added to {settings.update_index}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
