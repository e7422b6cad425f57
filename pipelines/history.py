"""List the audit runs under a root and the trend of their headline numbers: is the synthetic
share growing, are duplicates rising, is the text getting less diverse?"""
import sys

HELP = "list the audit runs under a root and the trend of their headline numbers"

# (key, column title, format); values come from headline().
COLUMNS = [
    ("run_id", "run", "{}"),
    ("finished_at", "finished (UTC)", "{}"),
    ("documents", "documents", "{:,}"),
    ("share_estimate", "synthetic share", "{:.1%}"),
    ("share_interval", "95 % interval", "{}"),
    ("share_reference", "fitted against", "{}"),
    ("synthetic_share", "p >= 0.5", "{:.1%}"),
    ("mean_likelihood", "mean p", "{:.3f}"),
    ("duplicate_rate", "duplicates", "{:.1%}"),
    ("known_output_share", "known copies", "{:.1%}"),
    ("seen_before_share", "seen before", "{:.1%}"),
    ("new_share", "new", "{:.1%}"),
    ("url_changed_share", "changed", "{:.1%}"),
    ("distinct_2", "distinct-2", "{:.3f}"),
    ("tail_mass", "tail mass", "{:.3f}"),
]
TRENDED = ("share_estimate", "synthetic_share", "duplicate_rate", "known_output_share", "seen_before_share",
           "new_share", "url_changed_share", "distinct_2", "tail_mass")


def add_arguments(p):
    p.add_argument("--root", required=True, help="the --output root the audits were written to")
    p.add_argument("--json", help="also write the table and trend as JSON here")
    p.add_argument("--no-diversity", action="store_true",
                   help="skip distinct-2 and tail mass (they read a fixed-size sample of each run's text)")


def _reference(est):
    """What the share was fitted against: the crawl's own dated documents (a changing anchor
    makes two runs' shares less comparable) or the development data."""
    if not est:
        return None
    return f"anchored on {est['anchor_documents']:,}" if est.get("anchor_documents") else "development data"


def headline(run, diversity=True):
    """The numbers a scheduled audit is watched by, from a committed run."""
    s = run.summary
    docs = s.get("documents_written") or 0
    synthetic = s.get("synthetic") or {}
    known = s.get("known_outputs") or {}
    row = {
        "run_id": run.run_id,
        "finished_at": run.finished_at.replace("+00:00", ""),
        "documents": docs,
        "share_estimate": (synthetic.get("share_estimate") or {}).get("value"),
        "share_interval": _interval(synthetic.get("share_estimate")),
        "share_reference": _reference(synthetic.get("share_estimate")),
        "synthetic_share": synthetic.get("share_likelihood_ge_0_5"),
        "mean_likelihood": synthetic.get("mean_likelihood"),
        "duplicate_rate": round(s.get("duplicates", 0) / docs, 6) if docs else None,
        "known_output_share": round(known["documents_matched"] / docs, 6) if known and docs else None,
        "distinct_2": None,
        "tail_mass": None,
        **seen_shares(s.get("seen"), docs),
    }
    if diversity and docs:
        from corpus_audit.transforms.report.collapse_signals import collapse_signals

        signals = collapse_signals(run)
        row["distinct_2"], row["tail_mass"] = signals.get("distinct_2"), signals.get("tail_mass")
    return row


def seen_shares(seen, docs):
    """Shares of the run's documents whose text (or a near copy) an earlier run saw, that are new,
    and whose URL an earlier run saw with other text (runs with --seen-index; else None)."""
    if not seen or not docs:
        return {"seen_before_share": None, "new_share": None, "url_changed_share": None}
    return {"seen_before_share": round((seen["exact"] + seen["near"]) / docs, 6),
            "new_share": round(seen["new"] / docs, 6), "url_changed_share": round(seen["url_changed"] / docs, 6)}


def _interval(estimate):
    return None if not estimate else f"{estimate['low']:.1%}-{estimate['high']:.1%}"


def trend(rows):
    """Change of each watched number from the previous run and from the first run."""
    out = {}
    for key in TRENDED:
        values = [r[key] for r in rows if r[key] is not None]
        if len(values) >= 2:
            out[key] = {"first": values[0], "last": values[-1], "change_since_first": round(values[-1] - values[0], 6),
                        "change_since_previous": round(values[-1] - values[-2], 6)}
    return out


def format_table(rows):
    cells = [[title for _, title, _ in COLUMNS]]
    for r in rows:
        cells.append(["–" if r[k] is None else fmt.format(r[k]) for k, _, fmt in COLUMNS])
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in cells)


def _change(value, fmt):
    """Shares change in percentage points, other numbers in their own unit."""
    return f"{value * 100:+.1f} pp" if "%" in fmt else f"{value:+.3f}"


def run(args, beam_args):
    from corpus_audit.pipelines.runs import AuditError, list_runs

    complete, incomplete = list_runs(args.root)
    if not complete:
        raise AuditError(f"{args.root}: no complete audit run"
                         + (f" (incomplete: {', '.join(incomplete)})" if incomplete else ""))
    rows = [headline(r, diversity=not args.no_diversity) for r in complete]
    print(format_table(rows))
    changes = trend(rows)
    for key, t in changes.items():
        title = next(title for k, title, _ in COLUMNS if k == key)
        fmt = next(fmt for k, _, fmt in COLUMNS if k == key)
        print(f"{title:<13} {fmt.format(t['first'])} -> {fmt.format(t['last'])} "
              f"({_change(t['change_since_first'], fmt)} since the first run, "
              f"{_change(t['change_since_previous'], fmt)} since the previous)")
    for name in incomplete:
        print(f"{name}: incomplete (no _SUCCESS marker), not counted", file=sys.stderr)
    if args.json:
        from corpus_audit.pipelines.runs import write_json

        write_json(args.json, {"runs": rows, "trend": changes, "incomplete": incomplete})
    return 0
