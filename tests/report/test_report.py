"""`corpus-audit report` and the collapse signals, checked against the Parquet they describe."""
import base64
import collections
import html
import io
import json
import os
import random
import re
import shutil
import types

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from conftest import read_audit, read_documents, run_cli, run_path, write_jsonl

from corpus_audit.transforms.report.collapse_signals import CollapseConfig, _sample_rows, collapse_signals

PLOT_IDS = ("likelihood", "domains", "months", "provenance", "clusters", "known", "detectors", "collapse")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo audit and its report (HTML + JSON); docs = the Parquet's columns as numpy arrays."""
    root = tmp_path_factory.mktemp("demo")
    run_cli("demo", "--output", root / "audits", "--run-id", "r", "--quiet")
    run_cli("report", "--audit", root / "audits", "--html", root / "report.html", "--json", root / "report.json")
    with open(root / "report.json") as f:
        report = json.load(f)
    with open(root / "report.html", encoding="utf-8") as f:
        page = f.read()
    table = read_documents(root / "audits")
    docs = types.SimpleNamespace(**{c: np.array(table.column(c).to_pylist(), dtype=object)
                                    for c in table.column_names if c not in ("text", "metadata")})
    docs.n = table.num_rows
    docs.month = np.array([d.strftime("%Y-%m") for d in docs.crawl_date], dtype=object)
    return types.SimpleNamespace(root=root, audits=root / "audits", report=report, page=page, docs=docs)


def _counts(values):
    return dict(collections.Counter(v for v in values if v is not None))


def test_report_numbers_equal_the_parquet(demo):
    cur, docs, audit = demo.report["current"], demo.docs, read_audit(demo.audits)
    n = docs.n
    assert cur["run_id"] == "r" and demo.report["compare"] == []
    assert cur["headline"]["documents"] == n == audit["documents_written"]
    assert cur["headline"]["dead_letters"] == audit["dead_letters"]

    # provenance and its reasons
    assert cur["provenance"]["counts"] == _counts(docs.provenance)
    assert cur["provenance"]["counts"] == audit["synthetic"]["provenance"]
    reasons = {p: _counts(docs.provenance_reason[docs.provenance == p]) for p in set(docs.provenance)}
    assert cur["provenance"]["reasons"] == reasons

    # synthetic likelihood
    lik = docs.synthetic_likelihood.astype(float)
    scored = ~np.isnan(lik)
    assert 0 < scored.sum() < n  # the sample crawl's two Aragonese (read as Spanish) pages are not scored
    syn = lik >= 0.5
    assert cur["synthetic_likelihood"]["histogram"]["counts"] == np.histogram(lik[scored], bins=20,
                                                                              range=(0, 1))[0].tolist()
    assert cur["headline"]["share_synthetic"] == pytest.approx(syn[scored].mean(), abs=1e-6)
    assert cur["headline"]["share_synthetic"] == pytest.approx(audit["synthetic"]["share_likelihood_ge_0_5"], abs=1e-3)
    assert cur["headline"]["mean_likelihood"] == pytest.approx(lik[scored].mean(), abs=1e-6)

    # by language: documents, scored and synthetic per `language` (null as "und"), most documents first
    lang = np.array([code or "und" for code in docs.language], dtype=object)
    per_lang = _counts(lang)
    assert [(r["language"], r["documents"]) for r in cur["by_language"]] == sorted(
        per_lang.items(), key=lambda kv: (-kv[1], kv[0]))
    assert {r["language"]: r["documents"] for r in cur["by_language"]} == audit["languages"]
    for r in cur["by_language"]:
        rows = lang == r["language"]
        assert r["scored"] == int(scored[rows].sum()) and r["synthetic"] == int(syn[rows].sum())
        assert r["known_output_matches"] == sum(k is not None for k in docs.known_match_kind[rows])
        assert (r["share_synthetic"] is None) == (r["language"] != "en")

    # by domain: top N by documents, ties by name
    per_domain = _counts(docs.domain)
    top = sorted(per_domain.items(), key=lambda kv: (-kv[1], kv[0]))[:demo.report["top_domains"]]
    assert [(r["domain"], r["documents"]) for r in cur["by_domain"]["top"]] == top
    for r in cur["by_domain"]["top"]:
        assert r["synthetic"] == int(syn[docs.domain == r["domain"]].sum())

    # by crawl month
    assert {r["month"]: r["documents"] for r in cur["by_month"]} == _counts(docs.month)
    assert {r["month"]: r["synthetic"] for r in cur["by_month"]} == {
        m: int(syn[docs.month == m].sum()) for m in set(docs.month)}

    # near-duplicates, checked against the cluster columns and audit.json
    nd = cur["near_duplicates"]
    reps = docs.is_representative.astype(bool)
    assert nd["clusters"] == len(set(docs.cluster_id)) == int(reps.sum())
    assert nd["clusters_with_duplicates"] == audit["clusters"] == int((docs.cluster_size[reps] > 1).sum())
    assert nd["duplicates"] == audit["duplicates"] == n - int(reps.sum())
    assert nd["exact_dup_documents"] == audit["exact_dup_documents"] == int(docs.exact_dup.astype(bool).sum())
    assert nd["cluster_size_counts"] == {str(k): v for k, v in sorted(_counts(docs.cluster_size[reps]).items())}
    assert sum(b["clusters"] for b in nd["cluster_size_buckets"]) == int(reps.sum())

    # known outputs
    k = cur["known_outputs"]
    assert k["by_model"] == _counts(docs.known_match_model) == audit["known_outputs"]["matched_by_model"]
    assert k["by_kind"] == audit["known_outputs"]["matched_by_kind"]
    assert k["documents_matched"] == audit["known_outputs"]["documents_matched"]


