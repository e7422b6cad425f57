"""Audit report: one self-contained HTML page (and report.json) describing an audit run.

`corpus-audit report --audit PATH [--compare EARLIER ...] --html report.html [--json report.json]`

PATH is a run directory (OUTPUT/RUN_ID/) or a root of runs (the newest complete run is used).
The page shows the distribution of synthetic_likelihood, the synthetic share by domain and by
crawl month, the provenance labels and their reasons, near-duplicate rate and cluster sizes,
known-output matches by model, how the detectors agree, and collapse signals (lexical
diversity, tail mass, similarity within domains). Every earlier run given with --compare is
shown beside the current one: a table of headline numbers and trend plots. report.json holds
the same numbers for machines.

The documents are read column by column, file by file, through Beam's FileSystems (gs://,
s3://, hdfs:// work), so memory stays bounded by the number of domains and months, not the
number of documents. Collapse signals come from a bottom-k sample of documents
(corpus_audit.transforms.report.collapse_signals), so they compare across runs of any size.

Plots are drawn with matplotlib's Agg backend and embedded as base64 PNG: the page needs no
JavaScript, stylesheet or font from anywhere and opens offline. matplotlib was chosen over a
JS charting library (plotly/vega would inline megabytes of JavaScript into every page) and
over hand-written SVG (axes, ticks, heatmaps and legends would have to be reimplemented and
maintained here); it is the most widely used and maintained plotting library in Python,
renders headless, and is imported only by this command.
"""
import html
import json

HELP = "write a self-contained HTML report (and report.json) of an audit run, optionally beside earlier runs"

REPORT_VERSION = 1
SYNTHETIC_THRESHOLD = 0.5
HIST_BINS = 20
DETECTOR_COLUMNS = ("det_classifier", "det_stylometry", "det_wordfreq", "det_compression", "det_phrases")
BASE_COLUMNS = ("domain", "crawl_date", "cluster_size", "is_representative", "exact_dup",
                "known_match_model", "known_match_kind", "synthetic_likelihood", "provenance",
                "provenance_reason")
PROVENANCE_ORDER = ("human", "human_edited", "synthetic", "unknown")
PROVENANCE_COLORS = {"human": "#2e7d32", "human_edited": "#9e9d24", "synthetic": "#c62828",
                     "unknown": "#9e9e9e"}
CLUSTER_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, 999), (1000, None))

# Plots every report has (with --compare also "trends"); ids are the <img> ids on the page.
PLOTS = ("likelihood", "domains", "months", "provenance", "clusters", "known", "detectors", "collapse")


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


# ---------------------------------------------------------------------------------------------
# Numbers


def build_report(current, earlier=(), top_domains=10, sample_size=2000):
    """The report's numbers: {"current": stats, "compare": [stats of earlier runs, oldest first]}."""
    from corpus_audit.transforms.report.collapse_signals import CollapseConfig

    config = CollapseConfig(sample_size=sample_size, top_domains=top_domains)
    runs = sorted(earlier, key=lambda r: (r.finished_at, r.run_id))
    return {
        "report_version": REPORT_VERSION,
        "synthetic_threshold": SYNTHETIC_THRESHOLD,
        "top_domains": top_domains,
        "current": run_stats(current, top_domains, config),
        "compare": [run_stats(r, top_domains, config, label="--compare") for r in runs],
    }


def _ratio(a, b):
    return round(a / b, 6) if b else None


def _add_counts(acc, array):
    """Add value counts of a pyarrow array (nulls left out) to a dict."""
    import pyarrow.compute as pc

    for item in pc.value_counts(array).to_pylist():
        if item["values"] is not None:
            acc[item["values"]] = acc.get(item["values"], 0) + item["counts"]


