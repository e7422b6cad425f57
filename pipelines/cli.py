"""The `corpus-audit` command.

Unknown `--flags` are handed to Beam, so any runner option (`--runner=DataflowRunner
--project=… --region=…`, `--direct_running_mode=multi_processing --direct_num_workers=2`)
works unchanged.
"""
import argparse
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

from corpus_audit.transforms.minhash import MinHashConfig
from corpus_audit.transforms.records import DEFAULT_MAX_DOC_BYTES
from corpus_audit.transforms.shard_io import FORMATS

SAMPLE_DIR = os.path.join(os.path.dirname(__file__), "sample_crawl")
SAMPLE_INPUTS = [os.path.join(SAMPLE_DIR, "*.warc*"), os.path.join(SAMPLE_DIR, "*.jsonl*")]


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
    setup_file: str = None
    minhash: MinHashConfig = field(default_factory=MinHashConfig)


def _add_audit_args(ap):
    d = MinHashConfig()
    ap.add_argument("--output", required=True, help="directory (any Beam filesystem) for the results")
    ap.add_argument("--format", choices=FORMATS, help="force the input format instead of using file extensions")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing audit in --output")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--max-doc-bytes", type=int, default=DEFAULT_MAX_DOC_BYTES,
                    help="records larger than this become dead letters (default %(default)s)")
    g = ap.add_argument_group("near-duplicate clustering")
    g.add_argument("--shingle-size", type=int, default=d.shingle_size, help="words per shingle (default %(default)s)")
    g.add_argument("--bands", type=int, default=d.num_bands, help="LSH bands (default %(default)s)")
    g.add_argument("--rows", type=int, default=d.rows_per_band, help="rows per band (default %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="hash seed (default %(default)s)")
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
    ap.add_argument("--setup-file", help="setup.py to ship to remote workers (Beam --setup_file)")


def _settings(args, inputs):
    return AuditSettings(
        inputs=inputs, output=args.output, format=args.format, overwrite=args.overwrite,
        progress=not args.quiet, partitions=args.partitions, cc_rounds=args.cc_rounds,
        max_doc_bytes=args.max_doc_bytes, setup_file=args.setup_file,
        minhash=MinHashConfig(shingle_size=args.shingle_size, num_bands=args.bands,
                              rows_per_band=args.rows, seed=args.seed,
                              verify_threshold=args.verify_threshold,
                              min_shingles=args.min_shingles, max_bucket_size=args.max_bucket_size),
    )


def print_summary(summary, out=sys.stdout):
    dl = ", ".join(f"{k} {v}" for k, v in summary["dead_letters_by_reason"].items()) or "none"
    print(f"shards            {summary['shards']}", file=out)
    print(f"records read      {summary['records_read']:,}", file=out)
    print(f"documents written {summary['documents_written']:,}", file=out)
    print(f"dead letters      {summary['dead_letters']:,} ({dl})", file=out)
    print(f"near-dup clusters {summary['clusters']:,} holding {summary['duplicates']:,} duplicates "
          f"({summary['exact_dup_documents']:,} documents with an exact copy)", file=out)
    print(f"too short to hash {summary['too_short_documents']:,}", file=out)
    print(f"seconds           {summary['seconds']} ({summary['documents_per_second']} records/s)", file=out)


def build_parser():
    ap = argparse.ArgumentParser(
        prog="corpus-audit",
        description="Audit web crawls before training: read WARC/WET/JSONL/Parquet shards, extract "
                    "text, cluster near-duplicates, and write annotated Parquet. Options not listed "
                    "here are passed to Apache Beam (e.g. --runner, --direct_num_workers).")
    sub = ap.add_subparsers(dest="command", required=True)
    a = sub.add_parser("audit", help="audit shards and write documents-*.parquet, dead_letters-*.parquet, audit.json",
                       description="Audit crawl shards. Writes OUTPUT/documents-*.parquet (one row per "
                                   "document), OUTPUT/dead_letters-*.parquet (records that could not be "
                                   "read, with the reason) and OUTPUT/audit.json (counts).")
    a.add_argument("--input", action="append", required=True,
                   help="glob of shards on any Beam filesystem; repeat for more (.gz/.zst decompressed)")
    _add_audit_args(a)
    d = sub.add_parser("demo", help="audit the sample crawl bundled with the package and print a summary",
                       description="Audit the bundled sample crawl (real WARC files plus WARC and JSONL "
                                   "shards of MIT-licensed human and machine texts with planted "
                                   "near-duplicates).")
    _add_audit_args(d)
    s = sub.add_parser("schema", help="print the documented output schema as a Markdown table")
    s.add_argument("--dead-letters", action="store_true", help="the dead-letter schema instead")
    return ap


def main(argv=None):
    args, beam_args = build_parser().parse_known_args(argv)
    if args.command == "schema":
        from corpus_audit.schemas import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, describe

        print(describe(DEAD_LETTER_SCHEMA if args.dead_letters else DOCUMENT_SCHEMA))
        return 0
    unknown = [a for a in beam_args if not a.startswith("--")]
    if unknown:
        print(f"corpus-audit: unexpected arguments: {' '.join(unknown)}", file=sys.stderr)
        return 2
    from corpus_audit.pipelines.audit import run_audit

    inputs = args.input if args.command == "audit" else SAMPLE_INPUTS
    if not args.quiet:
        print(f"[corpus-audit] auditing {', '.join(inputs)} -> {args.output}", file=sys.stderr)
    try:
        summary = run_audit(_settings(args, inputs), beam_args)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"corpus-audit: {exc}", file=sys.stderr)
        return 2
    print_summary(summary)
    print(f"results in {args.output}", file=sys.stdout)
    if args.command == "demo":
        print(json.dumps({k: summary[k] for k in ("records_read", "documents_written", "dead_letters",
                                                   "clusters", "duplicates")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
