"""Detectors, ensemble, model I/O and provenance (corpus_audit.transforms.detectors)."""
import datetime as dt
import hashlib
import os

import numpy as np
import pytest

from conftest import DETECT
from corpus_audit.pipelines import train as T
from corpus_audit.transforms.detectors import (DETECTOR_NAMES, decide_provenance,
                                               load_default_model, load_model, normalize_text, save_model)
from corpus_audit.transforms.detectors.ensemble import NEAR_COPY_FLOOR, apply_evidence



def _bucket(group):
    return int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) % 10


@pytest.fixture(scope="module")
def split():
    """Chat-model and human English rows; groups in buckets 0-5 train, 6-9 test (capped)."""
    rows, _ = T.load_rows([DETECT])
    keep = [r for r in rows if r["language"] == "en" and (r["label"] == "human" or r["generator"] in T.CHAT_GENERATORS)]
    tr = [r for r in keep if _bucket(r["group"]) < 6]
    te = [r for r in keep if _bucket(r["group"]) >= 6]
    rng = np.random.default_rng(0)
    tr = [tr[i] for i in sorted(rng.choice(len(tr), size=min(len(tr), 1500), replace=False))]
    te = [te[i] for i in sorted(rng.choice(len(te), size=min(len(te), 600), replace=False))]
    return tr, te


@pytest.fixture(scope="module")
def small_model(split):
    tr, _ = split
    y = np.array([r["label"] == "machine" for r in tr], dtype=int)
    model, _ = T.fit_model([r["text"] for r in tr], y, [r["group"] for r in tr], seed=7, n_inner=3)
    model.meta["detector_version"] = "test"
    return model


@pytest.fixture(scope="module")
def sample_texts(split):
    return [r["text"] for r in split[1][:40]]


def test_small_model_separates_held_out_groups(small_model, split):
    from sklearn.metrics import roc_auc_score

    _, te = split
    y = np.array([r["label"] == "machine" for r in te], dtype=int)
    assert 0 < y.sum() < len(y)
    p = small_model.predict([r["text"] for r in te])
    assert roc_auc_score(y, p) > 0.75
    assert p[y == 1].mean() > p[y == 0].mean()


def test_save_load_round_trip_identical_scores(small_model, sample_texts, tmp_path):
    save_model(str(tmp_path), small_model)
    loaded = load_model(str(tmp_path))
    assert loaded.detector_names == small_model.detector_names == DETECTOR_NAMES
    assert loaded.detector_version == "test"
    a, b = small_model.score_detectors(sample_texts), loaded.score_detectors(sample_texts)
    for k in DETECTOR_NAMES:
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(small_model.likelihood(a), loaded.likelihood(b))


def test_model_files_load_without_pickle(small_model, tmp_path):
    save_model(str(tmp_path), small_model)
    with np.load(os.path.join(tmp_path, "arrays.npz"), allow_pickle=False) as z:
        for k in z.files:
            assert z[k].dtype != object
    import json

    with open(os.path.join(tmp_path, "model.json")) as f:
        doc = json.load(f)
    assert doc["detector_names"] == DETECTOR_NAMES and doc["seed"] == 7


def test_scores_in_unit_interval_and_batched_equals_single(small_model, sample_texts):
    batch = small_model.score_detectors(sample_texts)
    pb = small_model.likelihood(batch)
    for k, v in batch.items():
        assert v.shape == (len(sample_texts),) and np.all((v >= 0) & (v <= 1)), k
    assert np.all((pb >= 0) & (pb <= 1))
    for i in range(0, len(sample_texts), 7):
        one = small_model.score_detectors([sample_texts[i]])
        for k in DETECTOR_NAMES:
            assert one[k][0] == pytest.approx(batch[k][i], abs=1e-9)
        assert small_model.likelihood(one)[0] == pytest.approx(pb[i], abs=1e-9)


def test_whitespace_layout_does_not_change_scores(small_model, sample_texts):
    t = sample_texts[0]
    variants = [t, "\n\n  " + t.replace(". ", ".\n\n") + "  \n", t.replace(" ", "  ")]
    s = small_model.predict(variants)
    assert np.ptp(s) < 1e-12


def test_empty_short_and_binary_input_do_not_crash(small_model):
    odd = ["", "   \n\t ", "hi", "Ok.", b"\x00\xff\xfe\x01binary\x80", None, "\x00\x01\x02", 12345,
           "😀" * 50, "a" * 20000, "\u200b\u200b"]
    s = small_model.score_detectors(odd)
    p = small_model.likelihood(s)
    assert p.shape == (len(odd),) and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    for k in DETECTOR_NAMES:
        assert s[k][0] == pytest.approx(small_model.prior)  # empty → prior
    assert small_model.score_detectors([])["classifier"].shape == (0,)
    assert small_model.likelihood(small_model.score_detectors([])).shape == (0,)