class _Stats:
    """Streaming accumulators over batches of the audit's columns."""

    def __init__(self, detectors):
        import numpy as np

        self.n = 0
        self.scored = 0
        self.lik_sum = 0.0
        self.ge_05 = 0
        self.ge_09 = 0
        self.hist = np.zeros(HIST_BINS, dtype=np.int64)
        self.domain_docs, self.domain_scored, self.domain_syn = {}, {}, {}
        self.no_domain = [0, 0, 0]
        self.month_docs, self.month_scored, self.month_syn = {}, {}, {}
        self.provenance, self.reasons = {}, {}
        self.cluster_sizes = {}
        self.exact_dup = 0
        self.in_clusters = 0
        self.known_model, self.known_kind, self.known_model_kind = {}, {}, {}
        self.detectors = list(detectors)
        k = len(self.detectors)
        self.det_n = 0
        self.det_sum = np.zeros(k)
        self.det_xtx = np.zeros((k, k))
        self.det_flag = np.zeros(k)
        self.det_btb = np.zeros((k, k))

    def add(self, batch):
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        self.n += n
        lik = batch.column("synthetic_likelihood")
        valid = pc.is_valid(lik)
        syn = pc.fill_null(pc.greater_equal(lik, SYNTHETIC_THRESHOLD), False)
        values = lik.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
        self.scored += len(values)
        self.lik_sum += float(values.sum())
        self.ge_05 += int((values >= SYNTHETIC_THRESHOLD).sum())
        self.ge_09 += int((values >= 0.9).sum())
        self.hist += np.histogram(np.clip(values, 0.0, 1.0), bins=HIST_BINS, range=(0.0, 1.0))[0]

        domain = batch.column("domain")
        _add_counts(self.domain_docs, domain)
        _add_counts(self.domain_scored, pc.filter(domain, valid))
        _add_counts(self.domain_syn, pc.filter(domain, syn))
        nulls = pc.is_null(domain)
        self.no_domain[0] += int(pc.sum(nulls).as_py() or 0)
        self.no_domain[1] += int(pc.sum(pc.and_(nulls, valid)).as_py() or 0)
        self.no_domain[2] += int(pc.sum(pc.and_(nulls, syn)).as_py() or 0)

        dates = pc.cast(batch.column("crawl_date"), pa.timestamp("ms"))
        months = dates.to_numpy(zero_copy_only=False).astype("datetime64[M]")
        labels = np.where(np.isnat(months), "unknown", months.astype(str))
        valid_np = valid.to_numpy(zero_copy_only=False)
        syn_np = syn.to_numpy(zero_copy_only=False)
        for acc, mask in ((self.month_docs, None), (self.month_scored, valid_np), (self.month_syn, syn_np)):
            vals, counts = np.unique(labels if mask is None else labels[mask], return_counts=True)
            for v, c in zip(vals.tolist(), counts.tolist()):
                acc[v] = acc.get(v, 0) + c

        _add_counts(self.provenance, batch.column("provenance"))
        pairs = pc.binary_join_element_wise(batch.column("provenance"), batch.column("provenance_reason"), "\t")
        _add_counts(self.reasons, pairs)

        rep = batch.column("is_representative")
        sizes = batch.column("cluster_size")
        _add_counts(self.cluster_sizes, pc.filter(sizes, rep))
        self.exact_dup += int(pc.sum(batch.column("exact_dup")).as_py() or 0)
        self.in_clusters += int(pc.sum(pc.greater(sizes, 1)).as_py() or 0)

        model, kind = batch.column("known_match_model"), batch.column("known_match_kind")
        _add_counts(self.known_model, model)
        _add_counts(self.known_kind, kind)
        _add_counts(self.known_model_kind, pc.binary_join_element_wise(model, kind, "\t"))

        if self.detectors:
            cols = [batch.column(c) for c in self.detectors]
            mask = np.ones(n, dtype=bool)
            for c in cols:
                mask &= pc.is_valid(c).to_numpy(zero_copy_only=False)
            x = np.column_stack([c.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
                                 for c in cols])[mask]
            b = (x >= SYNTHETIC_THRESHOLD).astype(np.float64)
            self.det_n += len(x)
            self.det_sum += x.sum(axis=0)
            self.det_xtx += x.T @ x
            self.det_flag += b.sum(axis=0)
            self.det_btb += b.T @ b


def _month_rows(s):
    keys = sorted(k for k in s.month_docs if k != "unknown") + (["unknown"] if "unknown" in s.month_docs else [])
    return [{"month": k, "documents": s.month_docs[k], "scored": s.month_scored.get(k, 0),
             "synthetic": s.month_syn.get(k, 0), "share_synthetic": _ratio(s.month_syn.get(k, 0),
                                                                          s.month_scored.get(k, 0))}
            for k in keys]


def _domain_section(s, top_n):
    from corpus_audit.transforms.report.collapse_signals import top_domains

    top = top_domains(s.domain_docs, top_n)

    def row(name, docs, scored, synthetic):
        return {"domain": name, "documents": docs, "scored": scored, "synthetic": synthetic,
                "share_synthetic": _ratio(synthetic, scored)}

    rows = [row(d, s.domain_docs[d], s.domain_scored.get(d, 0), s.domain_syn.get(d, 0)) for d in top]
    rest = [d for d in s.domain_docs if d not in set(top)]
    return {
        "domains": len(s.domain_docs),
        "top": rows,
        "other": row("(other domains)", sum(s.domain_docs[d] for d in rest),
                     sum(s.domain_scored.get(d, 0) for d in rest), sum(s.domain_syn.get(d, 0) for d in rest)),
        "no_domain": row("(no domain)", *s.no_domain),
    }


