import glob
import hashlib
import json
import os

import pyarrow.parquet as pq
import pytest

from conftest import read_documents, run_cli
from corpus_audit.transforms.curate import training_filter as tf


def test_max_flagged_is_the_exact_bound():
    assert tf.max_flagged(80, 0.2) == 20        # 20 / 100 = 0.2 exactly
    assert tf.max_flagged(79, 0.2) == 19        # 20 / 99 > 0.2
    assert tf.max_flagged(10, 0.0) == 0
    for u in range(0, 300, 7):
        for cap in (0.05, 0.1, 1 / 3, 0.5, 0.9):
            f = tf.max_flagged(u, cap)
            assert (f + u == 0 or f / (f + u) <= cap + 1e-12) and (f + 1) / (f + 1 + u) > cap


def test_cutoff_drops_the_most_synthetic_and_refuses_to_drop_humans():
    keys = [tf.rank_key(p, f"d{i}", "s", i) for i, p in enumerate([0.6, 0.99, 0.7, 0.99, 0.8])]
    cutoff, n = tf.cap_cutoff(unflagged=8, protected=0, keys=keys, cap=0.2)
    assert n == 3  # 2 flagged allowed beside 8
    dropped = sorted(k for k in keys if k <= cutoff)
    assert [k[1] for k in dropped] == ["d1", "d3", "d4"]  # 0.99, 0.99 (by doc_id), 0.8
    assert tf.cap_cutoff(8, 0, keys, 1.0) == (None, 0)
    with pytest.raises(tf.CapError, match="labelled human"):
        tf.cap_cutoff(unflagged=8, protected=3, keys=keys, cap=0.2)


def test_layout_cuts_files_into_exact_shards():
    offsets, total = tf.layout([5, 0, 7, 3], 4)
    assert offsets == [0, 5, 5, 12] and total == 4
    assert tf.pieces(5, 7, 4) == [(1, 0, 3), (2, 3, 7)]
    assert tf.pieces(12, 3, 4) == [(3, 0, 3)]
    assert tf.layout([0, 0], 4) == ([0, 0], 0)


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    run_cli("demo", "--output", root, "--run-id", "r1", "--quiet")
    return root


def _shard_rows(out):
    files = sorted(glob.glob(str(out / "shard-*.parquet")))
    return [r for f in files for r in pq.read_table(f).to_pylist()], files


def test_filter_enforces_the_cap_keeps_one_per_cluster_and_commits_a_manifest(audit_run, tmp_path):
    out = tmp_path / "shards"
    proc = run_cli("filter", "--audit", audit_run, "--output", out, "--shard-size", "40",
                   "--max-synthetic-share", "0.2", "--quiet")
    manifest = json.loads((out / "manifest.json").read_text())
    audit = {r["doc_id"]: r for r in read_documents(audit_run).to_pylist()}
    rows, files = _shard_rows(out)
    ids = [r["doc_id"] for r in rows]
    assert len(ids) == len(set(ids)) == manifest["counts"]["documents_out"]
    assert manifest["counts"]["documents_in"] == len(audit)
    assert len(audit) == len(ids) + sum(manifest["counts"]["dropped"].values())

    # One document per near-duplicate cluster, and it is the representative.
    clusters = [audit[d]["cluster_id"] for d in ids]
    assert len(clusters) == len(set(clusters)) and all(audit[d]["is_representative"] for d in ids)
    # The cap holds in what was written, and it was binding on this crawl.
    # (the two non-English pages have no likelihood: they are never flagged)
    flagged = [d for d in ids if (audit[d]["synthetic_likelihood"] or 0.0) >= 0.5]
    assert len(flagged) / len(ids) <= 0.2
    assert manifest["synthetic"]["share_before_cap"] > 0.2 and manifest["counts"]["dropped"]["synthetic_cap"] > 0
    # Most synthetic first: nothing kept and flagged is more synthetic than anything the cap dropped.
    dropped = {r["doc_id"]: r["reason"] for f in glob.glob(str(out / "dropped-*.parquet"))
               for r in pq.read_table(f).to_pylist()}
    capped = [audit[d]["synthetic_likelihood"] for d, why in dropped.items() if why == "synthetic_cap"]
    kept_droppable = [audit[d]["synthetic_likelihood"] for d in flagged if audit[d]["provenance"] != "human"]
    assert len(capped) == manifest["counts"]["dropped"]["synthetic_cap"]
    assert not kept_droppable or min(capped) >= max(kept_droppable)
    assert all(audit[d]["provenance"] != "human" for d, why in dropped.items() if why == "synthetic_cap")
    assert set(dropped) | set(ids) == set(audit)

    # Exact shard sizes in audit order, checksums in the manifest.
    sizes = [s["documents"] for s in manifest["shards"]]
    assert all(n == 40 for n in sizes[:-1]) and 0 < sizes[-1] <= 40
    order = sorted(ids, key=lambda d: (audit[d]["source_shard"], audit[d]["record_position"]))
    assert [os.path.basename(f) for f in files] == [s["file"] for s in manifest["shards"]]
    for s in manifest["shards"]:
        assert hashlib.sha256((out / s["file"]).read_bytes()).hexdigest() == s["sha256"]
    assert ids == order
    assert "synthetic share" in proc.stdout