def test_training_is_reproducible(split):
    from corpus_audit.transforms.detectors.model_io import model_state

    tr = split[0][:400]
    y = np.array([r["label"] == "machine" for r in tr], dtype=int)
    args = ([r["text"] for r in tr], y, [r["group"] for r in tr])
    a = model_state(T.fit_model(*args, seed=3, n_inner=3)[0])
    b = model_state(T.fit_model(*args, seed=3, n_inner=3)[0])
    assert a[0]["array_sha256"] == b[0]["array_sha256"]


def test_default_model_ships_and_loads():
    m = load_default_model()
    assert m.detector_names == DETECTOR_NAMES
    assert m.detector_version.startswith("1.")
    d = os.path.dirname(os.path.abspath(__import__("corpus_audit.transforms.detectors.model_io",
                                                   fromlist=["x"]).__file__))
    size = sum(os.path.getsize(os.path.join(d, "default_model", f)) for f in ("model.json", "arrays.npz"))
    assert size < 5_000_000
    chat = ("Sure, here's a short overview. In conclusion, it's important to note that regular exercise "
            "plays a crucial role in maintaining overall health. Additionally, it fosters a deeper "
            "understanding of one's body. I hope this helps! Let me know if you have any other questions.")
    p = m.predict([chat, ""])
    assert p[0] > 0.5 and 0 <= p[1] <= 1


def test_essay_scaffolding_alone_scores_below_one_chat_tell():
    """Learners are taught "Firstly," and "In conclusion,": an essay built on them must read as
    less machine-like than a single chat-model tell, and more than a text with no phrase."""
    from corpus_audit.transforms.detectors.phrases import PhrasesDetector

    det = PhrasesDetector()
    essay = ("Firstly, young people should travel before university. Secondly, they learn to manage "
             "money. Moreover, they meet people of other countries. Furthermore, it costs less than "
             "people think. In conclusion, a year of travel is worth more than a year of study.")
    tell = "The sample was small, and it is important to note that the results may not hold elsewhere."
    plain = "The sample was small, and the results may not hold elsewhere."
    s_essay, s_tell, s_plain = det.predict(det.featurize([essay, tell, plain]))
    assert s_plain < s_essay < s_tell


def test_normalize_text():
    assert normalize_text("  a\n\nb\t c  ") == "a b c"
    assert normalize_text("\u201cquoted\u201d it\u2019s") == "\"quoted\" it's"
    assert normalize_text(None) == "" and normalize_text(b"x\xff y") == "x y"


# ------------------------------------------------------------------ ensemble evidence rules
def test_near_copy_override_raises_to_floor():
    p = np.array([0.1, 0.5, 0.99])
    out = apply_evidence(p, known_similarity=np.array([0.6, 0.2, 0.9]))
    assert out[0] == NEAR_COPY_FLOOR and out[1] == 0.5 and out[2] == 0.99


def test_containment_mixes_toward_floor_and_missing_is_neutral():
    p = np.array([0.1, 0.1, 0.1, 0.1])
    out = apply_evidence(p, known_containment=np.array([0.5, 0.2, np.nan, 1.0]))
    assert out[0] == pytest.approx(0.5 * 0.97 + 0.5 * 0.1)
    assert out[1] == 0.1 and out[2] == 0.1 and out[3] == pytest.approx(0.97)
    np.testing.assert_array_equal(apply_evidence(p), p)


def test_model_likelihood_applies_evidence():
    m = load_default_model()
    s = {k: np.array([0.01, 0.01]) for k in m.detector_names}
    base = m.likelihood(s)
    ev = m.likelihood(s, known_similarity=np.array([0.8, 0.0]), known_containment=None,
                      cluster_size=np.array([1, 5]))
    assert ev[0] >= 0.97 and ev[1] == pytest.approx(base[1])


# ------------------------------------------------------------------ provenance decision table
LONG = 200


def _one(p=0.5, **kw):
    kw.setdefault("n_words", LONG)
    prov, reason = decide_provenance(np.array([p]), **kw)
    return prov[0], reason[0]


def test_rule_too_short():
    assert _one(0.99, n_words=20, known_match_kind=["near_copy"]) == ("unknown", "too_short")