def _cluster_section(s):
    clusters = sum(s.cluster_sizes.values())
    buckets = []
    for lo, hi in CLUSTER_BUCKETS:
        c = sum(v for k, v in s.cluster_sizes.items() if k >= lo and (hi is None or k <= hi))
        label = str(lo) if lo == hi else (f"{lo}+" if hi is None else f"{lo}-{hi}")
        buckets.append({"sizes": label, "clusters": c})
    duplicates = s.n - clusters
    return {
        "clusters": clusters,
        "clusters_with_duplicates": sum(v for k, v in s.cluster_sizes.items() if k > 1),
        "duplicates": duplicates,
        "near_dup_rate": _ratio(duplicates, s.n),
        "documents_in_clusters": s.in_clusters,
        "share_in_clusters": _ratio(s.in_clusters, s.n),
        "exact_dup_documents": s.exact_dup,
        "exact_dup_share": _ratio(s.exact_dup, s.n),
        "largest_cluster": max(s.cluster_sizes) if s.cluster_sizes else 0,
        "cluster_size_counts": {str(k): v for k, v in sorted(s.cluster_sizes.items())},
        "cluster_size_buckets": buckets,
    }


def _detector_section(s):
    import numpy as np

    names = [c[len("det_"):] for c in s.detectors]
    if not s.det_n:
        return {"detectors": names, "rows": 0, "mean": {}, "share_flagged": {}, "correlation": None,
                "agreement": None}
    n = s.det_n
    mean = s.det_sum / n
    cov = s.det_xtx / n - np.outer(mean, mean)
    sd = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    flag = s.det_flag
    agree = (n - flag[:, None] - flag[None, :] + 2 * s.det_btb) / n

    def matrix(m):
        return [[None if not np.isfinite(v) else round(float(v), 6) for v in r] for r in m]

    return {
        "detectors": names,
        "rows": int(n),
        "mean": {k: round(float(v), 6) for k, v in zip(names, mean)},
        "share_flagged": {k: round(float(v / n), 6) for k, v in zip(names, flag)},
        "correlation": matrix(corr),
        "agreement": matrix(agree),
    }


def run_stats(run, top_n=10, config=None, label="--audit"):
    """Every number of the report for one AuditRun, streamed file by file."""
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    from corpus_audit.pipelines.runs import AuditError
    from corpus_audit.transforms.report.collapse_signals import collapse_signals

    detectors = None
    stats = None
    for path in run.document_files:
        with FileSystems.open(path) as fh:
            pf = pq.ParquetFile(fh)
            names = set(pf.schema_arrow.names)
            missing = [c for c in BASE_COLUMNS if c not in names]
            if missing:
                raise AuditError(f"{path}: missing column(s) {', '.join(missing)}")
            if detectors is None:
                detectors = [c for c in DETECTOR_COLUMNS if c in names]
                stats = _Stats(detectors)
            for batch in pf.iter_batches(columns=list(BASE_COLUMNS) + detectors, batch_size=65536):
                stats.add(batch)
    if stats is None or stats.n == 0:
        raise AuditError(f"{label} {run.path}: the audit has 0 documents; nothing to report")
    written = run.summary.get("documents_written")
    if written is not None and written != stats.n:
        raise AuditError(f"{run.path}: audit.json says {written} documents, the Parquet files hold {stats.n}")
    s = stats
    summary = run.summary
    clusters = _cluster_section(s)
    collapse = collapse_signals(run, config)
    matched = sum(s.known_model.values())
    synthetic_label = s.provenance.get("synthetic", 0)
    reasons = {}
    for key, c in sorted(s.reasons.items()):
        prov, reason = key.split("\t", 1)
        reasons.setdefault(prov, {})[reason] = c
    by_model = {}
    for key, c in s.known_model_kind.items():
        model, kind = key.split("\t", 1)
        by_model.setdefault(model, {})[kind] = c
    headline = {
        "documents": s.n,
        "dead_letters": summary.get("dead_letters"),
        "documents_scored": s.scored,
        "share_synthetic": _ratio(s.ge_05, s.scored),
        "mean_likelihood": _ratio(s.lik_sum, s.scored),
        "share_provenance_synthetic": _ratio(synthetic_label, s.n),
        "share_provenance_human": _ratio(s.provenance.get("human", 0), s.n),
        "near_dup_rate": clusters["near_dup_rate"],
        "exact_dup_share": clusters["exact_dup_share"],
        "known_match_share": _ratio(matched, s.n),
        "distinct_1": collapse["distinct_1"],
        "distinct_2": collapse["distinct_2"],
        "distinct_3": collapse["distinct_3"],
        "tail_mass": collapse["tail_mass"],
        "domain_similarity": collapse["domain_similarity"],
    }
    return {
        "run_id": run.run_id,
        "path": run.path,
        "finished_at": run.finished_at,
        "schema_version": summary.get("schema_version"),
        "detector_version": (summary.get("synthetic") or {}).get("detector_version"),
        "headline": headline,
        "synthetic_likelihood": {
            "documents_scored": s.scored,
            "documents_unscored": s.n - s.scored,
            "mean": headline["mean_likelihood"],
            "share_ge_0_5": headline["share_synthetic"],
            "share_ge_0_9": _ratio(s.ge_09, s.scored),
            "histogram": {"edges": [round(i / HIST_BINS, 6) for i in range(HIST_BINS + 1)],
                          "counts": [int(c) for c in s.hist]},
        },
        "by_domain": _domain_section(s, top_n),
        "by_month": _month_rows(s),
        "provenance": {
            "counts": {k: s.provenance[k] for k in sorted(s.provenance, key=_prov_order)},
            "reasons": {k: reasons[k] for k in sorted(reasons, key=_prov_order)},
        },
        "near_duplicates": clusters,
        "known_outputs": {
            "index_used": bool(summary.get("known_outputs")),
            "documents_matched": matched,
            "share_matched": headline["known_match_share"],
            "by_model": {k: s.known_model[k] for k in sorted(s.known_model, key=lambda m: (-s.known_model[m], m))},
            "by_kind": dict(sorted(s.known_kind.items())),
            "by_model_and_kind": {m: {kind: by_model[m].get(kind, 0) for kind in sorted(s.known_kind)}
                                  for m in sorted(by_model)},
        },
        "detectors": _detector_section(s),
        "collapse": collapse,
    }


