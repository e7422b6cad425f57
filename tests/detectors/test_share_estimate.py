"""The crawl share estimate (detectors/share.py) and the family weight choice (detectors/weights.py)."""
import numpy as np
import pytest

from corpus_audit.transforms.detectors.share import (MIN_ANCHOR, ShareReference, anchored_error, build_reference,
                                                      combine_estimates, fit_mixture, held_out_errors,
                                                      held_out_intervals, probit_counts, source_balanced_weights,
                                                      tail_share)
from corpus_audit.transforms.detectors.weights import choose_weights, combine


def _scores(rng, n_h, n_m, shift=1.5, machine_sd=1.0):
    """Human scores ~ N(0, 1), machine ~ N(shift, machine_sd) on the probit scale, mapped to (0, 1)."""
    from scipy.special import ndtr

    return (ndtr(np.r_[rng.normal(0, 1, n_h), rng.normal(shift, machine_sd, n_m)]),
            np.r_[np.zeros(n_h), np.ones(n_m)].astype(int))


@pytest.fixture(scope="module")
def reference():
    s, y = _scores(np.random.default_rng(0), 20_000, 20_000)
    return ShareReference.from_scores(s, y)


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2, 0.5])
def test_mixture_recovers_known_share_and_interval_covers(reference, share):
    rng = np.random.default_rng(int(share * 100) + 1)
    n = 5000
    s, _ = _scores(rng, n - int(share * n), int(share * n))
    est = reference.estimate(reference.counts(s))
    assert abs(est["value"] - share) < 0.03, est
    assert est["low"] <= share <= est["high"], est
    assert est["documents"] == n and est["low"] <= est["value"] <= est["high"]


def test_counting_above_threshold_is_biased_where_the_mixture_is_not(reference):
    """The reason for the estimator: a human-only crawl has many documents above 0.5."""
    s, _ = _scores(np.random.default_rng(9), 4000, 0)
    assert (s >= 0.5).mean() > 0.4
    assert reference.estimate(reference.counts(s))["value"] < 0.02


def test_interval_narrows_with_more_documents(reference):
    rng = np.random.default_rng(3)
    small = reference.estimate(reference.counts(_scores(rng, 160, 40)[0]))
    large = reference.estimate(reference.counts(_scores(rng, 16_000, 4_000)[0]))
    assert (large["high"] - large["low"]) < (small["high"] - small["low"]) / 3


def test_shift_widens_the_interval_and_round_trips(reference):
    s, _ = _scores(np.random.default_rng(4), 900, 100)
    wide = ShareReference(reference.edges, reference.human, reference.machine, shift=0.05)
    a, b = reference.estimate(reference.counts(s)), wide.estimate(wide.counts(s))
    assert a["value"] == b["value"] and b["high"] - b["low"] > a["high"] - a["low"] + 0.1
    params, arrays = wide.get_state("share.fast.")
    back = ShareReference.from_state(params, arrays, "share.fast.")
    assert back.estimate(back.counts(s)) == b


def test_fit_mixture_is_a_maximum():
    h, m = np.array([80.0, 15, 5]), np.array([5.0, 15, 80])
    a, lo, hi, ll = fit_mixture(np.array([70, 15, 15]) * 10, h, m)
    assert 0.05 < a < 0.2 and lo < a < hi and ll.argmax() == round(a * 2000)


def test_held_out_errors_and_balanced_weights():
    rng = np.random.default_rng(5)
    # Machine scores spread wider than human ones, as in most development sources: with one shape
    # for both, the unanchored fit (which also fits the crawl's level) could read human text as
    # machine text one gap lower.
    parts = [_scores(rng, 400, 400, shift=1.5 + 0.2 * i, machine_sd=1.3) for i in range(3)]
    s = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    src = np.repeat(["a", "b", "c"], 800)
    rms, rows = held_out_errors(s, y, src, draws=2)
    assert {r["source"] for r in rows} == {"a", "b", "c"} and len(rows) == 3 * 4 * 2
    assert 0 < rms < 0.1
    w = source_balanced_weights(np.r_[y, [0]], np.r_[src, ["d"]])
    assert w[-1] == 1.0 and np.isclose(w[:400].sum(), 1.0)