def test_rule_language_names_the_code():
    assert _one(0.99, language=["de"]) == ("unknown", "language:de")
    assert _one(0.99, language="ru", known_match_kind=["near_copy"]) == ("unknown", "language:ru")
    assert _one(0.99, language=[None]) == ("unknown", "language:und")  # no letter to identify
    assert _one(0.99, language=["en"]) == ("synthetic", "detector_high") == _one(0.99)
    assert _one(0.99, n_words=20, language=["zh"]) == ("unknown", "too_short")


def test_rule_known_output_copy():
    assert _one(0.05, known_match_kind=["near_copy"]) == ("synthetic", "known_output_copy")


def test_rule_generator_meta_tag():
    assert _one(0.2, html_generator=["Jasper AI writer 2.1"]) == ("synthetic", "generator_meta_tag")
    assert _one(0.2, html_generator=["WordPress 6.4"]) == ("unknown", "uncertain")


def test_rule_domain_deny_and_allow_suffix_match():
    assert _one(0.2, domain=["blog.spam.example"], deny_domains={"spam.example"}) == ("synthetic", "domain_denylist")
    assert _one(0.8, domain=["news.example.com"], allow_domains={"example.com"}) == ("human", "domain_allowlist")
    assert _one(0.5, domain=["badexample.com"], allow_domains={"example.com"}) == ("unknown", "uncertain")


def test_rule_partial_known_output():
    assert _one(0.5, known_match_kind=["contains"]) == ("human_edited", "partial_known_output")
    assert _one(0.5, known_containment=[0.4]) == ("human_edited", "partial_known_output")


def test_rule_crawled_before_chatgpt():
    assert _one(0.3, crawl_date=[dt.datetime(2019, 5, 1)]) == ("human", "crawled_before_chatgpt")
    assert _one(0.3, crawl_date=[dt.datetime(2024, 5, 1)]) == ("unknown", "uncertain")
    assert _one(0.85, crawl_date=[dt.datetime(2019, 5, 1)]) == ("synthetic", "detector_high")


def test_rule_detector_high_low_uncertain():
    assert _one(0.85) == ("synthetic", "detector_high")
    assert _one(0.005) == ("human", "detector_low")
    assert _one(0.5) == ("unknown", "uncertain") == _one(0.05)


def test_provenance_is_vectorised_and_handles_missing():
    prov, reason = decide_provenance(np.array([0.95, 0.05, np.nan]), n_words=[100, 100, 100],
                                     crawl_date=[None, "2020-01-01", None], domain=[None, "", "x.org"])
    assert list(prov) == ["synthetic", "human", "unknown"]
    assert list(reason) == ["detector_high", "crawled_before_chatgpt", "uncertain"]
    assert decide_provenance(np.zeros(0))[0].shape == (0,)


def test_nonneg_stack_drops_inverted_detector():
    import numpy as np
    from corpus_audit.transforms.detectors.ensemble import Ensemble

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.clip(0.5 + 0.3 * (y - 0.5) + 0.1 * rng.standard_normal(400), 0.01, 0.99)
    bad = 1 - good  # anti-correlated on these sources
    ens = Ensemble(["a", "b"], nonneg=True).fit({"a": good, "b": bad}, y, np.arange(400))
    assert (ens.coef >= 0).all() and ens.coef[0] > 0
    params, arrays = ens.get_state()
    again = Ensemble.from_state(params, arrays)
    assert again.nonneg and np.allclose(again.predict({"a": good, "b": bad}), ens.predict({"a": good, "b": bad}))


def test_sign_bounded_head_matches_sklearn_when_free_and_zeroes_a_contrary_feature():
    from corpus_audit.transforms.detectors.base import LinearHead

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    X = np.column_stack([y + rng.standard_normal(600),       # helps, positive
                         -y + rng.standard_normal(600),      # helps, negative
                         rng.standard_normal(600)])          # noise
    free = LinearHead().fit(X, y)
    assert np.allclose(LinearHead().fit(X, y, signs=[0, 0, 0]).coef, free.coef, atol=1e-3)
    bounded = LinearHead().fit(X, y, signs=[1, 1, 0])  # the second feature's known direction is wrong here
    assert bounded.coef[0] > 0 and bounded.coef[1] == 0.0
    assert np.allclose(LinearHead().fit(X, y, signs=[1, -1, 0]).coef, free.coef, atol=1e-3)


