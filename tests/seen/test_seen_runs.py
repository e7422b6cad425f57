"""Three scheduled runs of the bundled sample against one seen-pages index, through the real CLI:
unchanged pages keep the run that first saw them, changed pages are flagged by URL, new pages
are new; re-runs never add a run twice; damaged indexes stop the audit with one line."""
import glob
import gzip
import hashlib
import io
import json
import os
import shutil

import pyarrow.parquet as pq
import pytest

from corpus_audit.transforms.seen import index as si

from conftest import WARC_DIR, read_audit, run_cli, write_jsonl

COLUMNS = ["doc_id", "url", "crawl_date", "first_seen_run", "first_seen_date", "seen_before", "url_seen_before",
           "text_changed_since", "provenance_reason", "cluster_size"]


def sample_pages():
    rows = []
    with gzip.open(os.path.join(WARC_DIR, "sample-crawl-00001.jsonl.gz"), "rt", encoding="utf-8") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r.get("text"), str) and len(r["text"].split()) >= 80:
                rows.append(r)
    # Distinct texts only, so each page's expected answer is its own.
    seen, out = set(), []
    for r in rows:
        key = " ".join(r["text"].lower().split()[:40])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def near_copy(text):
    words = text.split()
    return " ".join("edited" if i % 25 == 7 else w for i, w in enumerate(words))


def documents(root, run):
    rows = []
    for f in sorted(glob.glob(os.path.join(root, run, "documents-*.parquet"))):
        rows += pq.read_table(f, columns=COLUMNS).to_pylist()
    return {r["doc_id"]: r for r in rows}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("seen")
    pages = sample_pages()
    assert len(pages) >= 70
    r1 = [dict(p) for p in pages[:40]]
    for p in r1[:5]:
        p["crawl_date"] = "2021-06-01"  # captured before the cut-off
    r2 = [dict(p) for p in r1[5:30]]
    r2 += [{"id": p["id"], "text": p["text"]} for p in r1[:5]]  # no URL, no date: matched by text
    r2 += [{**p, "text": pages[60 + i]["text"], "crawl_date": "2024-05-01"} for i, p in enumerate(r1[30:35])]
    r2 += [{**p, "id": p["id"] + "-edit", "url": p["url"] + "?edit", "text": near_copy(p["text"])} for p in r1[35:40]]
    r2 += [dict(p) for p in pages[40:55]]
    for run, rows in (("r1", r1), ("r2", r2)):
        (base / "in" / run).mkdir(parents=True)
        write_jsonl(base / "in" / run / "pages.jsonl", rows)
    (base / "in" / "r3").mkdir()
    shutil.copy(base / "in" / "r2" / "pages.jsonl", base / "in" / "r3" / "pages.jsonl")  # a re-crawl
    out, idx = base / "out", base / "seen"
    logs = {}
    for run in ("r1", "r2"):
        logs[run] = run_cli("audit", "--input", base / "in" / run / "*.jsonl", "--output", out, "--run-id", run,
                            "--seen-index", idx, "--quiet").stdout
    shutil.copytree(idx, base / "seen-before-r3")
    logs["r3"] = run_cli("audit", "--input", base / "in" / "r3" / "*.jsonl", "--output", out, "--run-id", "r3",
                         "--seen-index", idx, "--quiet").stdout
    return {"base": base, "out": out, "idx": idx, "pages": pages, "logs": logs,
            "ids": {"old": [p["id"] for p in r1[:5]], "same": [p["id"] for p in r1[5:30]],
                    "changed": [p["id"] for p in r1[30:35]], "near": [p["id"] + "-edit" for p in r1[35:40]],
                    "new": [p["id"] for p in pages[40:55]]}}


def manifest(idx):
    with open(os.path.join(idx, "seen.json")) as f:
        return json.load(f)


def test_first_run_sees_everything_new_and_creates_the_index(runs):
    docs = documents(runs["out"], "r1")
    assert len(docs) == 40
    assert all(d["seen_before"] is None and d["first_seen_run"] == "r1" for d in docs.values())
    assert all(d["url_seen_before"] is False and d["text_changed_since"] is None for d in docs.values())
    assert str(docs[runs["ids"]["old"][0]]["first_seen_date"]) == "2021-06-01"
    assert read_audit(runs["out"] / "r1")["seen"]["new"] == 40