def _domains(rng, levels, n=3000, gap=2.0):
    """Sources whose human scores sit at their own level and machine scores `gap` above it."""
    from scipy.special import ndtr

    s, y, src = [], [], []
    for i, level in enumerate(levels):
        s += [ndtr(rng.normal(level, 1, n)), ndtr(rng.normal(level + gap, 1, n))]
        y += [np.zeros(n, int), np.ones(n, int)]
        src += [np.full(2 * n, f"s{i}")]
    return np.concatenate(s), np.concatenate(y), np.concatenate(src)


@pytest.fixture(scope="module")
def domain_reference():
    return build_reference(*_domains(np.random.default_rng(11), [-0.5, 0.0, 0.5, 1.0]))


@pytest.mark.parametrize("share", [0.0, 0.05, 0.2, 0.5])
def test_anchor_holds_on_a_domain_whose_scores_sit_elsewhere(domain_reference, share):
    """An unseen domain 1.5 probit units above every development source: the development
    references read its human text as machine; its own dated documents put it right."""
    from scipy.special import ndtr

    ref, checks = domain_reference
    rng = np.random.default_rng(int(share * 100) + 12)
    k = int(share * 4000)
    crawl = ndtr(np.r_[rng.normal(1.5, 1, 4000 - k), rng.normal(3.5, 1, k)])
    anchor = ndtr(rng.normal(1.5, 1, 400))
    plain = ref.estimate(ref.counts(crawl))
    est = ref.anchored_estimate(probit_counts(crawl), probit_counts(anchor))
    assert abs(est["value"] - share) < 0.04 and est["low"] <= share <= est["high"], est
    assert est["anchor_documents"] == 400 and est["documents"] == 4000
    if share < 0.5:
        assert plain["value"] - share > 0.1, plain  # the failure the anchor is for
    assert {"reference", "anchored"} == set(checks) and {r["source"] for r in checks["anchored"]} == {"s0", "s1", "s2", "s3"}


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5])
def test_without_an_anchor_the_shifted_fit_finds_the_domains_level_and_the_share(domain_reference, share):
    """The same unseen domain without dated documents: fitting its human level together with the
    share puts the development data's shapes where the crawl's human text sits."""
    from scipy.special import ndtr

    ref, _ = domain_reference
    rng = np.random.default_rng(int(share * 100) + 12)
    k = int(share * 4000)
    crawl = ndtr(np.r_[rng.normal(1.5, 1, 4000 - k), rng.normal(3.5, 1, k)])
    est = ref.shifted_estimate(probit_counts(crawl))
    assert abs(est["value"] - share) < 0.04 and est["sampling_low"] <= share <= est["sampling_high"], est
    assert abs(est["human_median"] - 1.5) <= 0.2 and est["low"] <= est["value"] <= est["high"]
    params, arrays = ref.get_state("share.fast.")
    assert ShareReference.from_state(params, arrays, "share.fast.").shifted_estimate(probit_counts(crawl)) == est
    old = ShareReference(ref.edges, ref.human, ref.machine, ref.shift, offsets=ref.offsets)  # before 1.4.0
    assert old.shifted_estimate(probit_counts(crawl)) is None


def test_anchored_error_widens_with_the_share_and_round_trips(domain_reference):
    ref, checks = domain_reference
    assert ref.anchored_error == anchored_error(checks["anchored"])
    assert set(ref.anchored_error) == {"mixture", "tail", "combined"}
    floor, relative = ref.anchored_error["combined"]
    assert 0 <= floor < 0.05 and relative > 0
    assert ref.widening(0.5, anchored=True) > ref.widening(0.05, anchored=True) > 0
    params, arrays = ref.get_state("share.fast.")
    back = ShareReference.from_state(params, arrays, "share.fast.")
    assert back.anchored_error == ref.anchored_error and np.array_equal(back.offsets, ref.offsets)