def test_equal_weight_head_trusts_every_statistic_alike_and_fits_only_its_scale():
    from corpus_audit.transforms.detectors.base import LinearHead

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 800)
    X = np.column_stack([3 * y + rng.standard_normal(800),     # strong on these rows
                         -0.3 * y + rng.standard_normal(800),  # weak, negative direction
                         rng.standard_normal(800)])            # noise here
    fitted = LinearHead().fit(X, y, signs=[1, -1, 1])
    assert abs(fitted.coef[0]) > 3 * abs(fitted.coef[1])      # a fitted head follows these rows
    head = LinearHead().fit(X, y, signs=[1, -1, 1], equal=True)
    assert np.allclose(np.abs(head.coef), abs(head.coef[0])) and head.coef[0] > 0
    assert np.array_equal(np.sign(head.coef), [1, -1, 1])
    Z = (X - head.mean) / head.scale
    order = np.argsort(Z @ np.array([1.0, -1.0, 1.0]), kind="stable")
    assert np.all(np.diff(head.predict(X)[order]) >= 0)  # ranks by the signed sum, nothing else
    flipped = LinearHead().fit(X, 1 - y, signs=[1, -1, 1], equal=True)
    assert np.all(flipped.coef == 0.0)  # data against every direction: no evidence, never inverted


def test_lm_head_never_weights_a_statistic_against_its_zero_shot_direction(split):
    from corpus_audit.transforms.detectors.model_io import LM_FEATURES

    tr = split[0][:400]
    y = np.array([r["label"] == "machine" for r in tr], dtype=int)
    rng = np.random.default_rng(2)
    lm = {k: rng.standard_normal(len(y)) for k in LM_FEATURES}
    lm["lm_logprob"] += 2 * y
    lm["lm_curvature"] += 2 * y
    lm["lm_entropy"] += 1 * y  # machine text with *higher* entropy: a training-source quirk
    model, _ = T.fit_model([r["text"] for r in tr], y, [r["group"] for r in tr], seed=1, n_inner=3, lm=lm)
    coef = model.lm_head.coef  # on the standardised statistics
    assert np.array_equal(np.sign(coef), [T.LM_DIRECTION[k] for k in LM_FEATURES])
    assert np.allclose(np.abs(coef), abs(coef[0]))


def test_a_model_reads_the_lm_statistics_its_head_was_fitted_on(split, tmp_path):
    """A statistic added after a model was trained (the gains, in 1.7.0) must not break it: the
    model names the statistics of its LM head and scores those, whatever else the scorer gives."""
    from corpus_audit.transforms.detectors.base import LinearHead
    from corpus_audit.transforms.detectors.model_io import DetectorModel, LM_FEATURES, model_state

    tr = split[0][:400]
    y = np.array([r["label"] == "machine" for r in tr], dtype=int)
    rng = np.random.default_rng(3)
    lm = {k: rng.standard_normal(len(y)) + 2 * y for k in LM_FEATURES}
    model, _ = T.fit_model([r["text"] for r in tr], y, [r["group"] for r in tr], seed=1, n_inner=3, lm=lm)
    old = LM_FEATURES[:6]
    h = model.lm_head
    six = DetectorModel(model.detectors, model.ensemble, model.meta,
                        LinearHead(h.mean[:6], h.scale[:6], h.coef[:6], h.intercept), old)
    assert model_state(six)[0]["detectors"]["lm"]["features"] == list(old)
    six = load_model(save_model(str(tmp_path / "six"), six))
    assert six.lm_features == old
    got = six.score_lm(dict(lm, lm_gain=np.full(len(y), np.nan)))  # a column it does not know: ignored
    want = six.lm_head.predict(np.column_stack([lm[k] for k in old]))
    assert np.all(np.isfinite(got)) and np.allclose(got, want)
    assert np.isnan(model.score_lm(dict(lm, lm_gain=np.full(len(y), np.nan)))).all()  # the full head needs it


def test_masked_classifier_hides_content_words():
    from corpus_audit.transforms.detectors.classifier import ClassifierDetector, mask_text

    m = mask_text("The Photosynthesis of 42 plants, and it's important.")
    assert "photosynthesis" not in m.lower() and "plants" not in m and m.startswith("the ")
    d = ClassifierDetector(log2_features=10, mask=True)
    assert d.featurize(["Quantum chromodynamics rules."]).nnz > 0
    p, _ = d.get_state()
    assert p["mask"] is True