def test_second_run_tells_unchanged_changed_near_and_new_pages(runs):
    docs, ids = documents(runs["out"], "r2"), runs["ids"]
    for i in ids["same"]:
        assert (docs[i]["seen_before"], docs[i]["first_seen_run"], docs[i]["url_seen_before"],
                docs[i]["text_changed_since"]) == ("exact", "r1", True, False), i
    for i in ids["old"]:  # no URL, no date: still found by text, and the old capture is human evidence
        d = docs[i]
        assert (d["seen_before"], d["first_seen_run"], str(d["first_seen_date"]), d["url_seen_before"]) == (
            "exact", "r1", "2021-06-01", None), i
        assert d["crawl_date"] is None
        assert d["provenance_reason"] in ("seen_before_cutoff", "too_short", "non_english", "detector_high"), d
    assert sum(docs[i]["provenance_reason"] == "seen_before_cutoff" for i in ids["old"]) >= 3
    for i in ids["changed"]:
        assert (docs[i]["seen_before"], docs[i]["first_seen_run"], docs[i]["url_seen_before"],
                docs[i]["text_changed_since"]) == (None, "r2", True, True), i
    for i in ids["near"]:
        assert (docs[i]["seen_before"], docs[i]["first_seen_run"], docs[i]["url_seen_before"]) == ("near", "r1", False), i
    for i in ids["new"]:
        assert (docs[i]["seen_before"], docs[i]["first_seen_run"], docs[i]["url_seen_before"]) == (None, "r2", False), i
    # Seen entries annotate; they never join crawl clusters.
    assert all(d["cluster_size"] == 1 for d in docs.values())
    seen = read_audit(runs["out"] / "r2")["seen"]
    assert (seen["exact"], seen["near"], seen["new"], seen["url_changed"]) == (30, 5, 20, 5)
    assert "seen pages" in runs["logs"]["r2"]


def test_third_run_keeps_the_first_run_that_saw_each_text(runs):
    docs, ids = documents(runs["out"], "r3"), runs["ids"]
    assert all(docs[i]["first_seen_run"] == "r1" for i in ids["same"] + ids["old"] + ids["near"])
    for i in ids["changed"]:  # the new text was first seen by r2, and r3 saw it unchanged
        assert (docs[i]["seen_before"], docs[i]["first_seen_run"], docs[i]["text_changed_since"]) == ("exact", "r2", False)
    assert all(docs[i]["seen_before"] == "exact" and docs[i]["first_seen_run"] == "r2" for i in ids["new"])
    m = manifest(runs["idx"])
    assert [p["run_id"] for p in m["parts"]] == ["r1", "r2", "r3"] and m["entries"] == 40 + 55 + 55


def test_overwrite_rerun_does_not_double_the_index_and_gives_the_same_output(runs):
    before = manifest(runs["idx"])
    first = {os.path.basename(f): open(f, "rb").read()
             for f in glob.glob(str(runs["out"] / "r2" / "documents-*.parquet"))}
    run_cli("audit", "--input", runs["base"] / "in" / "r2" / "*.jsonl", "--output", runs["out"], "--run-id", "r2",
            "--seen-index", runs["idx"], "--quiet", "--overwrite")
    after = manifest(runs["idx"])
    assert after["entries"] == before["entries"]
    assert [p["run_id"] for p in after["parts"]] == ["r1", "r2", "r3"]  # replaced in place
    listed = {p["file"] for p in after["parts"]}
    assert {os.path.basename(f) for f in glob.glob(str(runs["idx"] / "part-*.parquet"))} == listed
    # The re-run read only what came before r2, so it wrote exactly what r2 wrote first.
    for name, data in first.items():
        assert (runs["out"] / "r2" / name).read_bytes() == data, name


def test_worker_count_does_not_change_the_seen_columns(runs, tmp_path):
    idx = tmp_path / "seen"
    shutil.copytree(runs["base"] / "seen-before-r3", idx)
    run_cli("audit", "--input", runs["base"] / "in" / "r3" / "*.jsonl", "--output", tmp_path / "out", "--run-id", "r3",
            "--seen-index", idx, "--quiet", "--partitions", "3",
            "--direct_running_mode=multi_processing", "--direct_num_workers=2")
    for f in glob.glob(str(runs["out"] / "r3" / "documents-*.parquet")):
        assert (tmp_path / "out" / "r3" / os.path.basename(f)).read_bytes() == open(f, "rb").read()


