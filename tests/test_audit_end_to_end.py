"""The real command on real files: schema, invariant, planted near-duplicates, determinism."""
import glob
import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from conftest import WARC_DIR, read_audit, read_documents, run_cli, write_jsonl
from corpus_audit.pipelines.cli import SAMPLE_DIR
from corpus_audit.schemas import DEAD_LETTER_SCHEMA, DOCUMENT_SCHEMA, SCHEMA_VERSION


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    proc = run_cli("demo", "--output", root, "--run-id", "first", "--overwrite")
    return root / "first", proc


def test_demo_writes_documented_schema_and_counts(demo_out):
    out, proc = demo_out
    assert "documents written" in proc.stdout
    files = sorted(glob.glob(str(out / "documents-*.parquet")))
    assert len(files) == 7  # one per input shard
    for f in files:
        schema = pq.read_schema(f)
        assert schema.equals(DOCUMENT_SCHEMA, check_metadata=False)
        assert schema.metadata[b"corpus_audit.schema_version"] == SCHEMA_VERSION.encode()
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"
    audit = read_audit(out)
    assert audit["records_read"] == audit["documents_written"] + audit["dead_letters"]
    assert audit["dead_letters_by_reason"] == {"empty_text": 1, "malformed_json": 1}
    dead = pq.read_table(glob.glob(str(out / "dead_letters-*.parquet"))[0])
    assert dead.schema.equals(DEAD_LETTER_SCHEMA, check_metadata=False)
    assert dead.num_rows == 2
    table = read_documents(out)
    assert table.num_rows == audit["documents_written"]
    assert len(set(table.column("doc_id").to_pylist())) == table.num_rows
    # Every shuffle of the audit (with known outputs) was counted on both sides and balanced.
    assert audit["shuffles"]["checked"] >= 12 and audit["shuffles"]["values"] > audit["records_read"]


def test_planted_near_duplicates_share_their_source_cluster(demo_out):
    out, _ = demo_out
    rows = read_documents(out, ["doc_id", "url", "source_format", "cluster_id", "cluster_size", "is_representative",
                                "exact_dup"]).to_pylist()
    # WARC documents are named by their WARC-Record-ID; the sample's URLs end in the text's id.
    by_id = {r["url"].rsplit("/", 1)[-1]: r for r in rows if r["url"] and "example." in r["url"]}
    planted = json.load(open(os.path.join(SAMPLE_DIR, "planted.json")))["near_duplicates"]
    assert len(planted) == 40
    for dup, source in planted:
        assert by_id[dup]["cluster_id"] == by_id[source]["cluster_id"], dup
    # A re-post is an exact copy when both sit in the JSONL shard (pages add their own title).
    reposts = [(d, s) for d, s in planted if d.endswith("-repost")
               and by_id[d]["source_format"] == by_id[s]["source_format"] == "jsonl"]
    assert reposts and all(by_id[d]["exact_dup"] and by_id[s]["exact_dup"] for d, s in reposts)
    clusters = {}
    for r in rows:
        clusters.setdefault(r["cluster_id"], []).append(r)
    for cid, members in clusters.items():
        assert sum(m["is_representative"] for m in members) == 1
        assert all(m["cluster_size"] == len(members) for m in members)
        assert cid in {m["doc_id"] for m in members}


def test_demo_finds_the_pasted_and_copied_known_outputs(demo_out):
    out, proc = demo_out
    rows = read_documents(out, ["url", "known_match_id", "known_match_kind", "known_containment"]).to_pylist()
    by_id = {r["url"].rsplit("/", 1)[-1]: r for r in rows if r["url"] and "example." in r["url"]}
    pasted = json.load(open(os.path.join(SAMPLE_DIR, "planted.json")))["pasted_outputs"]
    assert len(pasted) == 6
    for doc, output in pasted:
        assert by_id[doc]["known_match_id"] == output
    known = read_audit(out)["known_outputs"]
    assert known["documents_matched"] >= 40 and known["matched_by_kind"]["contains"] >= 3
    assert "known outputs" in proc.stdout
    assert os.path.exists(out / "known_outputs_index" / "index.json")


