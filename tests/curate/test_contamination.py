"""Benchmark contamination on real texts: items planted verbatim, lightly edited and embedded
in longer pages are found with the right document (audit) or output (index); absent items are
not; bad items are counted; bad inputs exit 2 with a message."""
import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli, write_jsonl
from corpus_audit.transforms.curate import contamination as ct

EDIT_WORDS = ["really", "quite", "new", "very", "often"]


def _words(text, start, n):
    return text.split(" ")[start:start + n]


def _edit(words, rng, k=2):
    """Replace k words, spread over the item (a light paraphrase)."""
    words = list(words)
    for j in range(k):
        pos = (j * 2 + 1) * len(words) // (2 * k) + rng.randrange(-3, 4)
        words[pos] = rng.choice(EDIT_WORDS)
    return words


@pytest.fixture(scope="module")
def planted(real_texts, tmp_path_factory):
    """Two benchmarks (QA format and plain text) whose items are planted in a crawl and in a
    set of model outputs, plus absent items, too-short items and bad lines."""
    rng = random.Random(11)
    texts = list(real_texts)
    rng.shuffle(texts)
    item_src, hosts, fillers = texts[:80], texts[80:200], texts[200:500]
    work = tmp_path_factory.mktemp("contamination")

    # Items: 40 QA items (question 70 words + answer 30 words from one text), 40 plain items.
    qa, plain = [], []
    for i, t in enumerate(item_src):
        if i < 40:
            qa.append({"id": f"qa-{i}", "question": " ".join(_words(t, 0, 70)),
                       "choices": ["yes", "no"], "answer": " ".join(_words(t, 70, 30))})
        else:
            plain.append({"id": f"pt-{i}", "text": " ".join(_words(t, 10, 110))})
    short = [{"id": "short-1", "question": "What is the capital of France?", "answer": "Paris"},
             {"id": "short-2", "text": " ".join(_words(item_src[0], 0, 9))}]
    bad_lines = ['{"id": "broken", "question": ', json.dumps({"id": "nofield", "label": 3}),
                 json.dumps({"id": "empty", "text": "   "}), json.dumps(qa[0]), json.dumps([1, 2])]
    write_jsonl(work / "qa_bench.jsonl.gz", qa + short[:1] + bad_lines)
    pq.write_table(pa.Table.from_pylist(plain + short[1:]), work / "plain_bench.parquet")

    def item_words(x):
        return " ".join(ct.item_text(x)[0].split()).split(" ")

    items = qa + plain
    # Planted (index 0..59 of items, three kinds in turn); items 60..79 stay absent.
    crawl, outputs, truth = [], [], {}
    for i, x in enumerate(items[:60]):
        kind = ("verbatim", "edited", "embedded")[i % 3]
        w = item_words(x)
        if kind == "edited":
            w = _edit(w, rng)
        if kind == "embedded":  # the item is about a third of a longer page
            host = hosts[i].split(" ")
            body = " ".join(host[:120] + w + host[120:240])
        else:
            body = "Home | News | Contact. " + " ".join(w) + " Share this page. Sign up for our newsletter."
        doc_id = f"doc-{i:03d}"
        crawl.append({"id": doc_id, "url": f"https://site{i % 4}.example.com/p/{i}", "text": body})
        outputs.append({"id": f"out-{i:03d}", "model": f"model-{i % 2}", "text": body})
        truth[x["id"]] = (doc_id, f"site{i % 4}.example.com", f"out-{i:03d}", f"model-{i % 2}", kind)
    # A model output that is exactly one item: a near copy for MinHash.
    outputs.append({"id": "out-exact", "model": "model-x", "text": ct.item_text(items[3])[0]})
    for j, t in enumerate(fillers):
        crawl.append({"id": f"fill-{j:03d}", "url": f"https://filler{j % 7}.example.org/{j}", "text": t})
        if j < 100:
            outputs.append({"id": f"fill-out-{j:03d}", "model": "model-f", "text": t})
    rng.shuffle(crawl)
    write_jsonl(work / "crawl.jsonl", crawl)
    write_jsonl(work / "outputs.jsonl", outputs)
    run_cli("audit", "--input", work / "crawl.jsonl", "--output", work / "audits", "--run-id", "r",
            "--quiet", "--no-detectors")
    run_cli("index", "build", "--input", work / "outputs.jsonl", "--index", work / "idx", "--quiet")
    absent = {x["id"] for x in items[60:]}
    return work, truth, absent


def _run(work, against, name, *extra):
    out = work / f"{name}.json"
    proc = run_cli("contamination", "--benchmark", str(work / "*_bench.*"), "--against", against,
                   "--json", out, "--quiet", *extra)
    return proc, json.loads(out.read_text())