def _as_version_1(src, dst):
    """A copy of a seen index as corpus-audit wrote it before version 2: parts without the
    probe-key columns, records without a version, manifest version 1."""
    shutil.copytree(src, dst)
    m = manifest(dst)
    for part in m["parts"]:
        path = dst / part["file"]
        table = pq.read_table(path)
        old = si.part_schema(100, 25, part["run_id"], version=1)
        buf = io.BytesIO()
        pq.write_table(table.select(old.names).cast(old), buf, compression="zstd")
        path.write_bytes(buf.getvalue())
        part.pop("version")
        part.update(size=len(buf.getvalue()), sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    (dst / "seen.json").write_text(json.dumps({**m, "version": 1}))


def test_a_version_1_index_reads_as_before_and_grows_in_version_2(runs, tmp_path):
    idx = tmp_path / "seen"
    _as_version_1(runs["base"] / "seen-before-r3", idx)
    run_cli("audit", "--input", runs["base"] / "in" / "r3" / "*.jsonl", "--output", tmp_path / "out", "--run-id", "r3",
            "--seen-index", idx, "--quiet")
    r3 = glob.glob(str(runs["out"] / "r3" / "documents-*.parquet"))
    for f in r3:  # version-1 parts give the same answers as version-2 ones
        assert (tmp_path / "out" / "r3" / os.path.basename(f)).read_bytes() == open(f, "rb").read()
    m = manifest(idx)
    assert m["version"] == si.FORMAT_VERSION == 2
    assert [(p["run_id"], si.part_version(p)) for p in m["parts"]] == [("r1", 1), ("r2", 1), ("r3", 2)]
    new_part = pq.ParquetFile(idx / m["parts"][2]["file"])
    assert new_part.schema_arrow.equals(si.part_schema(100, 25, version=2), check_metadata=False)
    # The mixed index reads too: a re-crawl of r3 finds every text, first seen where r3 said.
    run_cli("audit", "--input", runs["base"] / "in" / "r3" / "*.jsonl", "--output", tmp_path / "out", "--run-id", "r4",
            "--seen-index", idx, "--quiet", "--no-detectors")
    before, again = documents(runs["out"], "r3"), documents(tmp_path / "out", "r4")
    assert again.keys() == before.keys()
    for doc_id, d in again.items():
        assert (d["seen_before"], d["first_seen_run"], d["first_seen_date"], d["text_changed_since"]) == (
            "exact", before[doc_id]["first_seen_run"], before[doc_id]["first_seen_date"],
            False if d["url"] else None), doc_id


def _copy_index(runs, tmp_path):
    idx = tmp_path / "seen"
    shutil.copytree(runs["base"] / "seen-before-r3", idx)
    return idx


def _audit(runs, tmp_path, idx, *extra):
    return run_cli("audit", "--input", runs["base"] / "in" / "r3" / "*.jsonl", "--output", tmp_path / "out",
                   "--run-id", "r9", "--seen-index", idx, "--quiet", "--no-detectors", *extra, check=False)


def _one_line_error(proc, text):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], proc.stderr[-2000:]


def test_corrupt_or_incompatible_index_stops_before_any_work(runs, tmp_path):
    idx = _copy_index(runs, tmp_path)
    _one_line_error(_audit(runs, tmp_path, idx, "--bands", "20", "--rows", "5"), "other MinHash parameters")
    m = manifest(idx)
    (idx / "seen.json").write_text(json.dumps({**m, "version": 3}))
    _one_line_error(_audit(runs, tmp_path, idx), "format version 3")
    (idx / "seen.json").write_text(json.dumps({**m, "parts": [{**m["parts"][0], "version": 3}] + m["parts"][1:]}))
    _one_line_error(_audit(runs, tmp_path, idx), "format version 3")
    (idx / "seen.json").write_text(json.dumps({**m, "parts": [{**m["parts"][0], "version": 1}] + m["parts"][1:]}))
    _one_line_error(_audit(runs, tmp_path, idx), "another schema")
    (idx / "seen.json").write_text("{truncated")
    _one_line_error(_audit(runs, tmp_path, idx), "corrupt")
    (idx / "seen.json").write_text(json.dumps(m))
    part = idx / m["parts"][0]["file"]
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 2])
    _one_line_error(_audit(runs, tmp_path, idx), "truncated or replaced")
    assert not (tmp_path / "out" / "r9" / "_SUCCESS").exists()


def test_a_tampered_part_fails_the_run_instead_of_reading_as_not_seen(runs, tmp_path):
    idx = _copy_index(runs, tmp_path)
    part = idx / manifest(idx)["parts"][0]["file"]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    part.write_bytes(bytes(data))
    proc = _audit(runs, tmp_path, idx)
    assert proc.returncode == 2  # the runner logs the worker's traceback; the last line says what to do
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("corpus-audit: seen index part") and last.endswith(
        "does not match its manifest record (size or sha256): the index is damaged"), last
    assert not (tmp_path / "out" / "r9" / "_SUCCESS").exists()
    assert [p["run_id"] for p in manifest(idx)["parts"]] == ["r1", "r2"]


def test_history_and_report_show_seen_new_and_changed_shares(runs, tmp_path):
    run_cli("history", "--root", runs["out"], "--json", tmp_path / "h.json", "--no-diversity")
    rows = {r["run_id"]: r for r in json.loads((tmp_path / "h.json").read_text())["runs"]}
    assert rows["r1"]["new_share"] == 1 and rows["r1"]["seen_before_share"] == 0
    assert rows["r2"]["seen_before_share"] == pytest.approx(35 / 55)
    assert rows["r2"]["url_changed_share"] == pytest.approx(5 / 55)
    run_cli("report", "--audit", runs["out"] / "r2", "--html", tmp_path / "r.html", "--json", tmp_path / "r.json")
    seen = json.loads((tmp_path / "r.json").read_text())["current"]["seen_pages"]
    assert (seen["exact"], seen["near"], seen["new"], seen["url_changed"]) == (30, 5, 20, 5)
    assert "Seen before" in (tmp_path / "r.html").read_text()