def test_detector_agreement_matches_numpy(demo):
    d = demo.report["current"]["detectors"]
    x = np.column_stack([getattr(demo.docs, f"det_{n}").astype(float) for n in d["detectors"]])
    x = x[np.isfinite(x).all(axis=1)]  # documents the detectors read (English)
    assert d["detectors"] == ["classifier", "stylometry", "wordfreq", "compression", "phrases"]
    assert d["rows"] == len(x)
    np.testing.assert_allclose(np.array(d["correlation"]), np.corrcoef(x.T), atol=1e-5)
    b = x >= 0.5
    agree = (b[:, :, None] == b[:, None, :]).mean(axis=0)
    np.testing.assert_allclose(np.array(d["agreement"]), agree, atol=1e-6)
    assert d["share_flagged"]["classifier"] == pytest.approx(b[:, 0].mean(), abs=1e-6)


def test_page_is_self_contained_with_every_plot(demo):
    page = demo.page
    assert not re.search(r"<script|<link|@import|url\(|https?://", page, re.I), "page must not load anything"
    for name in PLOT_IDS:
        m = re.search(rf'<img class="plot" id="plot-{name}" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
        assert m, name
        png = base64.b64decode(m.group(1))
        from PIL import Image

        w, h = Image.open(io.BytesIO(png)).size
        assert w > 300 and h > 100, (name, w, h)
    assert 'id="plot-trends"' not in page  # only with --compare
    # every number on the page is one of report.json, shown with its format
    from test_report_browser import expected_text, resolve

    cells = re.findall(r'data-key="([^"]+)" data-format="(\w+)"[^>]*>([^<]*)<', page)
    assert len(cells) > 80
    for key, kind, shown in cells:
        assert html.unescape(shown) == expected_text(resolve(demo.report, html.unescape(key)), kind), key


# --------------------------------------------------------------------------------------------
# Collapse signals on hand-written Parquet files (a run is anything with .document_files)


def _write_run(tmp_path, name, rows, files=1):
    """rows: (doc_id, domain, text); split over `files` Parquet files in the given order."""
    d = tmp_path / name
    d.mkdir()
    paths = []
    for i in range(files):
        part = rows[i::files]
        t = pa.table({
            "doc_id": [r[0] for r in part],
            "domain": [r[1] for r in part],
            "text": [r[2] for r in part],
            "text_hash": [xxhash.xxh3_128_hexdigest(" ".join(r[2].lower().split()).encode("utf-8")) for r in part],
        })
        p = str(d / f"documents-{i:05d}-of-{files:05d}.parquet")
        pq.write_table(t, p, row_group_size=7)
        paths.append(p)
    return types.SimpleNamespace(document_files=paths, path=str(d))


COMMON = "the house was very big and we could see the river from the old window".split()


def test_tail_mass_distinct_and_domain_similarity_exact(tmp_path):
    def made_up(k):  # distinct letter strings that no word list holds
        return "zqv" + "".join("jkqxz"[int(c)] for c in np.base_repr(k, 5).zfill(5))

    rows = []
    for i in range(20):  # domain a: every 4th word is a made-up (absent from wordfreq) word
        words = [made_up(i * 40 + j) if j % 4 == 3 else COMMON[j % len(COMMON)] for j in range(40)]
        rows.append((f"a{i}", "a.example", " ".join(words)))
    same = " ".join(COMMON * 2)
    for i in range(5):  # domain b: five identical texts
        rows.append((f"b{i}", "b.example", same))
    run = _write_run(tmp_path, "r", rows)
    out = collapse_signals(run)
    assert out["sample_documents"] == 25
    tokens = 20 * 40 + 5 * len(COMMON) * 2
    assert out["sample_tokens"] == tokens
    assert out["tail_mass"] == pytest.approx(20 * 10 / tokens, abs=1e-6)  # every made-up word is rare
    unique_words = len(set(COMMON)) + 20 * 10
    assert out["distinct_1"] == pytest.approx(unique_words / tokens, abs=1e-6)
    sims = out["domain_similarity_by_domain"]
    assert sims["b.example"] == {"documents": 5, "sampled": 5, "pairs": 10, "mean_jaccard": 1.0}
    assert sims["a.example"]["pairs"] == 190 and sims["a.example"]["mean_jaccard"] < 0.5
    pooled = (190 * sims["a.example"]["mean_jaccard"] + 10 * 1.0) / 200
    assert out["domain_similarity"] == pytest.approx(pooled, abs=1e-5)


def test_repetitive_text_lowers_diversity_and_raises_similarity(tmp_path, real_texts):
    texts = real_texts[:120]
    varied = [(f"d{i}", f"site{i % 4}.example", t) for i, t in enumerate(texts)]
    # the same documents written the way a collapsed generator writes: a few stock phrases
    stock = [" ".join(t.split()[:12]) for t in texts[:3]]
    repetitive = [(f"d{i}", f"site{i % 4}.example", " ".join(stock[(i + j) % 3] for j in range(8)))
                  for i in range(len(texts))]
    a = collapse_signals(_write_run(tmp_path, "varied", varied))
    b = collapse_signals(_write_run(tmp_path, "repetitive", repetitive))
    for n in ("distinct_1", "distinct_2", "distinct_3"):
        assert b[n] < a[n] / 3, n
    assert b["domain_similarity"] > 0.5 > 0.05 > a["domain_similarity"]


def test_same_documents_in_any_order_and_layout_give_the_same_signals(tmp_path, real_texts):
    rows = [(f"doc-{i}", f"site{i % 5}.example", t) for i, t in enumerate(real_texts[:150])]
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    cfg = CollapseConfig(sample_size=40, domain_sample=8, top_domains=3)
    a = collapse_signals(_write_run(tmp_path, "a", rows), cfg)
    b = collapse_signals(_write_run(tmp_path, "b", shuffled, files=3), cfg)
    assert a == b
    assert a["sample_documents"] == 40


def test_bottom_k_sample_is_the_smallest_hashes_whatever_the_crawl_size(tmp_path, real_texts):
    cfg = CollapseConfig(sample_size=30, top_domains=2, domain_sample=5)
    small = [(f"doc-{i}", f"site{i % 3}.example", t) for i, t in enumerate(real_texts[:100])]
    large = small + [(f"doc-{i}", f"site{i % 3}.example", t) for i, t in enumerate(real_texts[100:400], 100)]
    expected = {}
    for name, rows in (("small", small), ("large", large)):
        run = _write_run(tmp_path, name, rows, files=2)
        sample, per_domain = _sample_rows(run, cfg, ["site0.example", "site1.example"])
        ids = [pq.read_table(run.document_files[f], columns=["doc_id"]).column(0)[r].as_py() for f, r in sample]
        by_hash = sorted((xxhash.xxh64_intdigest(d.encode(), cfg.seed), d) for d, _, _ in rows)
        assert ids == [d for _, d in by_hash[:30]]
        for dom, picked in per_domain.items():
            got = [pq.read_table(run.document_files[f], columns=["doc_id"]).column(0)[r].as_py() for f, r in picked]
            assert got == [d for _, d in sorted((xxhash.xxh64_intdigest(d.encode(), cfg.seed), d)
                                                for d, dm, _ in rows if dm == dom)[:5]]
        out = collapse_signals(run, cfg)
        assert out["sample_documents"] == 30 and out["sample_tokens"] <= 30 * cfg.max_words
        expected[name] = set(ids)
    # a document sampled in the large crawl is sampled in any smaller crawl that holds it
    assert expected["large"] & {d for d, _, _ in small} <= expected["small"]


# --------------------------------------------------------------------------------------------
# Comparing runs and refusing bad input, through the command


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, real_texts):
    """Run 'early': 80 documents; run 'late': the same documents in another order plus 60
    near-copies of some of them and 40 new ones, under one root."""
    root = tmp_path_factory.mktemp("runs")
    base = [{"id": f"d{i}", "url": f"https://site{i % 4}.example/{i}", "text": t,
             "crawl_date": f"2023-0{1 + i % 3}-15T00:00:00Z"} for i, t in enumerate(real_texts[:80])]
    write_jsonl(root / "early.jsonl", base)
    copies = [{"id": f"c{i}", "url": f"https://site{i % 4}.example/c{i}", "text": r["text"] + " Share this post.",
               "crawl_date": "2024-05-01T00:00:00Z"} for i, r in enumerate(base[:60])]
    new = [{"id": f"n{i}", "url": f"https://site{i % 4}.example/n{i}", "text": t,
            "crawl_date": "2024-06-01T00:00:00Z"} for i, t in enumerate(real_texts[80:120])]
    late = base[::-1] + copies + new
    write_jsonl(root / "late.jsonl", late)
    for run_id, f in (("early", "early.jsonl"), ("late", "late.jsonl")):
        run_cli("audit", "--input", root / f, "--output", root / "audits", "--run-id", run_id, "--quiet")
    return root


