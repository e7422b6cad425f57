"""Near-duplicate quality on planted web-style copies of real texts, through the real command."""
import os
import sys

import pytest

from conftest import DETECT, ROOT, read_audit, read_documents, run_cli

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import planted  # noqa: E402


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    work = tmp_path_factory.mktemp("quality")
    docs = planted.build_corpus(planted.load_sentences(DETECT), n_docs=4000, seed=7)
    planted.write_jsonl_shards(docs, work / "in", n_shards=3)
    run_cli("audit", "--input", work / "in" / "*.jsonl", "--output", work / "out", "--quiet")
    rows = read_documents(work / "out", ["doc_id", "cluster_id"]).to_pylist()
    predicted = {r["doc_id"]: r["cluster_id"] for r in rows}
    return docs, predicted, read_audit(work / "out")


def test_pairwise_f1_on_planted_near_duplicates(audited):
    docs, predicted, audit = audited
    assert audit["documents_written"] == len(docs)
    truth = [d["cluster"] for d in docs]
    pred = [predicted[d["id"]] for d in docs]
    precision, recall, f1 = planted.pairwise_f1(truth, pred)
    assert f1 >= 0.99, (precision, recall, f1)


def test_every_planted_edit_kind_is_found(audited):
    docs, predicted, _ = audited
    base_of = {d["cluster"]: d["id"] for d in docs if d["kind"] == "base"}
    missed = {}
    kinds = {}
    for d in docs:
        if d["kind"] in ("base", "control"):
            continue
        kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        if predicted[d["id"]] != predicted[base_of[d["cluster"]]]:
            missed[d["kind"]] = missed.get(d["kind"], 0) + 1
    assert len(kinds) >= 6
    for kind, n in kinds.items():
        assert missed.get(kind, 0) <= max(1, 0.05 * n), (kind, missed.get(kind), n)


def test_documents_sharing_only_boilerplate_are_not_merged(audited):
    docs, predicted, _ = audited
    groups = {}
    for d in docs:
        if d["kind"] == "control":
            groups.setdefault(d["control_group"], []).append(predicted[d["id"]])
    assert groups and sum(len(g) for g in groups.values()) >= 20
    for members in groups.values():
        assert len(set(members)) == len(members), "unrelated pages with one boilerplate block merged"
