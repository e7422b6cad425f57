"""Scheduled audits: runs under one root, commit markers, interrupted runs, history, index updates."""
import glob
import json
import os
import signal
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from conftest import CLI, read_audit, read_documents, run_cli, write_jsonl


@pytest.fixture(scope="module")
def crawl(tmp_path_factory, real_texts):
    work = tmp_path_factory.mktemp("runs")
    rows = [{"id": f"d{i}", "text": t, "url": f"https://site{i % 5}.example/{i}"} for i, t in enumerate(real_texts[:300])]
    for n in range(6):
        write_jsonl(work / f"part-{n}.jsonl", rows[n * 50:(n + 1) * 50])
    return work


def _documents(run_dir):
    return {os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(str(run_dir / "documents-*.parquet")))}


def test_runs_live_under_their_id_and_an_interrupted_run_is_redone(crawl, tmp_path):
    root = tmp_path / "audits"
    run_cli("audit", "--input", crawl / "*.jsonl", "--output", root, "--run-id", "2026-01-01", "--quiet")
    first = root / "2026-01-01"
    marker = json.loads((first / "_SUCCESS").read_text())
    assert marker["run_id"] == "2026-01-01" and "audit.json" in marker["files"]
    assert sorted(f for f in marker["files"] if f.startswith("documents-")) == sorted(_documents(first))
    original = _documents(first)

    # Looks like a run killed half-way: no marker, a stray partial file and staging left behind.
    (first / "_SUCCESS").unlink()
    (first / "documents-00099-of-00100.parquet").write_bytes(b"partial")
    (first / "_staging").mkdir()
    (first / "_staging" / "staged-00000.parquet").write_bytes(b"partial")
    proc = run_cli("filter", "--audit", first, "--output", tmp_path / "shards", check=False)
    assert proc.returncode == 2 and "interrupted" in proc.stderr
    proc = run_cli("audit", "--input", crawl / "*.jsonl", "--output", root, "--run-id", "2026-01-01")
    assert "interrupted run" in proc.stderr
    assert _documents(first) == original  # same result, stray file gone
    assert not (first / "_staging").exists() and (first / "_SUCCESS").exists()

    proc = run_cli("audit", "--input", crawl / "*.jsonl", "--output", root, "--run-id", "../x", check=False)
    assert proc.returncode == 2 and "--run-id" in proc.stderr