def _report(root, *args):
    out = root / f"report-{len(os.listdir(root))}"
    run_cli("report", *args, "--html", f"{out}.html", "--json", f"{out}.json")
    with open(f"{out}.json") as f:
        return json.load(f), open(f"{out}.html", encoding="utf-8").read()


def test_compare_shows_earlier_run_beside_the_current_one(two_runs):
    root = two_runs
    alone_early, _ = _report(root, "--audit", root / "audits" / "early")
    alone_late, _ = _report(root, "--audit", root / "audits")  # the root: its newest run
    both, page = _report(root, "--audit", root / "audits" / "late", "--compare", root / "audits" / "early")
    assert alone_late["current"]["run_id"] == "late"
    assert both["current"] == alone_late["current"]
    assert both["compare"] == [alone_early["current"]]
    early, late = both["compare"][0]["headline"], both["current"]["headline"]
    assert (early["documents"], late["documents"]) == (80, 180)
    assert early["near_dup_rate"] == 0 and late["near_dup_rate"] == pytest.approx(60 / 180, abs=1e-6)
    assert late["domain_similarity"] > early["domain_similarity"]
    assert late["distinct_3"] < early["distinct_3"]  # the copies repeat text
    assert 'id="plot-trends"' in page and "change since early" in page
    assert 'data-key="/compare/0/headline/documents" data-format="int" data-value="80">80<' in page