def _prov_order(label):
    return (PROVENANCE_ORDER.index(label) if label in PROVENANCE_ORDER else len(PROVENANCE_ORDER), label)


# ---------------------------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
                         "axes.spines.right": False, "figure.dpi": 100})
    return plt


def _png(fig):
    import base64
    import io

    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _empty(ax, message):
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _labels(report):
    return [r["run_id"] for r in report["compare"]] + [report["current"]["run_id"]]


def plot_likelihood(report):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    cur = report["current"]["synthetic_likelihood"]
    if not cur["documents_scored"]:
        _empty(ax, "no synthetic_likelihood: the audit ran without detectors")
        return _png(fig)
    edges = cur["histogram"]["edges"]
    width = edges[1] - edges[0]
    ax.bar(edges[:-1], cur["histogram"]["counts"], width=width, align="edge", color="#5c6bc0",
           edgecolor="white", label=f"{report['current']['run_id']} (documents)")
    ax.axvline(SYNTHETIC_THRESHOLD, color="#c62828", ls="--", lw=1)
    ax.set_xlabel("synthetic_likelihood")
    ax.set_ylabel("documents")
    ax.set_xlim(0, 1)
    if report["compare"]:
        ax2 = ax.twinx()
        for r in report["compare"]:
            h = r["synthetic_likelihood"]
            total = sum(h["histogram"]["counts"]) or 1
            ax2.step(edges, [c / total for c in h["histogram"]["counts"]] + [0], where="post",
                     label=f"{r['run_id']} (share)")
        total = sum(cur["histogram"]["counts"]) or 1
        ax2.step(edges, [c / total for c in cur["histogram"]["counts"]] + [0], where="post", color="black",
                 lw=1.5, label=f"{report['current']['run_id']} (share)")
        ax2.set_ylabel("share of documents")
        ax2.legend(loc="upper center", fontsize=8)
    ax.set_title("Distribution of synthetic_likelihood (dashed: threshold 0.5)")
    return _png(fig)


