"""The crawl's synthetic share as an estimate with a 95 % interval.

Counting documents with a likelihood ≥ 0.5 answers a per-document question and inherits every
per-document error: on a crawl of human text from domains the detectors never saw, the false
positives alone read as a synthetic share of tens of percent. The share is a property of the
crawl, so it is fitted as one: the crawl's histogram of the ensemble's combined score is a
mixture (1 - a) H + a M of the human and machine reference histograms, and a is its
maximum-likelihood weight (the corpus-level mixture of Liang et al. 2024, "Monitoring
AI-Modified Content at Scale", fitted on the detectors' combined score instead of word
frequencies). The references are leave-one-source-out scores of the development data, so they
describe texts from sources a model did not see, which is what a crawl is.

The interval is the profile-likelihood interval (sampling error of the crawl) widened by the
references' own error on unseen sources: `shift` is the root-mean-square error of the estimate
on development sources held out from the references, measured at training and stored with
them, added in quadrature.
"""
from __future__ import annotations

import numpy as np

CHI2_95 = 3.841458820694124  # 95 % quantile of chi-square with one degree of freedom
Z_95 = 1.959963984540054
GRID = np.linspace(0.0, 1.0, 2001)
SMOOTH = 1e-3  # share of each reference's mass spread evenly over its bins (no bin is impossible)


def bin_edges(scores, n_bins=32):
    """Inner edges at quantiles of the pooled reference scores (every bin holds reference mass)."""
    q = np.quantile(np.asarray(scores, dtype=np.float64), np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(q)


def histogram(scores, edges, weights=None):
    """Counts per bin of finite scores; bins are (-inf, e0), [e0, e1), ..., [e_last, inf)."""
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[ok]
    return np.bincount(np.searchsorted(edges, s[ok], side="right"), weights=w,
                       minlength=len(edges) + 1).astype(np.float64)


def _density(counts):
    c = np.asarray(counts, dtype=np.float64)
    return (1 - SMOOTH) * c / c.sum() + SMOOTH / len(c)


def fit_mixture(counts, human, machine):
    """(a_hat, low, high, log-likelihood curve): MLE and 95 % profile-likelihood interval of
    the machine weight a in counts ~ Multinomial((1 - a) human + a machine)."""
    n = np.asarray(counts, dtype=np.float64)
    h, m = _density(human), _density(machine)
    mix = np.outer(1.0 - GRID, h) + np.outer(GRID, m)
    ll = np.log(mix) @ n
    best = int(np.argmax(ll))
    inside = GRID[2.0 * (ll[best] - ll) <= CHI2_95]
    return float(GRID[best]), float(inside.min()), float(inside.max()), ll


class ShareReference:
    """Reference histograms of one stack's combined score (fast, or with the LM) and the
    estimate's measured error on unseen sources."""

    def __init__(self, edges, human, machine, shift=0.0, method="mixture-mle"):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.human = np.asarray(human, dtype=np.float64)
        self.machine = np.asarray(machine, dtype=np.float64)
        self.shift = float(shift)
        self.method = method

    @classmethod
    def from_scores(cls, scores, y, weights=None, n_bins=32, shift=0.0):
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
        edges = bin_edges(s[np.isfinite(s)], n_bins)
        return cls(edges, histogram(s[y == 0], edges, w[y == 0]), histogram(s[y == 1], edges, w[y == 1]), shift)

    def counts(self, scores):
        return histogram(scores, self.edges)

    def estimate(self, counts):
        """{value, low, high, method, documents, sampling_low, sampling_high} from bin counts."""
        counts = np.asarray(counts, dtype=np.float64)
        n = int(round(counts.sum()))
        if n == 0:
            return None
        a, lo, hi, _ = fit_mixture(counts, self.human, self.machine)
        widen = Z_95 * self.shift
        low = a - np.hypot(a - lo, widen)
        high = a + np.hypot(hi - a, widen)
        return {"value": round(a, 4), "low": round(max(0.0, low), 4), "high": round(min(1.0, high), 4),
                "method": f"{self.method}: maximum-likelihood mixture of human and machine reference "
                          f"histograms of the combined detector score ({len(self.edges) + 1} bins), "
                          f"95 % profile-likelihood interval widened by the measured error on unseen "
                          f"sources ({self.shift:.3f} rms)",
                "documents": n, "sampling_low": round(lo, 4), "sampling_high": round(hi, 4)}

    def get_state(self, prefix):
        return ({"shift": self.shift, "method": self.method},
                {f"{prefix}edges": self.edges, f"{prefix}human": self.human, f"{prefix}machine": self.machine})

    @classmethod
    def from_state(cls, params, arrays, prefix):
        return cls(arrays[f"{prefix}edges"], arrays[f"{prefix}human"], arrays[f"{prefix}machine"],
                   params.get("shift", 0.0), params.get("method", "mixture-mle"))


def source_balanced_weights(y, sources):
    """Every (source, label) carries the same total weight: the references describe human and
    machine text across domains, not the size of whichever source is largest."""
    keys = np.char.add(np.asarray(sources).astype(str), np.asarray(y).astype(str))
    _, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
    return 1.0 / cnt[inv]


def mix_counts(ref, scores, y, share, n, rng):
    """Bin counts of a crawl of `n` documents drawn from labelled scores at a machine `share`."""
    human, machine = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    k = int(round(share * n))
    pick = np.concatenate([rng.choice(machine, k), rng.choice(human, n - k)])
    return ref.counts(scores[pick])


def held_out_errors(scores, y, sources, shares=(0.0, 0.05, 0.2, 0.5), n=1000, draws=5, n_bins=32, seed=0):
    """Estimate errors on crawls mixed from each source, with references built without it.

    Returns (rms error, rows of {source, share, estimate, low, high}); the rms is the `shift`
    stored with the references."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    sources = np.asarray(sources).astype(str)
    ok = np.isfinite(s)
    rows, errors = [], []
    for src in sorted(set(sources[ok])):
        inside, outside = ok & (sources == src), ok & (sources != src)
        if min((y[inside] == 0).sum(), (y[inside] == 1).sum(), (y[outside] == 0).sum(), (y[outside] == 1).sum()) < 10:
            continue
        ref = ShareReference.from_scores(s[outside], y[outside],
                                         source_balanced_weights(y[outside], sources[outside]), n_bins)
        rng = np.random.default_rng(seed)
        for share in shares:
            for _ in range(draws):
                est = ref.estimate(mix_counts(ref, s[inside], y[inside], share, n, rng))
                errors.append(est["value"] - share)
                rows.append({"source": src, "share": share, "estimate": est["value"],
                             "low": est["sampling_low"], "high": est["sampling_high"]})
    rms = float(np.sqrt(np.mean(np.square(errors)))) if errors else 0.0
    return rms, rows


def build_reference(scores, y, sources, n_bins=32, seed=0):
    """The shipped reference: all labelled scores, source-balanced, with the held-out rms."""
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s)
    y, sources = np.asarray(y, dtype=int)[ok], np.asarray(sources).astype(str)[ok]
    shift, rows = held_out_errors(s[ok], y, sources, n_bins=n_bins, seed=seed)
    return ShareReference.from_scores(s[ok], y, source_balanced_weights(y, sources), n_bins, shift), rows