def test_bad_audits_are_refused_with_exit_code_2(two_runs, tmp_path):
    root = two_runs
    broken = tmp_path / "broken"
    shutil.copytree(run_path(root / "audits" / "early"), broken)
    os.remove(broken / "_SUCCESS")
    html = tmp_path / "r.html"
    p = run_cli("report", "--audit", broken, "--html", html, check=False)
    assert p.returncode == 2 and "no _SUCCESS marker" in p.stderr and not html.exists()

    p = run_cli("report", "--audit", root / "audits" / "late", "--compare", broken, "--html", html, check=False)
    assert p.returncode == 2 and "--compare" in p.stderr and "_SUCCESS" in p.stderr and not html.exists()

    changed = tmp_path / "changed"
    shutil.copytree(run_path(root / "audits" / "early"), changed)
    doc = sorted(f for f in os.listdir(changed) if f.startswith("documents-"))[0]
    pq.write_table(pq.read_table(changed / doc).slice(0, 10), changed / doc)
    p = run_cli("report", "--audit", changed, "--html", html, check=False)
    assert p.returncode == 2 and "changed since the run was committed" in p.stderr

    write_jsonl(tmp_path / "empty.jsonl", ['{"text": ""}', "{not json"])
    run_cli("audit", "--input", tmp_path / "empty.jsonl", "--output", tmp_path / "empty", "--run-id", "e", "--quiet",
            "--no-detectors")
    p = run_cli("report", "--audit", tmp_path / "empty", "--html", html, check=False)
    assert p.returncode == 2 and "0 documents" in p.stderr and not html.exists()


def test_audit_without_detectors_or_index_still_reports(two_runs, tmp_path):
    root = two_runs
    run_cli("audit", "--input", root / "early.jsonl", "--output", tmp_path / "a", "--run-id", "x", "--quiet",
            "--no-detectors")
    report, page = _report(tmp_path, "--audit", tmp_path / "a")
    cur = report["current"]
    assert cur["headline"]["share_synthetic"] is None and cur["synthetic_likelihood"]["documents_unscored"] == 80
    assert cur["detectors"]["rows"] == 0 and cur["known_outputs"]["index_used"] is False
    assert cur["headline"]["distinct_1"] is not None
    for name in PLOT_IDS:
        assert f'id="plot-{name}"' in page