def test_same_input_gives_identical_parquet_and_worker_count_and_mode_do_not_matter(demo_out, tmp_path):
    out, _ = demo_out
    again, two, threads = tmp_path / "again", tmp_path / "two", tmp_path / "threads"
    run_cli("demo", "--output", tmp_path, "--run-id", "again", "--quiet")
    run_cli("demo", "--output", tmp_path, "--run-id", "two", "--quiet",
            "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    # worker threads share the runner's in-process data streams (their writes pass `nested`)
    run_cli("demo", "--output", tmp_path, "--run-id", "threads", "--quiet",
            "--direct_running_mode=multi_threading", "--direct_num_workers=2")
    names = sorted(os.path.basename(f) for f in glob.glob(str(out / "*.parquet")))
    for other in (again, two, threads):
        assert sorted(os.path.basename(f) for f in glob.glob(str(other / "*.parquet"))) == names
        for name in names:
            assert pq.read_table(out / name).equals(pq.read_table(other / name)), name
    for name in names:  # byte-identical, not only equal content
        assert (out / name).read_bytes() == (again / name).read_bytes()


def test_bad_input_shards_keep_every_record_accounted_for(tmp_path, real_texts):
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(os.path.join(WARC_DIR, "whirlwind.warc.gz"), inp)
    whole = open(os.path.join(WARC_DIR, "whirlwind.warc.gz"), "rb").read()
    (inp / "cut.warc.gz").write_bytes(whole[:12000])
    (inp / "empty.jsonl").write_bytes(b"")
    write_jsonl(inp / "mixed.jsonl.gz", [{"id": f"t{i}", "text": t} for i, t in enumerate(real_texts[:50])]
                + ["{oops", {"id": "blank", "text": ""}, {"id": "bin", "text": "\x00" * 500}])
    (inp / "notes.csv").write_text("a,b\n")
    out = tmp_path / "out" / "r"
    proc = run_cli("audit", "--input", str(inp / "*"), "--output", out.parent, "--run-id", "r")
    audit = read_audit(out)
    assert audit["records_read"] == 57
    assert audit["documents_written"] == 51
    assert audit["dead_letters_by_reason"] == {
        "binary_content": 1, "empty_shard": 1, "empty_text": 1, "malformed_json": 1, "truncated_record": 1,
        "unknown_format": 1}
    dead = pq.read_table(glob.glob(str(out / "dead_letters-*.parquet"))[0]).to_pylist()
    assert all(d["reason"] and d["detail"] for d in dead)
    assert read_documents(out).num_rows == 51
    assert "[corpus-audit] shards" in proc.stderr  # progress is shown by default


def test_existing_output_is_protected_and_empty_glob_is_an_error(demo_out, tmp_path):
    out, _ = demo_out
    proc = run_cli("demo", "--output", out.parent, "--run-id", out.name, "--quiet", check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    proc = run_cli("audit", "--input", tmp_path / "missing-*.warc.gz", "--output", tmp_path / "o",
                   check=False)
    assert proc.returncode == 2 and "no input files match" in proc.stderr


def test_help_explains_every_subcommand():
    proc = run_cli("--help")
    for word in ("audit", "demo", "schema", "Beam"):
        assert word in proc.stdout
    proc = run_cli("audit", "--help")
    assert "--bands" in proc.stdout and "--quiet" in proc.stdout


def test_duplicate_input_ids_become_unique_doc_ids_and_one_cluster_id_names_one_document(tmp_path, real_texts):
    inp = tmp_path / "in"
    inp.mkdir()
    rows = [{"id": "same", "text": real_texts[0]}, {"id": "same", "text": real_texts[1]},
            {"id": "x", "text": real_texts[2]}]
    write_jsonl(inp / "a.jsonl", rows)
    write_jsonl(inp / "b.jsonl", [{"id": "same", "text": real_texts[3]}])
    shutil.copy(inp / "a.jsonl", inp / "c.jsonl")  # the same file under another name
    run_cli("audit", "--input", inp / "*.jsonl", "--output", tmp_path / "out", "--run-id", "r", "--quiet",
            "--no-detectors")
    docs = read_documents(tmp_path / "out").to_pylist()
    by_id = {d["doc_id"]: d for d in docs}
    assert len(by_id) == len(docs) == 7
    assert by_id["same"]["source_shard"].endswith("a.jsonl") and by_id["same"]["record_position"] == 0
    assert {d for d in by_id if d.startswith("same~dup")} == {"same~dup1", "same~dup2", "same~dup3", "same~dup4"}
    assert by_id["x~dup1"]["source_shard"].endswith("c.jsonl")
    # The copied file forms clusters with a.jsonl, each named by exactly one representative.
    reps = {}
    for d in docs:
        if d["is_representative"]:
            assert d["cluster_id"] == d["doc_id"] and d["cluster_id"] not in reps
            reps[d["cluster_id"]] = d["cluster_size"]
    for cid, size in reps.items():
        assert sum(d["cluster_id"] == cid for d in docs) == size
    assert by_id["x"]["cluster_size"] == 2 and by_id["x~dup1"]["cluster_id"] == "x"
    assert read_audit(tmp_path / "out")["duplicate_ids_renamed"] == 5