def plot_domains(report):
    plt = _pyplot()
    rows = [r for r in report["current"]["by_domain"]["top"] if r["share_synthetic"] is not None]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.32 * max(len(rows), 3)))
    if not rows:
        _empty(ax, "no scored documents with a domain")
        return _png(fig)
    names = [f"{r['domain']}  ({r['documents']:,})" for r in rows][::-1]
    shares = [r["share_synthetic"] for r in rows][::-1]
    ax.barh(names, shares, color="#c62828")
    for i, v in enumerate(shares):
        ax.text(v + 0.01, i, f"{v:.1%}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("share with synthetic_likelihood >= 0.5")
    ax.set_title(f"Synthetic share by domain (top {len(rows)} by documents; documents in brackets)")
    return _png(fig)


def plot_months(report):
    plt = _pyplot()
    rows = [r for r in report["current"]["by_month"] if r["month"] != "unknown"]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if not rows:
        _empty(ax, "no crawl dates")
        return _png(fig)
    x = list(range(len(rows)))
    ax.bar(x, [r["documents"] for r in rows], color="#cfd8dc", label="documents")
    ax.set_ylabel("documents")
    ax2 = ax.twinx()
    ax2.plot(x, [r["share_synthetic"] if r["share_synthetic"] is not None else float("nan") for r in rows],
             "o-", color="#c62828", label="share synthetic")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("share synthetic (>= 0.5)")
    step = max(1, len(rows) // 16)
    ax.set_xticks(x[::step])
    ax.set_xticklabels([r["month"] for r in rows][::step], rotation=45, ha="right")
    ax.set_title("Synthetic share by crawl month (bars: documents)")
    return _png(fig)


def plot_provenance(report):
    plt = _pyplot()
    prov = report["current"]["provenance"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1, 1.6]})
    labels = list(prov["counts"])
    ax1.bar(labels, [prov["counts"][k] for k in labels],
            color=[PROVENANCE_COLORS.get(k, "#607d8b") for k in labels])
    for i, k in enumerate(labels):
        ax1.text(i, prov["counts"][k], f"{prov['counts'][k]:,}", ha="center", va="bottom", fontsize=8)
    ax1.set_title("Provenance")
    ax1.set_ylabel("documents")
    ax1.tick_params(axis="x", rotation=20)
    items = [(p, r, c) for p, rs in prov["reasons"].items() for r, c in rs.items()]
    items.sort(key=lambda t: t[2])
    ax2.barh([f"{r} ({p})" for p, r, _ in items], [c for _, _, c in items],
             color=[PROVENANCE_COLORS.get(p, "#607d8b") for p, _, _ in items])
    ax2.set_xscale("log")
    ax2.set_xlabel("documents (log scale)")
    ax2.set_title("Reasons")
    fig.tight_layout()
    return _png(fig)


def plot_clusters(report):
    plt = _pyplot()
    nd = report["current"]["near_duplicates"]
    fig, ax = plt.subplots(figsize=(8, 3))
    b = nd["cluster_size_buckets"]
    ax.bar([x["sizes"] for x in b], [x["clusters"] for x in b], color="#00897b")
    for i, x in enumerate(b):
        if x["clusters"]:
            ax.text(i, x["clusters"], f"{x['clusters']:,}", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.7)
    ax.set_xlabel("cluster size (documents)")
    ax.set_ylabel("clusters (log scale)")
    ax.set_title(f"Near-duplicate clusters: near-dup rate {nd['near_dup_rate']:.1%} "
                 f"({nd['duplicates']:,} of {report['current']['headline']['documents']:,} documents "
                 f"are copies of their cluster's representative)")
    return _png(fig)


def plot_known(report):
    plt = _pyplot()
    k = report["current"]["known_outputs"]
    models = list(k["by_model"])[::-1]
    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.32 * max(len(models), 3)))
    if not models:
        _empty(ax, "no document matches a known model output" if k["index_used"]
               else "the audit ran without a known-output index")
        return _png(fig)
    kinds = sorted({kind for m in models for kind in k["by_model_and_kind"][m]})
    left = [0] * len(models)
    colors = {"near_copy": "#c62828", "contains": "#ef6c00"}
    for kind in kinds:
        vals = [k["by_model_and_kind"][m].get(kind, 0) for m in models]
        ax.barh(models, vals, left=left, label=kind, color=colors.get(kind))
        left = [a + b for a, b in zip(left, vals)]
    ax.legend(fontsize=8)
    ax.set_xlabel("documents")
    ax.set_title(f"Known-output matches by model ({k['documents_matched']:,} documents)")
    return _png(fig)


