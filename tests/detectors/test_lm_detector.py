"""The LM detector family (transforms/detectors/lm.py): shape, NaN policy, determinism, truncation,
and two sanity checks that the features measure predictability at all."""
import gzip
import json
import math
import random

import numpy as np
import pytest

from conftest import DETECT
from corpus_audit.transforms.detectors.base import normalize_text
from corpus_audit.transforms.detectors.lm import WARMUP_TOKENS, FEATURES, LMScorer, token_features, warmup

N = 32  # short windows keep the module at a few seconds


@pytest.fixture(scope="module")
def scorer():
    return LMScorer(n_tokens=N, n_threads=1)


@pytest.fixture(scope="module")
def human_texts():
    out = []
    with gzip.open(DETECT, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["label"] == "human" and r["language"] == "en" and len(r["text"]) > 600:
                out.append(normalize_text(r["text"]))
            if len(out) >= 5:
                break
    assert len(out) == 5
    return out


def _equal(a, b):
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_weights_load_without_the_repacking_buffers(scorer):
    """llama.cpp's AMX repack segfaults on decode on Sapphire Rapids CPUs: the scorer must turn
    extra buffer types off, and leave the library's defaults as they were after loading."""
    import llama_cpp.llama_cpp as lib

    assert scorer.llm.model_params.use_extra_bufts is False
    assert lib.llama_model_default_params().use_extra_bufts is True


def test_keys_shape_finite_and_nan(scorer, human_texts):
    texts = human_texts[:2] + ["", None, "Hi there.", 5, "   \n ", b"bytes are not text", "lone \ud800 surrogate"]
    f = scorer.features(texts)
    assert tuple(sorted(f)) == tuple(sorted(FEATURES))
    for k, v in f.items():
        assert v.dtype == np.float64 and v.shape == (len(texts),), k
        assert np.isfinite(v[:2]).all(), k
        assert np.isnan(v[2:]).all(), k
    assert (f["lm_logprob"][:2] < 0).all() and (f["lm_entropy"][:2] > 0).all()
    assert ((f["lm_rank1"][:2] <= f["lm_rank10"][:2]) & (f["lm_rank10"][:2] <= 1)).all()
    assert scorer.features([])["lm_logprob"].shape == (0,)


def test_token_features_match_direct_formulas():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 15)) * 2  # small vocab: every rank 0..14 occurs
    t = rng.integers(0, 15, size=300)
    prior = np.log(rng.dirichlet(np.ones(15)))
    got = token_features(z.astype(np.float32), t, prior)
    lp, mus, vs, ranks, ps = [], [], [], [], []
    for row, x in zip(z.astype(np.float32).astype(np.float64), t):
        p = np.exp(row) / np.exp(row).sum()
        ps.append(p)
        logp = np.log(p)
        lp.append(logp[x])
        mus.append((p * logp).sum())
        vs.append((p * logp ** 2).sum() - mus[-1] ** 2)
        ranks.append(int((logp > logp[x]).sum()))
    assert got["lm_logprob"] == pytest.approx(np.mean(lp))
    assert got["lm_entropy"] == pytest.approx(-np.mean(mus))
    assert got["lm_curvature"] == pytest.approx((np.sum(lp) - np.sum(mus)) / math.sqrt(np.sum(vs)))
    assert got["lm_rank1"] == pytest.approx(np.mean(np.array(ranks) == 0))
    assert got["lm_rank10"] == pytest.approx(np.mean(np.array(ranks) < 10))
    assert got["lm_logprob_std"] == pytest.approx(np.std(lp))
    assert got["lm_gain"] == pytest.approx(np.mean(np.array(lp) - np.log(np.mean(ps, axis=0)[t])))
    assert got["lm_gain_prior"] == pytest.approx(np.mean(np.array(lp) - prior[t]))


def test_statistics_leave_out_the_warm_up_positions(scorer, human_texts):
    """The first tokens are predicted from almost no context: a quarter of the prefix, at most
    WARMUP_TOKENS, is left out, the rule the shipped model's LM head was fitted on."""
    assert [warmup(m) for m in (8, 40, 128, 256)] == [2, 10, 32, 32] and WARMUP_TOKENS == 32
    toks = scorer.tokens(human_texts[0])
    logits, w = scorer._logits(toks), warmup(len(toks))
    got = scorer.features([human_texts[0]])
    want = token_features(logits[w:], toks[w + 1:], scorer.prior)
    assert all(got[k][0] == round(want[k], 4) for k in FEATURES), (got, want)
    assert got["lm_logprob"][0] != round(token_features(logits, toks[1:], scorer.prior)["lm_logprob"], 4)


def test_deterministic_across_scorers_and_threads(scorer, human_texts):
    a = scorer.features(human_texts)
    two = LMScorer(n_tokens=N, n_threads=2)
    _equal(a, two.features(human_texts))
    _equal(a, scorer.features(human_texts))


def test_batch_equals_one_at_a_time(scorer, human_texts):
    texts = human_texts + ["", human_texts[0]]
    batch = scorer.features(texts)
    single = [scorer.features([t]) for t in texts]
    _equal(batch, {k: np.concatenate([s[k] for s in single]) for k in batch})
    rev = scorer.features(texts[::-1])
    _equal(batch, {k: v[::-1] for k, v in rev.items()})