@pytest.fixture(scope="module")
def against_audit(planted):
    work, *_ = planted
    return _run(work, work / "audits", "audit")  # the root: its newest run is used


@pytest.fixture(scope="module")
def against_index(planted):
    work, *_ = planted
    return _run(work, work / "idx", "index")


def test_planted_items_are_found_in_the_audit_with_their_document(planted, against_audit):
    _, truth, absent = planted
    proc, report = against_audit
    by_id = {r["item_id"]: r for r in report["items"]}
    for item_id, (doc_id, domain, _, _, kind) in truth.items():
        r = by_id[item_id]
        assert r["contaminated"], (item_id, kind, r)
        assert r["match"]["doc_id"] == doc_id and r["match"]["domain"] == domain, (item_id, r)
        assert r["containment"] >= (0.99 if kind != "edited" else 0.6), (item_id, kind, r["containment"])
    for item_id in absent:
        assert not by_id[item_id]["contaminated"] and by_id[item_id]["containment"] < 0.2, by_id[item_id]
    assert report["against"]["rows_scanned"] == 360
    qa = report["benchmarks"]["qa_bench"]
    assert qa["items"] == 41 and qa["checked"] == 40 and qa["too_short"] == 1
    assert qa["contaminated"] == sum(1 for i in truth if i.startswith("qa-"))
    assert qa["bad_items_by_reason"] == {"duplicate_id": 1, "malformed_json": 1, "missing_text": 1,
                                         "empty_text": 1, "not_an_object": 1}
    assert by_id["short-1"]["status"] == "too_short" and by_id["short-1"]["containment"] is None
    plain = report["benchmarks"]["plain_bench"]
    assert plain["contaminated"] == 20 and plain["checked"] == 40 and plain["too_short"] == 1
    assert abs(plain["share"] - 0.5) < 1e-9
    assert dict(map(tuple, qa["top_domains"]))["site0.example.com"] >= 9
    # The table on stdout.
    assert "qa_bench" in proc.stdout and "plain_bench" in proc.stdout and "50.0%" in proc.stdout


def test_planted_items_are_found_in_known_outputs_with_their_model(planted, against_index):
    _, truth, absent = planted
    _, report = against_index
    by_id = {r["item_id"]: r for r in report["items"]}
    assert report["params"]["ngram_size"] == 8 and report["params"]["ngram_sample"] == 8
    checked = {i for i in truth if by_id[i]["status"] == "checked"}
    assert len(checked) >= 55  # 100-110 word items: ~12 sampled n-grams each
    for item_id in checked:
        _, _, out_id, model, kind = truth[item_id]
        r = by_id[item_id]
        assert r["contaminated"], (item_id, kind, r)
        assert r["match"]["output_id"] == out_id and r["match"]["model"] == model, (item_id, r)
    for item_id in absent:
        r = by_id[item_id]
        assert not r["contaminated"] and r["near_copy"] is None, r
    # Items too short for sampled n-grams are reported as such, never guessed.
    for r in report["items"]:
        if r["ngrams"] < ct.MIN_NGRAMS:
            assert r["status"] == "too_short" and r["containment"] is None and not r["contaminated"]
    assert by_id["short-1"]["status"] == "too_short"
    # The output that is exactly an item is its near copy.
    exact_item = [i for i, t in truth.items() if t[2] == "out-003"][0]
    assert by_id[exact_item]["near_copy"]["output_id"] in ("out-exact", "out-003")
    assert by_id[exact_item]["similarity"] >= 0.5
    top = dict(map(tuple, report["benchmarks"]["plain_bench"]["top_models"]))
    assert set(top) <= {"model-0", "model-1", "model-x"} and sum(top.values()) >= 18


def test_same_input_gives_identical_json(planted, against_audit):
    work, *_ = planted
    _, first = against_audit
    _, again = _run(work, work / "audits" / "r", "audit-again", "--direct_running_mode=multi_processing",
                    "--direct_num_workers=2")
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_threshold_and_ngram_size_change_the_verdict(planted, against_audit):
    work, truth, _ = planted
    _, report = _run(work, work / "audits", "audit-strict", "--threshold", "0.95", "--ngram-size", "13")
    assert report["params"]["ngram_size"] == 13
    by_id = {r["item_id"]: r for r in report["items"]}
    edited = [i for i, t in truth.items() if t[4] == "edited"]
    verbatim = [i for i, t in truth.items() if t[4] != "edited"]
    assert all(by_id[i]["contaminated"] for i in verbatim)
    assert not any(by_id[i]["contaminated"] for i in edited)  # 2 edits remove > 5 % of 13-grams


