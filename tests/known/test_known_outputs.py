"""Known-output matching on real texts: verbatim copies, light edits and pasted passages are
found and named; human documents are not flagged; bad indexes fail before any work."""
import gzip
import json
import random

import pytest

from conftest import DETECT, read_audit, read_documents, run_cli, write_jsonl

BOILERPLATE = ("Share this article on social media. Sign up for our newsletter to get the best "
               "stories in your inbox every morning. Advertisement.")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Outputs from some groups; crawl = copies of them + human texts of other groups."""
    rows = [json.loads(line) for line in gzip.open(DETECT, "rt")]
    rows = [r for r in rows if r["license"].startswith("MIT") and r["label"] in ("human", "machine")
            and 120 <= len(r["text"].split()) <= 700]
    rng = random.Random(5)
    rng.shuffle(rows)
    machine_groups, outputs = set(), []
    for r in rows:
        if r["label"] == "machine" and r["group"] not in machine_groups and len(outputs) < 400:
            machine_groups.add(r["group"])
            outputs.append(r)
    seen, humans = set(), []
    for r in rows:
        if r["label"] == "human" and r["group"] not in machine_groups and r["group"] not in seen:
            seen.add(r["group"])
            humans.append(r)
    work = tmp_path_factory.mktemp("known")
    write_jsonl(work / "outputs.jsonl.gz", [{"id": o["id"], "text": o["text"], "model": o["generator"]}
                                            for o in outputs])
    crawl, truth = [], {}
    for i, o in enumerate(outputs[:180]):
        words = " ".join(o["text"].split()).split(" ")
        kind = ("verbatim", "edited", "pasted")[i % 3]
        if kind == "edited":
            for j in rng.sample(range(len(words)), 4):
                words[j] = rng.choice(["really", "quite", "new", "very"])
            sentences = " ".join(words).split(". ")
            if len(sentences) > 3:
                del sentences[rng.randrange(1, len(sentences) - 1)]
            text = BOILERPLATE + " " + ". ".join(sentences)
        elif kind == "pasted":  # the output is >= 40 % of a longer human page
            host = " ".join(humans[-(i + 1)]["text"].split()).split(" ")
            block = words[: max(80, len(words))]
            cut = len(block) * 3 // 2
            text = " ".join(host[:cut // 2] + block + host[cut // 2:cut])
        else:
            text = o["text"]
        crawl.append({"id": f"copy-{i}", "text": text})
        truth[f"copy-{i}"] = o["id"]
    for h in humans[:300]:
        crawl.append({"id": h["id"], "text": h["text"]})
    rng.shuffle(crawl)
    write_jsonl(work / "crawl.jsonl", crawl)
    run_cli("index", "build", "--input", work / "outputs.jsonl.gz", "--index", work / "idx", "--quiet")
    run_cli("audit", "--input", work / "crawl.jsonl", "--output", work / "out", "--quiet",
            "--known-outputs", work / "idx")
    docs = {r["doc_id"]: r for r in read_documents(work / "out").to_pylist()}
    return work, truth, docs, {h["id"] for h in humans[:300]}


def test_copies_edits_and_pasted_passages_are_found_and_named(corpus):
    _, truth, docs, humans = corpus
    right = sum(docs[d]["known_match_id"] == o for d, o in truth.items())
    assert right / len(truth) >= 0.95, right
    flagged_humans = [d for d in humans if docs[d]["known_match_kind"] is not None]
    assert flagged_humans == []
    for d in truth:
        if docs[d]["known_match_id"]:
            assert docs[d]["known_match_model"]
    assert all(docs[d]["known_similarity"] is not None for d in docs)


def test_audit_json_counts_matches_by_model(corpus):
    work, truth, docs, _ = corpus
    known = read_audit(work / "out")["known_outputs"]
    matched = sum(1 for r in docs.values() if r["known_match_kind"])
    assert known["documents_matched"] == matched
    assert sum(known["matched_by_model"].values()) == matched
    assert set(known["matched_by_kind"]) <= {"near_copy", "contains"}
    # Only n-gram samples the index may hold were shuffled: the copies' (about a third of the
    # pages), not the human pages'.
    assert 0 < known["ngram_samples_shuffled"] < 0.6 * known["ngram_samples"]


def test_ngram_filter_has_no_false_negatives_and_few_false_positives():
    import numpy as np

    from corpus_audit.transforms.known.ngram_filter import NgramFilter

    rng = np.random.default_rng(3)
    members, others = rng.integers(0, 2**64, size=(2, 50_000), dtype=np.uint64)
    f = NgramFilter.build(np.unique(members))
    assert f.may_contain(members).all()
    assert f.may_contain(others).mean() < 0.025
    assert not NgramFilter.build(np.empty(0, dtype=np.uint64)).may_contain(others).any()


def test_ngram_filter_combiner_builds_the_filter_of_the_distinct_hashes(monkeypatch):
    import numpy as np

    from corpus_audit.transforms.known import ngram_filter
    from corpus_audit.transforms.dedup.graph import sorted_unique
    from corpus_audit.transforms.known.ngram_filter import BuildNgramFilter, NgramFilter

    rng = np.random.default_rng(4)
    hashes = rng.integers(0, 2**64, size=300_000, dtype=np.uint64)
    hashes = np.concatenate([hashes, hashes[::7]])  # duplicates, within and across accumulators
    fn = BuildNgramFilter()
    accs = [fn.create_accumulator() for _ in range(3)]
    for i, chunk in enumerate(np.array_split(hashes, 97)):
        fn.add_input(accs[i % 3], (i, (chunk, None)))
    built = fn.extract_output(fn.merge_accumulators(accs))
    assert np.array_equal(built.words, NgramFilter.build(np.unique(hashes)).words)
    assert np.array_equal(sorted_unique(hashes), np.unique(hashes))
    bits = len(built.words) * 64  # the same filter when built a window of its bits at a time
    monkeypatch.setattr(ngram_filter, "_WINDOW_BITS", bits // 8)
    assert np.array_equal(NgramFilter.build(sorted_unique(hashes)).words, built.words)
    empty = fn.extract_output(fn.merge_accumulators([fn.create_accumulator()]))
    assert np.array_equal(empty.words, NgramFilter.build(np.empty(0, dtype=np.uint64)).words)


def test_index_add_keeps_parts_and_info_reports(corpus, tmp_path):
    work, *_ = corpus
    idx = tmp_path / "idx"
    run_cli("index", "build", "--input", work / "outputs.jsonl.gz", "--index", idx, "--quiet")
    before = {p.name: p.read_bytes() for p in idx.glob("part-*.parquet")}
    extra = tmp_path / "more.jsonl"
    write_jsonl(extra, [{"id": "x1", "text": "a new output " * 40, "model": "m-new"},
                        {"id": "x2", "text": "no model here " * 10}])
    run_cli("index", "add", "--input", extra, "--index", idx, "--quiet")
    for name, data in before.items():
        assert (idx / name).read_bytes() == data
    info = json.loads(run_cli("index", "info", "--index", idx).stdout)
    assert info["entries"] == 401 and info["models"]["m-new"] == 1 and info["parts"] == 2
    assert info["size_bytes"] > 0 and info["dead_letters"] == 1
    assert info["params"]["num_perm"] == 100


def test_bad_indexes_fail_before_any_work(corpus, tmp_path):
    work, *_ = corpus
    crawl = work / "crawl.jsonl"
    out = tmp_path / "out"
    proc = run_cli("audit", "--input", crawl, "--output", out, "--known-outputs", tmp_path / "none", check=False)
    assert proc.returncode == 2 and "no index" in proc.stderr
    idx = tmp_path / "idx"
    run_cli("index", "build", "--input", work / "outputs.jsonl.gz", "--index", idx, "--quiet",
            "--shingle-size", "5")
    proc = run_cli("audit", "--input", crawl, "--output", out, "--known-outputs", idx, check=False)
    assert proc.returncode == 2 and "shingle_size" in proc.stderr
    part = next(idx.glob("part-*.parquet"))
    part.write_bytes(part.read_bytes()[:100])
    proc = run_cli("audit", "--input", crawl, "--output", out, "--known-outputs", idx, "--shingle-size", "5",
                   check=False)
    assert proc.returncode == 2 and "corrupt" in proc.stderr
    (idx / "index.json").write_text("{not json")
    proc = run_cli("audit", "--input", crawl, "--output", out, "--known-outputs", idx, check=False)
    assert proc.returncode == 2 and "corrupt" in proc.stderr
    assert not list(out.glob("*/_SUCCESS")) and not list(out.glob("*/audit.json"))


def test_raw_output_files_are_indexed_on_the_fly(corpus, tmp_path):
    work, truth, docs, _ = corpus
    out = tmp_path / "out"
    run_cli("audit", "--input", work / "crawl.jsonl", "--output", out, "--quiet",
            "--known-outputs", str(work / "outputs.jsonl.gz"))
    again = {r["doc_id"]: r["known_match_id"] for r in read_documents(out).to_pylist()}
    assert again == {d: r["known_match_id"] for d, r in docs.items()}