def test_no_anchored_fit_without_enough_dated_documents_or_offsets(domain_reference):
    from scipy.special import ndtr

    ref, _ = domain_reference
    crawl = probit_counts(ndtr(np.random.default_rng(13).normal(0, 1, 1000)))
    few = probit_counts(ndtr(np.random.default_rng(14).normal(0, 1, MIN_ANCHOR - 1)))
    enough = probit_counts(ndtr(np.random.default_rng(14).normal(0, 1, MIN_ANCHOR)))
    assert ref.anchored_estimate(crawl, few) is None and ref.anchored_estimate(crawl, enough) is not None
    old = ShareReference(ref.edges, ref.human, ref.machine, ref.shift)  # a model without offsets
    assert old.anchored_estimate(crawl, enough) is None
    assert "offsets" not in "".join(old.get_state("p.")[1])


def test_combine_skips_missing_families_and_choose_weights_drops_noise():
    rng = np.random.default_rng(6)
    y = np.repeat([0, 1], 600)
    src = np.tile(np.repeat(["a", "b", "c"], 200), 2)
    good = rng.normal(0, 1, 1200) + 1.2 * y
    noise = rng.normal(0, 1, 1200)
    lm = np.where(np.arange(1200) % 2 == 0, rng.normal(0, 1, 1200) + 2.0 * y, np.nan)
    Z = np.column_stack([good, noise, lm])
    np.testing.assert_allclose(combine(Z[1::2], np.array([1.0, 1.0, 5.0])), (good[1::2] + noise[1::2]) / np.sqrt(2))
    weights, table = choose_weights(Z, ["good", "noise", "lm"], y, src, optional=["lm"])
    assert weights["good"] == 1.0 and weights["noise"] == 0.0 and weights["lm"] >= 1.0
    assert len(table) == 3 * 5


def _ensemble():
    from corpus_audit.transforms.detectors.ensemble import Ensemble

    rng = np.random.default_rng(8)
    y = np.repeat([0, 1], 500)
    scores = {"a": np.clip(rng.normal(0.4, 0.15, 1000) + 0.2 * y, 0, 1),
              "lm": np.where(np.arange(1000) % 2 == 0, np.clip(rng.normal(0.4, 0.1, 1000) + 0.3 * y, 0, 1), np.nan)}
    ens = Ensemble(["a", "lm"], method="human_reference", optional=["lm"]).fit(scores, y, np.arange(1000))
    return ens, scores, y


def test_prior_moves_the_likelihood_by_bayes_rule():
    from corpus_audit.transforms.detectors.base import logit

    ens, scores, _ = _ensemble()
    base = ens.predict(scores)
    same = ens.predict(scores, prior=ens.calibration_prior["fast"])
    full = ens.has_optional(scores)
    np.testing.assert_allclose(same[~full], base[~full], atol=1e-9)
    low = ens.predict(scores, prior=0.1)
    assert np.all(low <= base + 1e-12) and (low < base - 0.05).any()
    mid = (base > 0.05) & (base < 0.95) & ~full
    np.testing.assert_allclose(logit(base[mid]) - logit(low[mid]),
                               logit(ens.calibration_prior["fast"]) - logit(0.1), atol=1e-6)


def test_missing_lm_uses_the_fast_stack_and_its_calibration():
    ens, scores, y = _ensemble()
    full = ens.has_optional(scores)
    assert full.sum() == 500 and ens.iso_full_x is not None and "full" in ens.calibration_prior
    fast_only = ens.predict(ens.fast_scores(scores))
    with_lm = ens.predict(scores)
    np.testing.assert_array_equal(with_lm[~full], fast_only[~full])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[full], with_lm[full]) > roc_auc_score(y[full], fast_only[full]) + 0.05


@pytest.mark.parametrize("share", [0.0, 0.2, 0.5])
def test_tail_share_reads_the_share_from_the_anchor_alone(share):
    """No machine reference: only the shortfall of the crawl's low tail against the anchor."""
    rng = np.random.default_rng(int(share * 100) + 21)
    k = int(share * 4000)
    crawl, anchor = _scores(rng, 4000 - k, k, 3.0)[0], _scores(rng, 1000, 0, 0)[0]
    assert abs(tail_share(probit_counts(crawl), probit_counts(anchor)) - share) < 0.05
    assert tail_share(probit_counts(crawl), probit_counts(anchor[:5])) is None  # too few to bound


