"""The LM tier in the audit: which documents it scores, its columns, the share estimate it feeds."""
import glob
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import read_audit, read_documents, run_cli, run_path, write_jsonl
from corpus_audit.transforms.detectors import load_default_model
from corpus_audit.transforms.detectors.lm_stage import lm_selection
from corpus_audit.transforms.detectors.model_io import LM_FEATURES


def test_sample_is_a_fixed_share_of_doc_id_hashes_and_skips_duplicates():
    ids = [f"doc-{i}" for i in range(20_000)]
    rep = np.ones(len(ids), dtype=bool)
    rep[::10] = False
    a = lm_selection(ids, rep, "sample", 0.05)
    assert np.array_equal(a, lm_selection(list(reversed(ids)), rep[::-1], "sample", 0.05)[::-1])
    assert not a[~rep].any() and abs(a[rep].mean() - 0.05) < 0.006
    assert np.all(lm_selection(ids, rep, "sample", 0.2)[a])  # a larger rate keeps the smaller sample
    assert np.array_equal(lm_selection(ids, rep, "all", 0.0), rep)
    assert not lm_selection(ids, rep, "off", 1.0).any()
    with pytest.raises(ValueError):
        lm_selection(ids, rep, "some", 0.1)


def test_members_take_their_representatives_statistics_once_per_shard():
    from corpus_audit.transforms.detectors.lm_pass import (ANNOTATION_LM, MEMBERS, SHARED, give_to_members,
                                                           lm_from_annotations, lm_targets)

    cols = {"doc_id": np.array(["a", "b", "c", "d", "e"], dtype=object),
            "is_representative": np.array([True, False, True, False, False]),
            "cluster_size": np.array([3, 3, 1, 3, 2]),
            "known_similarity": np.array([0.0, 0.0, 0.0, 0.0, 0.95])}
    english = np.array([True, True, True, False, True])
    scored, members = lm_targets(cols, english, "all", 0.0)
    assert scored.tolist() == [True, False, True, False, False]
    assert members.tolist() == [False, True, False, False, False]  # d is not English, e copies a known output
    assert not lm_targets(cols, english, "off", 1.0)[1].any()
    stats = np.arange(len(LM_FEATURES), dtype=float)
    out = list(give_to_members(("a", {SHARED: [stats], MEMBERS: [(3, 7), (1, 4), (3, 2)]})))
    assert [shard for shard, _ in out] == [1, 3] and out[1][1][1].tolist() == [2, 7]
    assert list(give_to_members(("x", {SHARED: [], MEMBERS: [(0, 1)]}))) == []  # representative unscored
    lm = lm_from_annotations(9, [out[1][1], ("cluster", None)])
    assert lm[LM_FEATURES[1]][[2, 7]].tolist() == [1.0, 1.0] and np.isnan(lm[LM_FEATURES[1]][0])
    assert out[0][1][0] == ANNOTATION_LM


def test_sampled_texts_are_read_one_row_group_at_a_time_skipping_groups_without_a_sampled_row(tmp_path):
    import pyarrow as pa

    from corpus_audit.transforms.detectors.lm_pass import texts_of_rows

    pq.write_table(pa.table({"text": [f"t{i}" for i in range(15)]}), tmp_path / "s.parquet", row_group_size=3)
    pf = pq.ParquetFile(tmp_path / "s.parquet")
    assert pf.num_row_groups == 5
    assert list(texts_of_rows(pf, np.array([1, 2, 9, 14]))) == [["t1", "t2"], ["t9"], ["t14"]]


def test_shipped_model_has_the_lm_family_and_share_references():
    model = load_default_model()
    assert model.has_lm and "lm" in model.ensemble.detector_names
    assert {"fast", "full"} <= set(model.ensemble.share)
    assert model.ensemble.iso_full_x is not None


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory, real_texts):
    work = tmp_path_factory.mktemp("lm")
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(real_texts[:12])]
    rows.append({"id": "copy", "text": real_texts[0]})  # a duplicate: not scored again
    write_jsonl(work / "in.jsonl", rows)
    for mode in ("off", "all"):
        proc = run_cli("audit", "--input", work / "in.jsonl", "--output", work, "--run-id", mode, "--quiet",
                       "--lm-detector", mode)
        (work / f"{mode}.summary").write_text(proc.stdout)
    return work


