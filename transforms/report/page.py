"""The report's HTML page: self-contained (plots inline, no script, stylesheet or font from
elsewhere), and every number in it names its place in report.json, so the browser test can
check the page against the numbers."""
import html

from corpus_audit.transforms.report.numbers import REPORT_VERSION
from corpus_audit.transforms.report.plots import (plot_clusters, plot_collapse, plot_detectors, plot_domains,
                                                  plot_known, plot_likelihood, plot_months, plot_provenance,
                                                  plot_trends)


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
            ("share_estimate", "synthetic share, estimated", "pct"),
            ("share_estimate_low", "  95 % interval, low", "pct"), ("share_estimate_high", "  95 % interval, high", "pct"),
            ("share_estimate_anchor_documents", "  documents dated before the cut-off (its human reference)", "int"),
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
    cards = [("documents", "documents", "int"), ("share_estimate", "synthetic share (estimate)", "pct"),
             ("share_synthetic", "likelihood \u2265 0.5", "pct"),
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

    parts.append("<h2 id=\"languages\">Languages</h2><p class=\"note\">The detectors are trained on English: "
                 "documents in other languages get no synthetic_likelihood (share n/a) and are left out of the "
                 "crawl's share estimate; known-output matching reads every language. <code>und</code>: no "
                 "letters to identify.</p>")
    parts.append(_table(["language", "documents", "share of documents", "scored", "synthetic", "share synthetic",
                         "known-output matches"], [
        [r["language"]] + [_num(r[key], kind, _ptr("current", "by_language", i, key)) for key, kind in (
            ("documents", "int"), ("share_documents", "pct"), ("scored", "int"), ("synthetic", "int"),
            ("share_synthetic", "pct"), ("known_output_matches", "int"))]
        for i, r in enumerate(cur["by_language"])]))

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

    sp = cur.get("seen_pages") or {}
    if sp.get("index_used"):
        parts.append("<h2 id=\"seen\">Seen before</h2>" + _table(
            ["exact copies", "near copies", "new", "seen before", "URLs seen", "URLs with changed text"], [[
                *[_num(sp[k], "int", _ptr("current", "seen_pages", k)) for k in ("exact", "near", "new")],
                _num(sp["share_seen_before"], "pct", _ptr("current", "seen_pages", "share_seen_before")),
                _num(sp["url_seen"], "int", _ptr("current", "seen_pages", "url_seen")),
                _num(sp["url_changed"], "int", _ptr("current", "seen_pages", "url_changed"))]]))

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
