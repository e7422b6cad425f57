"""The report's numbers for one audit run: what report.json holds and the page shows.

The documents are read column by column, file by file, through Beam's FileSystems (gs://,
s3://, hdfs:// work), so memory stays bounded by the number of domains and months, not the
number of documents. Collapse signals come from a bottom-k sample of documents
(corpus_audit.transforms.report.collapse_signals), so they compare across runs of any size.
"""
from corpus_audit.transforms.language import UNDETERMINED

REPORT_VERSION = 1
SYNTHETIC_THRESHOLD = 0.5
HIST_BINS = 20
DETECTOR_COLUMNS = ("det_classifier", "det_stylometry", "det_wordfreq", "det_compression", "det_phrases")
BASE_COLUMNS = ("domain", "language", "crawl_date", "cluster_size", "is_representative", "exact_dup",
                "known_match_model", "known_match_kind", "synthetic_likelihood", "provenance",
                "provenance_reason")
PROVENANCE_ORDER = ("human", "human_edited", "synthetic", "unknown")
CLUSTER_BUCKETS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, 999), (1000, None))


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
        self.lang_docs, self.lang_scored, self.lang_syn, self.lang_known = {}, {}, {}, {}
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

        language = pc.fill_null(batch.column("language"), UNDETERMINED)
        _add_counts(self.lang_docs, language)
        _add_counts(self.lang_scored, pc.filter(language, valid))
        _add_counts(self.lang_syn, pc.filter(language, syn))
        _add_counts(self.lang_known, pc.filter(language, pc.is_valid(batch.column("known_match_kind"))))

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


def _language_rows(s):
    """Documents per language, most first; the share is of the scored (English) documents."""
    order = sorted(s.lang_docs, key=lambda k: (-s.lang_docs[k], k))
    return [{"language": k, "documents": s.lang_docs[k], "share_documents": _ratio(s.lang_docs[k], s.n),
             "scored": s.lang_scored.get(k, 0), "synthetic": s.lang_syn.get(k, 0),
             "share_synthetic": _ratio(s.lang_syn.get(k, 0), s.lang_scored.get(k, 0)),
             "known_output_matches": s.lang_known.get(k, 0)} for k in order]


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
    estimate = (summary.get("synthetic") or {}).get("share_estimate") or {}
    headline = {
        "documents": s.n,
        "dead_letters": summary.get("dead_letters"),
        "documents_scored": s.scored,
        "share_estimate": estimate.get("value"),
        "share_estimate_low": estimate.get("low"),
        "share_estimate_high": estimate.get("high"),
        "share_estimate_anchor_documents": estimate.get("anchor_documents"),
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
        "by_language": _language_rows(s),
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
        "seen_pages": _seen_section(summary.get("seen"), s.n),
    }


def _seen_section(seen, n):
    """Documents an earlier run saw (exact or near copy), new ones, and URLs with changed text,
    from audit.json (runs with --seen-index; else index_used is false)."""
    if not seen:
        return {"index_used": False}
    counts = {k: seen[k] for k in ("exact", "near", "new", "url_seen", "url_changed")}
    return {"index_used": True, "index_entries": seen["entries"], **counts,
            "share_seen_before": _ratio(seen["exact"] + seen["near"], n), "share_new": _ratio(seen["new"], n),
            "share_url_changed": _ratio(seen["url_changed"], n)}


def _prov_order(label):
    return (PROVENANCE_ORDER.index(label) if label in PROVENANCE_ORDER else len(PROVENANCE_ORDER), label)