def test_all_mode_scores_every_representative_gives_it_to_members_and_moves_the_likelihood(lm_runs):
    off = {r["doc_id"]: r for r in read_documents(lm_runs / "off").to_pylist()}
    on = {r["doc_id"]: r for r in read_documents(lm_runs / "all").to_pylist()}
    assert set(off) == set(on)
    reps = {r["cluster_id"]: r for r in on.values() if r["is_representative"]}
    members = [r for r in on.values() if not r["is_representative"]]
    assert len(members) == 1
    for doc_id, r in on.items():
        for k in LM_FEATURES + ("det_lm",):
            assert r[k] is not None and np.isfinite(r[k]), (doc_id, k)
            assert off[doc_id][k] is None
    for r in members:  # the copy reads as its representative does: scored once, the same likelihood
        rep = reps[r["cluster_id"]]
        assert all(r[k] == rep[k] for k in LM_FEATURES + ("det_lm", "synthetic_likelihood"))
    moved = [d for d in on if on[d]["is_representative"] and on[d]["synthetic_likelihood"] != off[d]["synthetic_likelihood"]]
    assert len(moved) >= 10
    audit = read_audit(lm_runs / "all")["synthetic"]
    assert audit["lm_detector"]["mode"] == "all" and audit["lm_detector"]["documents_scored"] == 12
    assert audit["lm_detector"]["documents_given_representative"] == 1
    est = audit["share_estimate"]
    assert {"fast", "full"} == set(est["by_stack"]) and est["low"] <= est["value"] <= est["high"]
    assert est["reference"] == "development data" and est["anchor_documents"] == 0  # no dates in this crawl
    assert read_audit(lm_runs / "off")["synthetic"]["share_estimate"]["by_stack"].keys() == {"fast"}
    lm_line = [ln for ln in (lm_runs / "all.summary").read_text().splitlines() if ln.startswith("LM detector")]
    assert len(lm_line) == 1
    assert "every document, first 128 tokens: 12 documents scored, 1 given their cluster" in lm_line[0]
    assert "with the LM the share reads" in lm_line[0] and "over the 13 documents it covers" in lm_line[0]
    assert "LM detector" not in (lm_runs / "off.summary").read_text()


def test_lm_columns_are_byte_identical_across_runs_and_workers(lm_runs, tmp_path):
    run_cli("audit", "--input", lm_runs / "in.jsonl", "--output", tmp_path, "--run-id", "two", "--quiet",
            "--lm-detector", "all",
            "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    a = sorted(glob.glob(os.path.join(run_path(lm_runs / "all"), "documents-*.parquet")))
    b = sorted(glob.glob(os.path.join(run_path(tmp_path / "two"), "documents-*.parquet")))
    assert [os.path.basename(x) for x in a] == [os.path.basename(x) for x in b]
    for x, y in zip(a, b):
        assert open(x, "rb").read() == open(y, "rb").read(), x
        assert pq.read_table(x).column("lm_logprob").null_count < pq.read_table(x).num_rows


@pytest.mark.parametrize("fake", ["raise ImportError('no llama.cpp here')", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"])
def test_an_lm_runtime_that_cannot_score_is_exit_2_before_any_work(tmp_path, real_texts, fake):
    """A broken runtime (failed import, or a native crash as llama.cpp's AMX path had) must stop
    the audit with one clear line before the run directory exists, not kill a worker mid-run."""
    import os
    import subprocess

    from conftest import CLI

    (tmp_path / "fake" / "llama_cpp").mkdir(parents=True)
    (tmp_path / "fake" / "llama_cpp" / "__init__.py").write_text(fake + "\n")
    write_jsonl(tmp_path / "in.jsonl", [{"id": "d0", "text": real_texts[0]}])
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    proc = subprocess.run(CLI + ["audit", "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"),
                                 "--run-id", "r1", "--quiet", "--lm-detector", "all"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("corpus-audit: the LM detector cannot score")
    assert ("no llama.cpp here" in last) if "ImportError" in fake else ("killed by signal 11" in last)
    assert not (tmp_path / "out" / "r1").exists()


def test_lm_tokens_other_than_the_models_are_exit_2_before_any_work(tmp_path, real_texts):
    write_jsonl(tmp_path / "in.jsonl", [{"id": "d0", "text": real_texts[0]}])
    proc = run_cli("audit", "--input", tmp_path / "in.jsonl", "--output", tmp_path / "out", "--run-id", "r1",
                   "--quiet", "--lm-detector", "all", "--lm-tokens", "64", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "fitted over 128 tokens, not the 64 of --lm-tokens" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / "r1").exists()
