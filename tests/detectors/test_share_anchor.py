"""The anchored share estimate through the audit: a crawl's own pre-cut-off documents as its
human reference."""
import gzip
import json

import pytest

from conftest import DETECT, read_audit, run_cli, write_jsonl

CHAT = ("gpt-3.5-turbo", "gpt-4")


def _news(n_human, n_machine):
    """Human news articles and chat-model texts of the same domain from the test data."""
    with gzip.open(DETECT, "rt") as f:
        news = [r for r in map(json.loads, f) if r["domain"] == "news_xsum"]
    human = [r for r in news if r["label"] == "human"][:n_human]
    machine = [r for r in news if r["label"] == "machine" and r["generator"] in CHAT][:n_machine]
    assert len(human) == n_human and len(machine) == n_machine
    return human, machine


@pytest.fixture(scope="module")
def dated_crawl(tmp_path_factory):
    """News articles: 150 dated 2019, 250 undated human and 100 undated chat-model texts."""
    human, machine = _news(400, 100)
    docs = [{"id": r["id"], "text": r["text"], "url": f"https://news.example/{i}",
             **({"crawl_date": "2019-06-01T00:00:00Z"} if i < 150 else {})}
            for i, r in enumerate(human + machine)]
    work = tmp_path_factory.mktemp("anchor")
    write_jsonl(work / "crawl.jsonl", docs)
    run_cli("audit", "--input", work / "crawl.jsonl", "--output", work, "--run-id", "r1", "--quiet")
    return read_audit(work)


def test_dated_documents_anchor_the_share_and_the_interval_holds_the_truth(dated_crawl):
    est = dated_crawl["synthetic"]["share_estimate"]
    assert est["reference"] == "anchored" and est["anchor_documents"] == 150, est
    assert est["documents"] == 500 and est["fitted_documents"] == 350
    truth = 100 / 500
    assert est["low"] <= truth <= est["high"] and abs(est["value"] - truth) < 0.1, est
    plain = est["by_stack"]["fast"]["without_anchor"]
    assert est["low"] <= est["value"] <= est["high"] and est["high"] - est["low"] < plain["high"] - plain["low"], est
    assert "pre-cut-off documents (150" in est["method"]


def test_an_earlier_run_of_human_text_is_the_reference_of_an_undated_crawl(tmp_path):
    human, machine = _news(450, 50)
    doc = lambda i, r: {"id": r["id"], "text": r["text"], "url": f"https://news.example/{i}"}
    write_jsonl(tmp_path / "old.jsonl", [doc(i, r) for i, r in enumerate(human[:200])])
    write_jsonl(tmp_path / "new.jsonl", [doc(i, r) for i, r in enumerate(human[200:] + machine)])
    run_cli("audit", "--input", tmp_path / "old.jsonl", "--output", tmp_path / "runs", "--run-id", "old", "--quiet")
    run_cli("audit", "--input", tmp_path / "new.jsonl", "--output", tmp_path / "runs", "--run-id", "new", "--quiet",
            "--human-reference", tmp_path / "runs" / "old")
    est = read_audit(tmp_path / "runs" / "new")["synthetic"]["share_estimate"]
    assert est["reference"] == "anchored" and est["human_reference_documents"] == 200 == est["anchor_documents"]
    assert est["human_reference_run"].endswith("old") and est["fitted_documents"] == 300
    assert est["low"] <= 50 / 300 <= est["high"], est
    run_cli("history", "--root", tmp_path / "runs", "--no-diversity", "--json", tmp_path / "h.json")
    history = {r["run_id"]: r for r in json.loads((tmp_path / "h.json").read_text())["runs"]}
    assert history["new"]["share_reference"] == "anchored on 200" and history["new"]["share_estimate"] == est["value"]
    assert history["old"]["share_reference"] == "development data"

    # unusable references fail before any work, in one line
    run_cli("audit", "--input", tmp_path / "old.jsonl", "--output", tmp_path / "runs", "--run-id", "plain",
            "--quiet", "--no-detectors")
    for ref, says in ((tmp_path / "runs" / "plain", "no score histograms"), (tmp_path / "nowhere", "nowhere")):
        proc = run_cli("audit", "--input", tmp_path / "new.jsonl", "--output", tmp_path / "runs", "--run-id", "bad",
                       "--quiet", "--human-reference", ref, check=False)
        assert proc.returncode == 2 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / "runs" / "bad").exists()