def plot_detectors(report):
    plt = _pyplot()
    d = report["current"]["detectors"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    if not d["rows"]:
        for ax in axes:
            _empty(ax, "no detector scores")
        return _png(fig)
    names = d["detectors"]
    for ax, key, title, vmin in ((axes[0], "correlation", "Pearson correlation", -1),
                                 (axes[1], "agreement", "Agreement at 0.5 (share of documents)", 0)):
        m = [[float("nan") if v is None else v for v in row] for row in d[key]]
        im = ax.imshow(m, vmin=vmin, vmax=1, cmap="RdBu_r" if vmin < 0 else "Greens")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels(names)
        for i in range(len(names)):
            for j in range(len(names)):
                if m[i][j] == m[i][j]:
                    ax.text(j, i, f"{m[i][j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(m[i][j]) > 0.6 else "black")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _png(fig)


def plot_collapse(report):
    plt = _pyplot()
    runs = report["compare"] + [report["current"]]
    labels = _labels(report)
    metrics = ("distinct_1", "distinct_2", "distinct_3", "tail_mass", "domain_similarity")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [1.4, 1]})
    width = 0.8 / len(runs)
    for i, (r, label) in enumerate(zip(runs, labels)):
        vals = [r["collapse"][m] if r["collapse"][m] is not None else 0 for m in metrics]
        ax1.bar([j + i * width for j in range(len(metrics))], vals, width=width, label=label)
    ax1.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))])
    ax1.set_xticklabels(["distinct-1", "distinct-2", "distinct-3", "tail mass", "domain sim."], rotation=20)
    ax1.set_ylim(0, 1)
    ax1.legend(fontsize=8)
    ax1.set_title(f"Collapse signals (bottom-k sample, {report['current']['collapse']['sample_documents']:,} docs)")
    per = [(f"{d} (n={v['sampled']})", v["mean_jaccard"])
           for d, v in report["current"]["collapse"]["domain_similarity_by_domain"].items()
           if v["mean_jaccard"] is not None][::-1]
    if per:
        ax2.barh([d for d, _ in per], [v for _, v in per], color="#6d4c41")
        for i, (_, v) in enumerate(per):
            ax2.text(v, i, f" {v:.3f}", va="center", fontsize=7)
        ax2.set_xlim(0, max(v for _, v in per) * 1.25 or 1)
        ax2.set_xlabel("mean pairwise Jaccard (word 3-shingles)")
        ax2.set_title("Similarity within domains")
    else:
        _empty(ax2, "no domain with two sampled documents")
    fig.tight_layout()
    return _png(fig)


TREND_METRICS = (("share_synthetic", "share synthetic (>= 0.5)"), ("near_dup_rate", "near-duplicate rate"),
                 ("known_match_share", "known-output matches"), ("distinct_2", "distinct-2"),
                 ("tail_mass", "tail mass"), ("domain_similarity", "similarity within domains"))


def plot_trends(report):
    plt = _pyplot()
    runs = report["compare"] + [report["current"]]
    labels = _labels(report)
    fig, axes = plt.subplots(2, 3, figsize=(9, 4.6))
    for ax, (key, title) in zip(axes.flat, TREND_METRICS):
        vals = [r["headline"][key] for r in runs]
        ax.plot(range(len(runs)), [float("nan") if v is None else v for v in vals], "o-", color="#3949ab")
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(title)
        ax.margins(y=0.3)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# HTML


def fmt(value, kind):
    """How a number is shown on the page (the browser test formats report.json the same way)."""
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{value:.1%}"
    if kind == "int":
        return f"{value:,}"
    return f"{value:.4f}"