def test_token_batch_shares_one_pass_and_hashes_words_case_blind():
    from corpus_audit.transforms.detectors.base import tokenize_batch, word_hash_array

    texts = ["The cat's 'toy' cost 12 dollars.", "", "THE Cat", "x" * 10]
    tb = tokenize_batch(texts)
    words = [bytes(tb.B[s:e]).decode() for s, e in zip(tb.starts, tb.ends)]
    assert words == ["The", "cat's", "toy", "cost", "12", "dollars", "THE", "Cat", "x" * 10]
    assert list(tb.n) == [6, 0, 2, 1] and list(tb.tdoc) == [0] * 6 + [2, 2, 3]
    assert list(tb.digit) == [False] * 4 + [True] + [False] * 4
    assert tb.h[0] == tb.h[6] == word_hash_array(["the"])[0] and tb.h[1] == word_hash_array(["cat's"])[0]


def test_word_hashes_are_the_same_when_threads_build_the_hash_tables_at_once():
    """The threaded runner's workers share the module: the first tokenisers may build the hash
    tables concurrently, and none may see them half-built."""
    import threading

    from corpus_audit.transforms.detectors import base

    texts = ["The cat's 'toy' cost 12 dollars.", "THE Cat"]
    want = base.tokenize_batch(texts).h
    for _ in range(5):
        base._pow_tables.cache_clear()
        start, got, errors = threading.Barrier(8), [], []

        def tokenise():
            start.wait()
            try:
                got.append(base.tokenize_batch(texts).h)
            except Exception as exc:  # a half-built table raised KeyError here
                errors.append(exc)

        threads = [threading.Thread(target=tokenise) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(got) == 8 and all(np.array_equal(h, want) for h in got), errors


def test_batched_stylometry_and_wordfreq_equal_one_text_at_a_time(sample_texts):
    from corpus_audit.transforms.detectors.stylometry import StylometryDetector, stylometry_features
    from corpus_audit.transforms.detectors.wordfreq_stats import WordfreqDetector

    texts = [normalize_text(t) for t in sample_texts[:20]] + ["", "!!!", "One. Two", "A b c " * 40]
    S = StylometryDetector().featurize(texts)
    assert np.allclose(S, np.vstack([stylometry_features(t) for t in texts]))
    assert not S[-4].any() and not S[-3].any()  # no tokens: all zero
    w = WordfreqDetector()
    W = w.featurize(texts)
    assert np.allclose(W, np.vstack([w.featurize([t]) for t in texts]))


def test_human_reference_ensemble_is_monotone_and_round_trips():
    from corpus_audit.transforms.detectors.ensemble import Ensemble

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    a = np.clip(0.5 + 0.25 * (y - 0.5) + 0.15 * rng.standard_normal(600), 0.001, 0.999)
    b = np.round(np.clip(0.3 + 0.2 * y + 0.1 * rng.standard_normal(600), 0, 1), 1)  # ties, like phrases
    ens = Ensemble(["a", "b"], method="human_reference").fit({"a": a, "b": b}, y, np.arange(600))
    assert list(ens.coef) == [1.0, 1.0]
    grid = np.linspace(0, 1, 51)
    up = ens.raw({"a": grid, "b": np.full(51, 0.3)})
    assert (np.diff(up) >= 0).all() and up[-1] > up[0]
    p = ens.predict({"a": a, "b": b})
    assert ((p >= 0) & (p <= 1)).all()
    params, arrays = ens.get_state()
    again = Ensemble.from_state(params, arrays)
    assert again.method == "human_reference" and np.allclose(again.predict({"a": a, "b": b}), p)


def test_evaluate_reports_loso_share_errors_and_rules_with_the_shipped_model(tmp_path):
    """Leave-one-source-out over two sources, with the shipped model (which has the LM family)
    scored on rows that have no LM statistics."""
    import gzip
    import json

    by_source = {}
    for line in gzip.open(DETECT, "rt"):
        r = json.loads(line)
        if r["label"] in ("human", "machine") and len(by_source.setdefault((r["source"], r["label"]), [])) < 150:
            by_source[(r["source"], r["label"])].append(line)
    path = tmp_path / "small.jsonl"
    path.write_text("".join(line for rows in by_source.values() for line in rows))
    report = tmp_path / "EVALUATION.md"
    res = T.evaluate([str(path)], report_path=str(report))
    text = report.read_text()
    assert "## Crawl share estimate on held-out sources" in text and "## leave-one-source-out" in text
    assert {r["true_share"] for r in res["share"]} == {0.0, 0.05, 0.2, 0.5}
    rules = res["schemes"]["leave-one-source-out"]["rules"]["ensemble_fast"]
    assert set(rules["synthetic"]) == {0.5, 0.8, 0.9, 0.95} and all(0 <= e <= 1 for e, _ in rules["human"].values())
    assert "generators: base model" in res["schemes"]["leave-one-source-out"]["metrics"]