def test_combination_follows_the_better_estimate_and_corrects_a_mismatched_machine_reference(domain_reference):
    """Machine text 4 probit units above its human text where the development data's sits 2
    above: the mixture reads it wrong, the tail does not, and the combination is nearer."""
    ref, _ = domain_reference
    rng = np.random.default_rng(22)
    crawl, anchor = _scores(rng, 2000, 2000, 4.0)[0], _scores(rng, 400, 0, 0)[0]
    est = ref.anchored_estimate(probit_counts(crawl), probit_counts(anchor))
    assert abs(est["tail"] - 0.5) < 0.05 < abs(est["mixture"] - 0.5), est
    assert abs(est["value"] - 0.5) < abs(est["mixture"] - 0.5) and est["low"] <= 0.5 <= est["high"]
    errors = {"mixture": (0.01, 0.5), "tail": (0.06, 0.4)}
    near_zero, _ = combine_estimates({"mixture": 0.0, "tail": 0.06}, errors)
    high, se = combine_estimates({"mixture": 0.5, "tail": 0.3}, errors)
    assert near_zero < 0.005 and 0.3 < high < 0.4 and se < 0.2  # the tail's floor rules at 0, not at 0.5
    assert combine_estimates({"mixture": 0.2, "tail": None}, errors)[0] == 0.2


def test_held_out_intervals_measure_each_source_with_the_others_errors():
    """A source the others cannot describe gets their (narrow) interval and is missed; one whose
    neighbours include that source gets a wide interval: coverage is not measured in-sample."""
    rows = []
    for src, bias in (("a", 0.0), ("b", 0.01), ("c", 0.3)):
        for share in (0.0, 0.2, 0.5):
            est = share + bias * (share > 0)
            rows.append({"source": src, "share": share, "estimate": est, "mixture": est, "tail": est,
                         "sampling_low": est, "sampling_high": est})
    out = {(r["source"], r["share"]): r for r in held_out_intervals(rows, anchored=True)}
    c, a = out[("c", 0.5)], out[("a", 0.5)]
    assert not c["low"] <= 0.5 <= c["high"] and a["low"] <= 0.5 <= a["high"]
    assert a["high"] - a["low"] > 3 * (c["high"] - c["low"])


def _write_pass_counts(stack, ref, crawl, anchor):
    """The counters the audit's write pass keeps for one stack (audit.share_estimate reads them)."""
    both = np.r_[crawl, anchor]
    out = {f"share_bin.{stack}.{i}": c for i, c in enumerate(ref.counts(both))}
    out.update({f"share_bin.anchor.{stack}.{i}": c for i, c in enumerate(probit_counts(anchor))})
    out.update({f"share_bin.dated_rest.{stack}.{i}": c for i, c in enumerate(probit_counts(crawl))})
    return out


def test_the_audit_reports_the_anchored_stack_that_erred_less_not_the_narrower(domain_reference):
    """The LM stack scores fewer documents, so its interval is wider; when its anchored fit
    erred less on held-out sources it is still the one reported."""
    from types import SimpleNamespace

    from corpus_audit.pipelines.audit import share_estimate

    ref, _ = domain_reference
    fast = ShareReference.from_state(*ref.get_state("p."), "p.")
    fast.anchored_error = {k: (1.3 * f, 1.3 * r) for k, (f, r) in ref.anchored_error.items()}
    rng = np.random.default_rng(31)
    anchor = _scores(rng, 300, 0, 0)[0]
    counts = {**_write_pass_counts("fast", fast, _scores(rng, 3000, 1000, 2.0)[0], anchor),
              **_write_pass_counts("full", ref, _scores(rng, 75, 25, 2.0)[0], anchor), "share_bin.known.0": 0}
    est = share_estimate(SimpleNamespace(ensemble=SimpleNamespace(share={"fast": fast, "full": ref})), counts)
    by = est["by_stack"]
    assert by["fast"]["reference"] == by["full"]["reference"] == "anchored"
    assert by["full"]["high"] - by["full"]["low"] > by["fast"]["high"] - by["fast"]["low"]
    assert est["stack"] == "with the LM" and est["value"] == by["full"]["value"]