def test_real_text_more_likely_than_shuffled_and_repetition_is_top1(scorer, human_texts):
    rng = random.Random(0)
    shuffled = []
    for t in human_texts:
        w = t.split()
        rng.shuffle(w)
        shuffled.append(" ".join(w))
    real, shuf = scorer.features(human_texts), scorer.features(shuffled)
    assert (real["lm_logprob"] > shuf["lm_logprob"]).all(), (real["lm_logprob"], shuf["lm_logprob"])
    assert (real["lm_rank10"] > shuf["lm_rank10"]).mean() >= 0.8
    # the same words out of order: their vocabulary is the same, what their context adds is gone
    assert (real["lm_gain"] > shuf["lm_gain"]).all(), (real["lm_gain"], shuf["lm_gain"])
    assert (real["lm_gain_prior"] > shuf["lm_gain_prior"]).all(), (real["lm_gain_prior"], shuf["lm_gain_prior"])
    # a repeated sentence: after its first copy (7 tokens, most of them in the warm-up) every
    # token is top-1.
    # (A single repeated word is not: SmolLM2 keeps predicting "-" after "the the the ...".)
    rep = scorer.features(["the cat sat on the mat. " * 40, " ".join("abcdefghijklmnopqrstuvwxyz" * 2)])
    assert (rep["lm_rank1"] > 0.65).all() and (rep["lm_logprob"] > real["lm_logprob"].max() + 1).all(), rep
    assert rep["lm_rank1"].min() > 1.5 * real["lm_rank1"].max(), (rep["lm_rank1"], real["lm_rank1"])


def test_truncation_to_n_tokens(scorer, human_texts):
    long = human_texts[0]
    toks = scorer.tokens(long)
    assert len(toks) == N
    # the prefix-cut tokenisation is a prefix of the full text's tokenisation
    assert toks == list(scorer.llm.tokenize(long.encode(), add_bos=False, special=False)[:N])
    changed = long + " and then something entirely different happened " * 20
    _equal(scorer.features([long]), scorer.features([changed]))
    # the first N tokens' own text scores the same as the whole text
    head = scorer.llm.detokenize(toks).decode()
    assert scorer.tokens(head) == toks
    _equal(scorer.features([long]), scorer.features([head]))
    # whitespace layout is normalised away
    _equal(scorer.features([long]), scorer.features(["  " + long.replace(" ", " \n\t ", 5) + "\n"]))


def test_shorter_window_from_the_same_pass(scorer, human_texts):
    both = scorer.features(human_texts, also_n=(16,))
    short = LMScorer(n_tokens=16, n_threads=1).features(human_texts)
    _equal({k: both[k + "_16"] for k in FEATURES}, short)
    assert not np.array_equal(both["lm_logprob"], both["lm_logprob_16"])


def test_training_reads_the_cached_lm_columns_of_its_own_prefix_length_and_refuses_others(tmp_path):
    from corpus_audit.pipelines.train import load_lm_features

    cols = {f: np.array([1.0, 2.0]) for f in FEATURES}
    cols.update({f"{f}_128": np.array([3.0, 4.0]) for f in FEATURES})
    path = tmp_path / "lm.npz"
    np.savez(path, id=np.array(["a", "b"]), n_tokens=np.array([256]), warmup_tokens=np.array([WARMUP_TOKENS]), **cols)
    rows = [{"id": "b"}, {"id": "c"}]
    at_128 = load_lm_features(path, rows, n_tokens=128)
    assert at_128[FEATURES[0]][0] == 4.0 and math.isnan(at_128[FEATURES[0]][1])
    assert load_lm_features(path, rows, n_tokens=256)[FEATURES[0]][0] == 2.0
    with pytest.raises(ValueError, match="over 256 tokens"):
        load_lm_features(path, rows, n_tokens=64)
    np.savez(path, id=np.array(["a", "b"]), n_tokens=np.array([256]), **cols)  # scored before the warm-up
    with pytest.raises(ValueError, match="0 warm-up tokens left out"):
        load_lm_features(path, rows, n_tokens=256)


def test_a_model_fitted_on_other_lm_statistics_is_refused():
    from corpus_audit.transforms.detectors.lm import LMUnavailable, check_tokens

    check_tokens(128, {"n_tokens": 128, "warmup_tokens": WARMUP_TOKENS})
    with pytest.raises(LMUnavailable, match="not the 64 of --lm-tokens"):
        check_tokens(64, {"n_tokens": 128, "warmup_tokens": WARMUP_TOKENS})
    with pytest.raises(LMUnavailable, match="left out 0 warm-up tokens"):
        check_tokens(128, {"n_tokens": 128})  # a model fitted before the warm-up was left out


def test_the_lm_cache_is_not_extended_from_a_cache_scored_over_other_prefixes(tmp_path):
    import importlib.util
    import os

    spec = importlib.util.spec_from_file_location(
        "lm_features", os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "lm_features.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data = tmp_path / "d.jsonl.gz"
    with gzip.open(data, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"id": "x", "text": "Some words here.", "label": "human", "language": "en",
                            "source": "s", "domain": "d", "generator": None}) + "\n")
    old = tmp_path / "old.npz"
    np.savez(old, id=np.array(["x"]), n_tokens=np.array([64]), **{f: np.array([0.0]) for f in FEATURES})
    with pytest.raises(SystemExit, match="over 64 tokens, this run over 128"):
        script.main(["--data", str(data), "--out", str(tmp_path / "new.npz"), "--also", "--extend", str(old)])
    np.savez(old, id=np.array(["x"]), n_tokens=np.array([128]), **{f: np.array([0.0]) for f in FEATURES})
    with pytest.raises(SystemExit, match="0 warm-up tokens left out"):
        script.main(["--data", str(data), "--out", str(tmp_path / "new.npz"), "--also", "--extend", str(old)])
    assert not (tmp_path / "new.npz").exists()