def test_bad_inputs_exit_2_with_a_message(planted, tmp_path):
    work, *_ = planted

    def fails(*args):
        proc = run_cli("contamination", *args, "--quiet", check=False)
        assert proc.returncode == 2, proc.stderr
        return proc.stderr

    assert "no input files match" in fails("--benchmark", tmp_path / "nothing*.jsonl", "--against", work / "idx")
    empty = tmp_path / "empty.jsonl"
    write_jsonl(empty, ['{"id": 1}', "not json", ""])
    err = fails("--benchmark", empty, "--against", work / "idx")
    assert "no usable benchmark items" in err and "malformed_json 1" in err and "missing_text 1" in err
    bench = str(work / "qa_bench.jsonl.gz")
    (tmp_path / "partial" / "r1").mkdir(parents=True)
    (tmp_path / "partial" / "r1" / "documents-00000-of-00001.parquet").write_bytes(b"PAR1")
    err = fails("--benchmark", bench, "--against", tmp_path / "partial")
    assert "no complete audit run" in err
    err = fails("--benchmark", bench, "--against", tmp_path / "partial" / "r1")
    assert "_SUCCESS" in err and "interrupted" in err
    (tmp_path / "notanindex").mkdir()
    assert "not a known-output index" in fails("--benchmark", bench, "--against", tmp_path / "notanindex")
    assert "no such directory" in fails("--benchmark", bench, "--against", tmp_path / "missing")
    assert "--threshold" in fails("--benchmark", bench, "--against", work / "idx", "--threshold", "0")


# ------------------------------------------------------------------ pure cores


def test_item_text_reads_common_eval_formats():
    mmlu = {"question": "Which gas do plants absorb?", "choices": ["oxygen", "carbon dioxide"], "answer": 1}
    assert ct.item_text(mmlu) == ("Which gas do plants absorb?\noxygen\ncarbon dioxide", ("question", "choices"))
    arc = {"question": "Q?", "choices": {"text": ["a b", "c"], "label": ["A", "B"]}, "answerKey": "A"}
    assert ct.item_text(arc)[0] == "Q?\na b\nc"
    squad = {"context": "Ctx.", "question": "Q?", "answers": {"text": ["ans"], "answer_start": [3]}}
    assert ct.item_text(squad) == ("Ctx.\nQ?\nans", ("context", "question", "answers"))
    assert ct.item_text({"text": "plain", "question": "ignored"}) == ("plain", ("text",))
    for record, reason in (({"text": 5}, "bad_field_type"), ({"text": " "}, "empty_text"),
                           ({"label": 1}, "missing_text"), ({"question": {"x": object()}}, "bad_field_type")):
        with pytest.raises(ValueError) as exc:
            ct.item_text(record)
        assert exc.value.args[0] == reason
    assert ct.benchmark_name("gs://b/evals/mmlu.test.jsonl.gz") == "mmlu.test"
    assert ct.benchmark_name("x/arc.parquet") == "arc"
    assert ct.parse_record({"benchmark": "gsm8k", "question": "q"}, "file", "f:1", "file:1").benchmark == "gsm8k"


def test_scan_counts_shared_ngrams_and_names_the_best_document(real_texts):
    spec = ct.NgramSpec(ngram_size=8)
    items = [ct.Item("b", "i0", "f:1", ("text",), " ".join(_words(real_texts[0], 0, 40))),
             ct.Item("b", "i1", "f:2", ("text",), " ".join(_words(real_texts[1], 0, 40)))]
    bench = ct.BenchmarkNgrams(items, spec)
    half = " ".join(_words(real_texts[0], 0, 27))  # the first 20 of i0's 33 8-grams
    docs = [real_texts[5], half, "intro " + items[0].text + " outro", real_texts[6]]
    refs = [(f"d{i}", None, None) for i in range(len(docs))]
    hashes, owners = ct.doc_ngrams(docs, spec)
    ev = ct.scan(bench, hashes, owners, refs, threshold=0.5)
    assert ev.best == {0: (33, ("d2", None, None))} and ev.matching == {0: 2}
    share = ct.containment(bench, ev.found)
    assert share[0] == 1.0 and share[1] == 0.0
    # Merging in any order gives the same evidence; ties go to the smallest ref.
    parts = [ct.scan(bench, *ct.doc_ngrams([d], spec), [r], 0.5) for d, r in zip(docs, refs)]
    parts.append(ct.scan(bench, *ct.doc_ngrams([items[0].text], spec), [("a-first", None, None)], 0.5))
    fwd, rev = ct.Evidence(), ct.Evidence()
    for p in parts:
        fwd.merge(p)
    for p in reversed(parts):
        rev.merge(p)
    assert fwd.best == rev.best == {0: (33, ("a-first", None, None))}
    assert np.array_equal(fwd.found, rev.found) and fwd.matching == rev.matching == {0: 3}