HEADLINE = (("documents", "documents", "int"), ("dead_letters", "dead letters", "int"),
            ("share_synthetic", "share synthetic (likelihood >= 0.5)", "pct"),
            ("mean_likelihood", "mean synthetic_likelihood", "float"),
            ("share_provenance_synthetic", "provenance synthetic", "pct"),
            ("share_provenance_human", "provenance human", "pct"),
            ("near_dup_rate", "near-duplicate rate", "pct"), ("exact_dup_share", "documents with an exact copy", "pct"),
            ("known_match_share", "known-output matches", "pct"), ("distinct_1", "distinct-1", "float"),
            ("distinct_2", "distinct-2", "float"), ("distinct_3", "distinct-3", "float"),
            ("tail_mass", "tail mass (zipf < 3)", "pct"), ("domain_similarity", "similarity within domains", "float"))

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:980px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
p.meta{color:#555;font-size:13px;margin:0 0 12px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f0f0f0}
td[data-key],td.n{text-align:right;font-variant-numeric:tabular-nums}
img.plot{display:block;max-width:100%;height:auto;margin:8px 0;background:#fff;border:1px solid #eee}
.note{font-size:12px;color:#555}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;flex:1 1 110px}
.card .v{font-size:20px;font-weight:600}.card .k{font-size:12px;color:#555}
"""


def _e(x):
    return html.escape(str(x), quote=True)


def _ptr(*parts):
    """JSON Pointer (RFC 6901) into report.json: domain and model names may hold '.' or '/'."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _num(value, kind, key):
    """A table cell showing a number of report.json; data-key is its JSON Pointer."""
    raw = "" if value is None else _e(value)
    return f'<td data-key="{_e(key)}" data-format="{kind}" data-value="{raw}">{_e(fmt(value, kind))}</td>'


def _img(name, b64, alt):
    return f'<img class="plot" id="plot-{name}" alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _share_cells(r, *path):
    """documents, synthetic, share cells of one row of the current run at report.json `path`."""
    return [_num(r[k], kind, _ptr("current", *path, k))
            for k, kind in (("documents", "int"), ("synthetic", "int"), ("share_synthetic", "pct"))]


def _table(head, rows):
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(c if c.startswith("<td") else f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def render_html(report):
    """The page: headline cards and table, then one section per plot with its numbers."""
    cur = report["current"]
    runs = report["compare"] + [cur]
    h = cur["headline"]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>corpus-audit report: {_e(cur['run_id'])}</title><style>{CSS}</style></head><body><main>"]
    parts.append(f"<h1>Audit report: run {_e(cur['run_id'])}</h1>")
    parts.append(f"<p class=\"meta\">{_e(cur['path'])} · finished {_e(cur['finished_at'])} · schema "
                 f"{_e(cur['schema_version'])} · detector {_e(cur['detector_version'] or 'none')}"
                 + (f" · compared with {len(report['compare'])} earlier run(s)" if report["compare"] else "")
                 + "</p>")
    cards = [("documents", "documents", "int"), ("share_synthetic", "likelihood \u2265 0.5", "pct"),
             ("near_dup_rate", "near-duplicate rate", "pct"), ("known_match_share", "known-output matches", "pct"),
             ("distinct_2", "distinct-2", "float"), ("tail_mass", "tail mass", "pct")]
    parts.append('<div class="cards">' + "".join(
        f'<div class="card"><div class="v" data-key="/current/headline/{k}" data-format="{f}">'
        f'{_e(fmt(h[k], f))}</div><div class="k">{_e(label)}</div></div>' for k, label, f in cards) + "</div>")

    # Headline table: one column per run, oldest first, the current run last.
    head = ["", *[r["run_id"] + (" (current)" if r is cur else "") for r in runs]]
    if report["compare"]:
        head.append(f"change since {report['compare'][-1]['run_id']}")
    rows = []
    for key, label, kind in HEADLINE:
        row = [label]
        for i, r in enumerate(runs):
            where = ("current",) if r is cur else ("compare", i)
            row.append(_num(r["headline"][key], kind, _ptr(*where, "headline", key)))
        if report["compare"]:
            a, b = report["compare"][-1]["headline"][key], h[key]
            delta = None if a is None or b is None else b - a
            row.append('<td class="n">' + ("n/a" if delta is None else ("+" if delta >= 0 else "") + fmt(delta, kind))
                       + "</td>")
        rows.append(row)
    parts.append("<h2 id=\"headline\">Headline numbers</h2>" + _table(head, rows))
    if report["compare"]:
        parts.append("<h2 id=\"trends\">Trends across runs</h2>" + _img("trends", plot_trends(report),
                                                                           "headline numbers per run"))

    s = cur["synthetic_likelihood"]
    parts.append("<h2 id=\"likelihood\">Synthetic likelihood</h2>" + _img("likelihood", plot_likelihood(report),
                                                                          "histogram of synthetic_likelihood"))
    parts.append(_table(["documents scored", "unscored", "mean", "share >= 0.5", "share >= 0.9"], [[
        _num(s["documents_scored"], "int", _ptr("current", "synthetic_likelihood", "documents_scored")),
        _num(s["documents_unscored"], "int", _ptr("current", "synthetic_likelihood", "documents_unscored")),
        _num(s["mean"], "float", _ptr("current", "synthetic_likelihood", "mean")),
        _num(s["share_ge_0_5"], "pct", _ptr("current", "synthetic_likelihood", "share_ge_0_5")),
        _num(s["share_ge_0_9"], "pct", _ptr("current", "synthetic_likelihood", "share_ge_0_9"))]]))

    dom = cur["by_domain"]
    parts.append("<h2 id=\"domains\">Synthetic share by domain</h2>"
                 + _img("domains", plot_domains(report), "synthetic share by domain"))
    drows = []
    for i, r in enumerate(dom["top"]):
        drows.append([r["domain"]] + _share_cells(r, "by_domain", "top", i))
    for key in ("other", "no_domain"):
        if dom[key]["documents"]:
            drows.append([dom[key]["domain"]] + _share_cells(dom[key], "by_domain", key))
    parts.append(f"<p class=\"note\">{dom['domains']:,} domains; top {len(dom['top'])} by documents.</p>"
                 + _table(["domain", "documents", "synthetic", "share"], drows))

    parts.append("<h2 id=\"months\">Synthetic share by crawl month</h2>"
                 + _img("months", plot_months(report), "synthetic share by crawl month"))
    parts.append(_table(["month", "documents", "synthetic", "share"], [
        [r["month"]] + _share_cells(r, "by_month", i) for i, r in enumerate(cur["by_month"])]))

    prov = cur["provenance"]
    parts.append("<h2 id=\"provenance\">Provenance</h2>"
                 + _img("provenance", plot_provenance(report), "provenance labels and reasons"))
    parts.append(_table(["provenance", "reason", "documents"], [
        [p, r, _num(c, "int", _ptr("current", "provenance", "reasons", p, r))]
        for p, rs in prov["reasons"].items() for r, c in rs.items()]
        + [[p, "(all)", _num(c, "int", _ptr("current", "provenance", "counts", p))] for p, c in prov["counts"].items()]))

    nd = cur["near_duplicates"]
    parts.append("<h2 id=\"clusters\">Near-duplicates</h2>"
                 + _img("clusters", plot_clusters(report), "cluster-size distribution"))
    parts.append(_table(["clusters", "with duplicates", "duplicates", "near-dup rate", "exact-copy documents",
                         "largest cluster"], [[
        _num(nd["clusters"], "int", _ptr("current", "near_duplicates", "clusters")),
        _num(nd["clusters_with_duplicates"], "int", _ptr("current", "near_duplicates", "clusters_with_duplicates")),
        _num(nd["duplicates"], "int", _ptr("current", "near_duplicates", "duplicates")),
        _num(nd["near_dup_rate"], "pct", _ptr("current", "near_duplicates", "near_dup_rate")),
        _num(nd["exact_dup_documents"], "int", _ptr("current", "near_duplicates", "exact_dup_documents")),
        _num(nd["largest_cluster"], "int", _ptr("current", "near_duplicates", "largest_cluster"))]]))

    k = cur["known_outputs"]
    parts.append("<h2 id=\"known\">Known model outputs</h2>"
                 + _img("known", plot_known(report), "known-output matches by model"))
    kinds = sorted(k["by_kind"])
    parts.append(_table(["model", "documents", *kinds], [
        [m, _num(c, "int", _ptr("current", "known_outputs", "by_model", m)),
         *[_num(k["by_model_and_kind"][m].get(kd, 0), "int", _ptr("current", "known_outputs", "by_model_and_kind", m, kd))
           for kd in kinds]] for m, c in k["by_model"].items()]))

    d = cur["detectors"]
    parts.append("<h2 id=\"detectors\">Detector agreement</h2>"
                 + _img("detectors", plot_detectors(report), "detector correlation and agreement"))
    if d["rows"]:
        parts.append(_table(["detector", "mean score", "share >= 0.5"], [
            [n, _num(d["mean"][n], "float", _ptr("current", "detectors", "mean", n)),
             _num(d["share_flagged"][n], "pct", _ptr("current", "detectors", "share_flagged", n))] for n in d["detectors"]]))

    c = cur["collapse"]
    parts.append("<h2 id=\"collapse\">Collapse signals</h2>"
                 + _img("collapse", plot_collapse(report), "collapse signals"))
    p = c["parameters"]
    parts.append(f"<p class=\"note\">Bottom-k sample: the {p['sample_size']:,} documents with the smallest "
                 f"seeded hash of doc_id (seed {p['seed']}), first {p['max_words']} words of each; tail mass = "
                 f"share of words with wordfreq Zipf frequency &lt; {p['rare_zipf']:g}; similarity = mean Jaccard "
                 f"of word {p['shingle_size']}-shingles over pairs of up to {p['domain_sample']} sampled documents "
                 f"within each of the top {p['top_domains']} domains.</p>")
    ckeys = (("sample_documents", "int"), ("sample_tokens", "int"), ("distinct_1", "float"),
             ("distinct_2", "float"), ("distinct_3", "float"), ("tail_mass", "pct"), ("domain_similarity", "float"))
    parts.append(_table(["", *[r["run_id"] for r in runs]], [
        [key, *[_num(r["collapse"][key], f, _ptr(*(("current",) if r is cur else ("compare", i)), "collapse", key))
                for i, r in enumerate(runs)]] for key, f in ckeys]))
    parts.append(f"<p class=\"note\">corpus-audit report {REPORT_VERSION}; the numbers are also in report.json "
                 f"(same keys as the data-key attributes of this page).</p></main></body></html>")
    return "\n".join(parts)
