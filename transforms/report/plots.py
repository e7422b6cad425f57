"""The report's plots, one function per section of the page, each returning a base64 PNG.

Plots are drawn with matplotlib's Agg backend and embedded as base64 PNG: the page needs no
JavaScript, stylesheet or font from anywhere and opens offline. matplotlib was chosen over a
JS charting library (plotly/vega would inline megabytes of JavaScript into every page) and
over hand-written SVG (axes, ticks, heatmaps and legends would have to be reimplemented and
maintained here); it is the most widely used and maintained plotting library in Python,
renders headless, and is imported only by this command.
"""
from corpus_audit.transforms.report.numbers import SYNTHETIC_THRESHOLD

PROVENANCE_COLORS = {"human": "#2e7d32", "human_edited": "#9e9d24", "synthetic": "#c62828",
                     "unknown": "#9e9e9e"}

# Plots every report has (with --compare also "trends"); ids are the <img> ids on the page.
PLOTS = ("likelihood", "domains", "months", "provenance", "clusters", "known", "detectors", "collapse")


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