def test_rerun_gives_identical_shards_on_any_worker_count(audit_run, tmp_path):
    args = ["filter", "--audit", audit_run, "--shard-size", "25", "--drop-known-matches", "--quiet"]
    run_cli(*args, "--output", tmp_path / "a")
    run_cli(*args, "--output", tmp_path / "b", "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    a = json.loads((tmp_path / "a" / "manifest.json").read_text())
    b = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert a == b and len(a["shards"]) > 1
    proc = run_cli(*args, "--output", tmp_path / "a", check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr


def test_jsonl_shards_carry_the_same_documents(audit_run, tmp_path):
    import gzip

    run_cli("filter", "--audit", audit_run, "--output", tmp_path / "p", "--quiet")
    run_cli("filter", "--audit", audit_run, "--output", tmp_path / "j", "--format", "jsonl", "--quiet")
    parquet_ids = [r["doc_id"] for r in _shard_rows(tmp_path / "p")[0]]
    lines = [json.loads(line) for f in sorted(glob.glob(str(tmp_path / "j" / "shard-*.jsonl.gz")))
             for line in gzip.open(f, "rt")]
    assert [r["doc_id"] for r in lines] == parquet_ids and all(r["text"] for r in lines)


def test_bad_audits_and_impossible_caps_exit_with_a_message(audit_run, tmp_path):
    # Every document flagged (threshold near 0) and a cap of 0: the human-labelled ones cannot go.
    proc = run_cli("filter", "--audit", audit_run, "--output", tmp_path / "x", "--threshold", "0.0001",
                   "--max-synthetic-share", "0", check=False)
    assert proc.returncode == 2 and "labelled human" in proc.stderr
    assert not (tmp_path / "x" / "manifest.json").exists()
    proc = run_cli("filter", "--audit", tmp_path / "nothing", "--output", tmp_path / "y", check=False)
    assert proc.returncode == 2 and "_SUCCESS" in proc.stderr

    broken = tmp_path / "broken"
    os.makedirs(broken)
    for f in glob.glob(str(audit_run / "r1" / "*")):
        if os.path.isfile(f):
            os.link(f, broken / os.path.basename(f))
    marker = json.loads((broken / "_SUCCESS").read_text())
    (broken / "_SUCCESS").write_text(json.dumps({**marker, "schema_version": "2"}))
    proc = run_cli("filter", "--audit", broken, "--output", tmp_path / "z", check=False)
    assert proc.returncode == 2 and "schema version 2" in proc.stderr
    (broken / "_SUCCESS").write_text(json.dumps(marker))
    os.remove(broken / sorted(f for f in marker["files"] if f.startswith("documents-"))[0])
    proc = run_cli("filter", "--audit", broken, "--output", tmp_path / "z", check=False)
    assert proc.returncode == 2 and "missing" in proc.stderr


def test_an_audit_without_detectors_cannot_be_capped(tmp_path, real_texts):
    from conftest import write_jsonl

    write_jsonl(tmp_path / "in.jsonl", [{"id": f"d{i}", "text": t} for i, t in enumerate(real_texts[:20])])
    run_cli("audit", "--input", tmp_path / "in.jsonl", "--output", tmp_path / "a", "--run-id", "r",
            "--no-detectors", "--quiet")
    proc = run_cli("filter", "--audit", tmp_path / "a", "--output", tmp_path / "s", check=False)
    assert proc.returncode == 2 and "without detectors" in proc.stderr
    run_cli("filter", "--audit", tmp_path / "a", "--output", tmp_path / "s", "--max-synthetic-share", "1", "--quiet")
    assert len(_shard_rows(tmp_path / "s")[0]) == 20


def test_an_empty_audit_is_refused(tmp_path):
    from conftest import write_jsonl

    write_jsonl(tmp_path / "in.jsonl", ["{broken", {"id": "blank", "text": "  "}])
    run_cli("audit", "--input", tmp_path / "in.jsonl", "--output", tmp_path / "a", "--run-id", "r", "--quiet")
    proc = run_cli("filter", "--audit", tmp_path / "a", "--output", tmp_path / "s", "--max-synthetic-share", "1",
                   check=False)
    assert proc.returncode == 2 and "no documents" in proc.stderr
    assert not (tmp_path / "s" / "manifest.json").exists()