def test_a_killed_run_never_looks_complete(crawl, tmp_path):
    root = tmp_path / "audits"
    proc = subprocess.Popen(CLI + ["audit", "--input", str(crawl / "*.jsonl"), "--output", str(root),
                                   "--run-id", "k", "--quiet"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not glob.glob(str(root / "k" / "_staging" / "*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (root / "k" / "_SUCCESS").exists()
    proc = run_cli("history", "--root", root, check=False)
    assert proc.returncode == 2 and "incomplete: k" in proc.stderr
    run_cli("audit", "--input", crawl / "*.jsonl", "--output", root, "--run-id", "k", "--quiet")
    assert read_audit(root / "k")["documents_written"] == 300


def test_history_lists_runs_in_order_with_their_trend(crawl, tmp_path):
    root = tmp_path / "audits"
    run_cli("audit", "--input", crawl / "part-[0-2].jsonl", "--output", root, "--run-id", "week-1", "--quiet")
    # The next crawl repeats a shard: more duplicates.
    for name in ("part-0.jsonl", "part-1.jsonl"):
        os.makedirs(tmp_path / "next", exist_ok=True)
        (tmp_path / "next" / f"again-{name}").write_bytes((crawl / name).read_bytes().replace(b'"d', b'"again-d'))
    run_cli("audit", "--input", crawl / "part-[0-2].jsonl", "--input", tmp_path / "next" / "*.jsonl",
            "--output", root, "--run-id", "week-2", "--quiet")
    os.makedirs(root / "week-3")
    (root / "week-3" / "audit.json").write_text("{}")  # never committed
    proc = run_cli("history", "--root", root, "--json", tmp_path / "h.json")
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("week-1") and lines[2].startswith("week-2")
    assert "incomplete" in proc.stderr and "week-3" in proc.stderr
    h = json.loads((tmp_path / "h.json").read_text())
    assert [r["run_id"] for r in h["runs"]] == ["week-1", "week-2"] and h["incomplete"] == ["week-3"]
    a1, a2 = read_audit(root / "week-1"), read_audit(root / "week-2")
    assert h["runs"][0]["synthetic_share"] == a1["synthetic"]["share_likelihood_ge_0_5"]
    assert h["runs"][1]["duplicate_rate"] == pytest.approx(a2["duplicates"] / a2["documents_written"])
    assert h["runs"][0]["duplicate_rate"] == 0 and h["runs"][1]["duplicate_rate"] == pytest.approx(100 / 250)
    assert h["trend"]["duplicate_rate"]["change_since_first"] == pytest.approx(0.4)
    assert "+40.0 pp" in proc.stdout
    assert 0 < h["runs"][0]["distinct_2"] <= 1 and 0 <= h["runs"][0]["tail_mass"] <= 1


def test_update_index_lets_the_next_run_name_copies_of_this_runs_synthetic_pages(tmp_path):
    from corpus_audit.pipelines.cli import SAMPLE_INPUTS, AuditSettings
    from corpus_audit.pipelines.index import add_run_to_index

    root, idx = tmp_path / "audits", tmp_path / "idx"
    # the training mix as prior, so that the sample crawl has pages the detectors call synthetic
    proc = run_cli("demo", "--output", root, "--run-id", "one", "--quiet", "--update-index", idx, "--prior", "0.5")
    docs = read_documents(root / "one").to_pylist()
    expected = {d["doc_id"] for d in docs if d["provenance"] == "synthetic" and d["is_representative"]
                and d["known_match_kind"] != "near_copy"}
    assert expected and f"{len(expected)} synthetic documents added" in proc.stdout
    again = add_run_to_index(str(root / "one"), "one", str(idx), AuditSettings(inputs=SAMPLE_INPUTS, output=None), [])
    assert again["already_added"] and again["added"] == 0

    run_cli("demo", "--output", root, "--run-id", "two", "--quiet", "--known-outputs", idx, "--prior", "0.5")
    matched = {d["doc_id"]: d for d in read_documents(root / "two").to_pylist()}
    for doc_id in expected:
        assert matched[doc_id]["known_match_kind"] == "near_copy"
        assert matched[doc_id]["known_match_id"] == doc_id
    index_ids = {r["output_id"] for f in idx.glob("part-*.parquet")
                 for r in pq.read_table(f, columns=["output_id"]).to_pylist()}
    assert index_ids == expected


def test_update_index_adds_a_run_once_even_when_it_is_rerun_with_overwrite(tmp_path):
    import json
    import os

    from conftest import WARC_DIR

    root, idx = tmp_path / "audits", tmp_path / "idx"
    shard = os.path.join(WARC_DIR, "sample-crawl-00001.jsonl.gz")
    args = ["audit", "--input", shard, "--output", root, "--run-id", "r", "--quiet", "--update-index", idx,
            "--prior", "0.5"]
    first = run_cli(*args)
    manifest = json.loads((idx / "index.json").read_text())
    assert manifest["entries"] > 0 and {p["run_id"] for p in manifest["parts"]} == {"r"}
    assert "synthetic documents added" in first.stdout
    # The re-run commits at another time; the index still holds the run once, and the re-run,
    # reading the index it updates, does not find its own first attempt's pages there.
    again = run_cli(*args, "--overwrite", "--known-outputs", idx)
    assert "(this run was added before)" in again.stdout
    assert json.loads((idx / "index.json").read_text())["entries"] == manifest["entries"]
    kinds = read_documents(root / "r", ["known_match_kind"]).column(0).to_pylist()
    assert kinds.count("near_copy") == 0
