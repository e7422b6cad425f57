"""Audit report: one self-contained HTML page (and report.json) describing an audit run.

`corpus-audit report --audit PATH [--compare EARLIER ...] --html report.html [--json report.json]`

PATH is a run directory (OUTPUT/RUN_ID/) or a root of runs (the newest complete run is used).
The page shows the distribution of synthetic_likelihood, the synthetic share by domain and by
crawl month, the provenance labels and their reasons, near-duplicate rate and cluster sizes,
known-output matches by model, how the detectors agree, and collapse signals (lexical
diversity, tail mass, similarity within domains). Every earlier run given with --compare is
shown beside the current one: a table of headline numbers and trend plots. report.json holds
the same numbers for machines.

The numbers, plots and page are in `corpus_audit.transforms.report` (numbers.py, plots.py,
page.py); this module is the command's wiring.
"""
import json

from corpus_audit.transforms.report.numbers import build_report
from corpus_audit.transforms.report.page import render_html

HELP = "write a self-contained HTML report (and report.json) of an audit run, optionally beside earlier runs"


def add_arguments(ap):
    ap.add_argument("--audit", required=True,
                    help="audit run directory (OUTPUT/RUN_ID/) or a root of runs (its newest complete run)")
    ap.add_argument("--compare", nargs="+", action="extend", default=[], metavar="EARLIER",
                    help="earlier audit runs (directories or roots) to show beside this one; repeatable")
    ap.add_argument("--html", required=True, help="the HTML page to write (any Beam filesystem)")
    ap.add_argument("--json", help="also write the numbers as JSON here")
    ap.add_argument("--top-domains", type=int, default=10,
                    help="domains shown (by documents) and measured for similarity (default %(default)s)")
    ap.add_argument("--sample-size", type=int, default=2000,
                    help="documents in the bottom-k sample for collapse signals (default %(default)s)")


def run(args, beam_args):
    from corpus_audit.pipelines.runs import AuditError, resolve_run

    if args.top_domains < 1 or args.sample_size < 1:
        raise ValueError("--top-domains and --sample-size must be at least 1")
    current = resolve_run(args.audit)
    earlier = []
    for path in args.compare:
        try:
            earlier.append(resolve_run(path))
        except (AuditError, OSError, ValueError, KeyError) as exc:
            raise AuditError(f"--compare {path}: cannot read it as an audit run: {exc}") from exc
    report = build_report(current, earlier, top_domains=args.top_domains, sample_size=args.sample_size)
    _write(args.html, render_html(report).encode("utf-8"))
    if args.json:
        _write(args.json, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    h = report["current"]["headline"]
    print(f"report of run {report['current']['run_id']} ({h['documents']:,} documents"
          + (f", compared with {len(earlier)} earlier run(s)" if earlier else "") + f") -> {args.html}"
          + (f", {args.json}" if args.json else ""))
    return 0


def _write(path, data):
    """Write then rename, so a reader never sees half a page."""
    from apache_beam.io.filesystems import FileSystems

    tmp = path + ".tmp"
    with FileSystems.create(tmp) as f:
        f.write(data)
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
