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

Domains move the human scores: held out, a source's human texts sit anywhere from -0.4 to +2.5
on the probit scale, so a crawl of one unseen domain reads as 0 % or 100 % machine whatever its
true share. Machine text moves with its domain too, and by about the same amount. So models
from 1.4.0 fit the crawl's level with the share (`shifted_estimate`): the development data's
human and machine scores, each measured from its own source's human median, are placed at a
human median d and (a, d) is the maximum-likelihood pair, the interval profiled over d. It
cannot tell a domain whose human text reads high from a share of machine text whose shape
matches; held out, it still errs by tens of points on some sources, and its interval says
so. When the crawl itself holds documents that predate chat models (a crawl date or a first
capture in the seen-pages index before the cut-off), their scores are the human reference of
that crawl's own domains (the anchor), and the machine reference is the development data's
machine scores measured from their own source's human median, placed at the anchor's median
(`anchored_estimate`; measured in EVALUATION.md, "anchored").

That mixture still assumes the development data's machine text sits as far above its human
text as the crawl's does, and an unseen generator does not: held out, the fit reads 0.8 for a
true 0.5 on one source and 0.25 on another. The anchor alone gives the share without any
machine reference: the crawl's human part is (1 - a) times the anchor's distribution, so in
the most human-looking tail, where machine text is rare, the crawl holds (1 - a) times the
anchor's mass and little more (`tail_share`, the mixture proportion estimate of Blanchard et
al. 2010 with the threshold chosen as in Garg et al. 2021's best-bin estimate). It needs no
machine reference but is noisy on small anchors, so the two are combined by the inverse of
their error variances measured on held-out sources, each error a floor plus a part
proportional to the share.
"""
from __future__ import annotations

import numpy as np

CHI2_95 = 3.841458820694124  # 95 % quantile of chi-square with one degree of freedom
Z_95 = 1.959963984540054
GRID = np.linspace(0.0, 1.0, 2001)
SMOOTH = 1e-3  # share of each reference's mass spread evenly over its bins (no bin is impossible)
# The anchored fit works on the probit scale in fixed bins: anchor, crawl and offsets share them.
Z_STEP = 0.1
Z_EDGES = np.round(np.arange(-8.0, 8.0 + Z_STEP / 2, Z_STEP), 6)
Z_CENTRES = np.r_[Z_EDGES[0] - Z_STEP / 2, Z_EDGES[:-1] + Z_STEP / 2, Z_EDGES[-1] + Z_STEP / 2]
ANCHOR_BANDWIDTH = 0.3  # Gaussian smoothing of the anchor's histogram (probit units)
OFFSET_BANDWIDTH = 0.15
MIN_ANCHOR = 100  # fewer pre-cut-off documents leave the anchor's median too uncertain
# Where the unanchored fit looks for the crawl's human median (probit): held out, the
# development sources' human medians lie between -0.4 and +2.5.
SHIFT_MOVES = range(int(round(-2.0 / Z_STEP)), int(round(3.0 / Z_STEP)) + 1)


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


def probit_counts(scores):
    """Counts of finite combined scores in the anchored fit's probit bins (Z_EDGES)."""
    from scipy.special import ndtri

    s = np.asarray(scores, dtype=np.float64)
    z = ndtri(np.clip(s[np.isfinite(s)], 1e-12, 1 - 1e-12))
    return np.bincount(np.searchsorted(Z_EDGES, z, side="right"), minlength=len(Z_CENTRES)).astype(np.float64)


def _smoothed(counts, bandwidth):
    """Histogram convolved with a Gaussian kernel, as a density over the bins with a floor."""
    c = np.asarray(counts, dtype=np.float64)
    half = int(np.ceil(4 * bandwidth / Z_STEP))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * Z_STEP / bandwidth) ** 2)
    d = np.convolve(c, kernel / kernel.sum(), mode="same")
    return _density(d)


def _median(counts):
    c = np.asarray(counts, dtype=np.float64)
    return float(Z_CENTRES[int(np.searchsorted(np.cumsum(c), c.sum() / 2.0))])


def tail_share(counts, anchor, min_anchor=10, delta=0.05):
    """Machine share implied by the crawl's shortfall in the anchor's low tail: 1 - F(t) / H(t)
    for the cumulative crawl and anchor fractions F, H below the bin edge t whose upper
    confidence bound of that ratio is lowest (edges with fewer than `min_anchor` anchor
    documents below are not tried)."""
    c, h = np.asarray(counts, dtype=np.float64), np.asarray(anchor, dtype=np.float64)
    nc, nh = c.sum(), h.sum()
    if nc == 0 or nh < min_anchor:
        return None
    below = np.cumsum(h)
    F, H = np.cumsum(c) / nc, below / nh
    slack_c, slack_h = (np.sqrt(np.log(4 / delta) / (2 * n)) for n in (nc, nh))
    tried = np.flatnonzero(below >= min_anchor)
    upper = (F[tried] + slack_c) / np.maximum(H[tried] - slack_h, 1e-9)
    best = tried[int(np.argmin(upper))]
    return float(np.clip(1.0 - F[best] / H[best], 0.0, 1.0))


def widened(value, centre, sampling_low, sampling_high, widen):
    """(low, high) in [0, 1]: the sampling interval around `centre` moved to `value` and
    widened in quadrature by the half-width `widen`."""
    return (max(0.0, value - float(np.hypot(centre - sampling_low, widen))),
            min(1.0, value + float(np.hypot(sampling_high - centre, widen))))


def half_width(error, value):
    """95 % half-width of an error model (floor, relative) at an estimated share."""
    floor, relative = error
    return Z_95 * float(np.hypot(floor, relative * value))


def anchored_interval(mixture, tail, sampling_low, sampling_high, errors):
    """(value, low, high) of the anchored estimate: the mixture and the tail combined under
    `errors` (the mixture alone for a model without a tail error), widened by the
    combination's error."""
    value = combine_estimates({"mixture": mixture, "tail": tail}, errors)[0] if "tail" in errors else mixture
    return (value, *widened(value, mixture, sampling_low, sampling_high,
                            half_width(errors.get("combined", (0.0, 0.0)), value)))


def combine_estimates(values, errors):
    """(value, standard error): the estimates weighted by the inverse of their error variances,
    floor ** 2 + (relative * share) ** 2, evaluated at the mixture's own value (the first)."""
    names = [k for k in values if values[k] is not None and k in errors]
    if not names:
        return None, None
    at = values[names[0]]
    var = {k: max(errors[k][0] ** 2 + (errors[k][1] * at) ** 2, 1e-8) for k in names}
    w = {k: 1.0 / var[k] for k in names}
    value = sum(w[k] * values[k] for k in names) / sum(w.values())
    return float(value), float(np.sqrt(1.0 / sum(w.values())))


def source_offsets(scores, y, sources, label=1):
    """Source-balanced histogram (probit bins, centred on 0) of the scores of `label` (1: machine,
    0: human) measured from the median human score of their own source: how far machine text
    sits above the human text of its domain (or how human text spreads around its own median),
    with the domain's own level taken out."""
    from scipy.special import ndtri

    s = np.asarray(scores, dtype=np.float64)
    y, sources = np.asarray(y, dtype=int), np.asarray(sources).astype(str)
    z = ndtri(np.clip(s, 1e-12, 1 - 1e-12))
    out = np.zeros(len(Z_CENTRES))
    for src in np.unique(sources):
        h, m = (sources == src) & (y == 0), (sources == src) & (y == 1)
        if h.sum() < 10 or m.sum() < 10:
            continue
        of = m if label == 1 else h
        rel = z[of] - np.median(z[h])
        out += np.bincount(np.searchsorted(Z_EDGES, rel, side="right"), minlength=len(out)) / of.sum()
    return out


def moved(density, move):
    """A probit-bin density moved by `move` bins; mass pushed past an end stays in the end bin."""
    out = np.zeros_like(density)
    if move >= 0:
        out[move:] = density[:len(density) - move]
        out[-1] += density[len(density) - move:].sum()
    else:
        out[:move] = density[-move:]
        out[0] += density[:-move].sum()
    return out


def fit_shifted_mixture(counts, human, machine):
    """(a_hat, low, high, move): counts ~ Multinomial((1 - a) H(. - d) + a M(. - d)) with H and M
    centred on their own domain's human median and d (`move` bins) the crawl's human median,
    unknown. a's 95 % interval is from the likelihood profiled over d."""
    n = np.asarray(counts, dtype=np.float64)
    profile, at = np.full(len(GRID), -np.inf), np.zeros(len(GRID), dtype=int)
    for mv in SHIFT_MOVES:
        mix = np.outer(1.0 - GRID, _density(moved(human, mv))) + np.outer(GRID, _density(moved(machine, mv)))
        ll = np.log(mix) @ n
        better = ll > profile
        profile[better], at[better] = ll[better], mv
    best = int(np.argmax(profile))
    inside = GRID[2.0 * (profile[best] - profile) <= CHI2_95]
    return float(GRID[best]), float(inside.min()), float(inside.max()), int(at[best])


class ShareReference:
    """Reference histograms of one stack's combined score (fast, or with the LM), the machine
    offsets for the anchored fit, and each estimate's measured error on unseen sources."""

    def __init__(self, edges, human, machine, shift=0.0, method="mixture-mle", offsets=None,
                 anchored_error=None, human_offsets=None):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.human = np.asarray(human, dtype=np.float64)
        self.machine = np.asarray(machine, dtype=np.float64)
        self.shift = float(shift)
        self.method = method
        self.offsets = None if offsets is None else np.asarray(offsets, dtype=np.float64)
        # with them (models from 1.4.0) the unanchored estimate is the shifted mixture
        self.human_offsets = None if human_offsets is None else np.asarray(human_offsets, dtype=np.float64)
        # per estimate (mixture, tail, combined): (floor, relative) of its error on held-out
        # sources (`_error_model`); a bare pair is a mixture-only model's
        if anchored_error is not None and not isinstance(anchored_error, dict):
            anchored_error = {"mixture": anchored_error, "combined": anchored_error}
        self.anchored_error = None if anchored_error is None else {
            k: tuple(float(e) for e in v) for k, v in anchored_error.items()}

    @classmethod
    def from_scores(cls, scores, y, weights=None, n_bins=32, shift=0.0):
        s = np.asarray(scores, dtype=np.float64)
        y = np.asarray(y, dtype=int)
        w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64)
        edges = bin_edges(s[np.isfinite(s)], n_bins)
        return cls(edges, histogram(s[y == 0], edges, w[y == 0]), histogram(s[y == 1], edges, w[y == 1]), shift)

    def counts(self, scores):
        return histogram(scores, self.edges)

    def widening(self, value, anchored=False):
        """Half-width added in quadrature to the sampling interval: the measured error on unseen
        sources (for the anchored fit, a floor at 0 growing in proportion to the share)."""
        if anchored:
            return half_width((self.anchored_error or {}).get("combined", (0.0, 0.0)), value)
        return half_width((self.shift, 0.0), value)

    def estimate(self, counts):
        """{value, low, high, method, documents, sampling_low, sampling_high} from bin counts."""
        counts = np.asarray(counts, dtype=np.float64)
        n = int(round(counts.sum()))
        if n == 0:
            return None
        a, lo, hi, _ = fit_mixture(counts, self.human, self.machine)
        low, high = widened(a, a, lo, hi, self.widening(a))
        return {"value": round(a, 4), "low": round(low, 4), "high": round(high, 4),
                "method": f"{self.method}: maximum-likelihood mixture of human and machine reference "
                          f"histograms of the combined detector score ({len(self.edges) + 1} bins), "
                          f"95 % profile-likelihood interval widened by the measured error on unseen "
                          f"sources ({self.shift:.3f} rms)",
                "documents": n, "sampling_low": round(lo, 4), "sampling_high": round(hi, 4)}

    def shifted_estimate(self, counts):
        """The estimate without an anchor from the crawl's probit-bin `counts`: the development
        data's human and machine scores, each measured from its own source's human median, are
        placed at the crawl's human median, fitted together with the share. None without
        offsets (older models: `estimate`)."""
        counts = np.asarray(counts, dtype=np.float64)
        n = int(round(counts.sum()))
        if self.offsets is None or self.human_offsets is None or n == 0:
            return None
        a, lo, hi, move = fit_shifted_mixture(counts, _smoothed(self.human_offsets, OFFSET_BANDWIDTH),
                                              _smoothed(self.offsets, OFFSET_BANDWIDTH))
        low, high = widened(a, a, lo, hi, self.widening(a))
        return {"value": round(a, 4), "low": round(low, 4), "high": round(high, 4),
                "method": f"shifted-mixture-mle: the development data's human and machine scores, each "
                          f"measured from its own source's human median, placed at the crawl's human "
                          f"median and fitted with the share by maximum likelihood ({len(Z_CENTRES)} probit "
                          f"bins); 95 % profile-likelihood interval widened by the measured error on "
                          f"unseen sources ({self.shift:.3f} rms)",
                "documents": n, "human_median": round(move * Z_STEP, 2),
                "sampling_low": round(lo, 4), "sampling_high": round(hi, 4)}

    def unanchored_estimate(self, counts, probit):
        """The estimate without an anchor from the crawl's bin `counts` (this reference's bins)
        and `probit` (the same scores in probit bins): the shifted mixture where the model has
        its offsets, else the plain one."""
        return self.shifted_estimate(probit) if self.human_offsets is not None else self.estimate(counts)

    def anchored_estimate(self, counts, anchor):
        """The estimate from the crawl's own human reference: `counts` are the probit-bin counts
        of the documents to fit, `anchor` those of its pre-cut-off documents. None without
        offsets or with fewer than MIN_ANCHOR anchor documents."""
        counts, anchor = np.asarray(counts, dtype=np.float64), np.asarray(anchor, dtype=np.float64)
        n = int(round(counts.sum()))
        if self.offsets is None or self.anchored_error is None or n == 0 or anchor.sum() < MIN_ANCHOR:
            return None
        human = _smoothed(anchor, ANCHOR_BANDWIDTH)
        # offsets are centred on the middle bin; move them to the anchor's median
        machine = moved(_smoothed(self.offsets, OFFSET_BANDWIDTH), int(round(_median(anchor) / Z_STEP)))
        a, lo, hi, _ = fit_mixture(counts, human, machine)
        tail = tail_share(counts, anchor)
        errors = self.anchored_error or {}
        value, low, high = anchored_interval(a, tail, lo, hi, errors)
        floor, relative = errors.get("combined", (0.0, 0.0))
        return {"value": round(value, 4), "low": round(low, 4), "high": round(high, 4),
                "method": f"anchored-mixture-mle: this crawl's own pre-cut-off documents "
                          f"({int(anchor.sum())}) are the human reference of its domains; the share is "
                          f"the maximum-likelihood mixture of them and the development data's machine "
                          f"scores placed at their median ({len(Z_CENTRES)} probit bins), combined with "
                          f"the share implied by the crawl's shortfall in the anchor's low tail, each "
                          f"weighted by its measured error on unseen sources; 95 % interval from the "
                          f"combination's measured error ({floor:.3f} rms at 0, {relative:.0%} of the "
                          f"share above) and the mixture's profile likelihood",
                "documents": n, "anchor_documents": int(anchor.sum()),
                "mixture": round(a, 4), "tail": None if tail is None else round(tail, 4),
                "sampling_low": round(lo, 4), "sampling_high": round(hi, 4)}

    def get_state(self, prefix):
        params = {"shift": self.shift, "method": self.method}
        arrays = {f"{prefix}edges": self.edges, f"{prefix}human": self.human, f"{prefix}machine": self.machine}
        if self.offsets is not None:
            if self.anchored_error is not None:
                params["anchored_error"] = {k: list(v) for k, v in self.anchored_error.items()}
            arrays[f"{prefix}offsets"] = self.offsets
        if self.human_offsets is not None:
            arrays[f"{prefix}human_offsets"] = self.human_offsets
        return params, arrays

    @classmethod
    def from_state(cls, params, arrays, prefix):
        return cls(arrays[f"{prefix}edges"], arrays[f"{prefix}human"], arrays[f"{prefix}machine"],
                   params.get("shift", 0.0), params.get("method", "mixture-mle"),
                   arrays.get(f"{prefix}offsets"), params.get("anchored_error"),
                   arrays.get(f"{prefix}human_offsets"))


def _reference(scores, y, sources, n_bins, shift=0.0, anchored_error=None):
    """Histograms, both offsets and the given errors of labelled scores, source-balanced."""
    ref = ShareReference.from_scores(scores, y, source_balanced_weights(y, sources), n_bins, shift)
    ref.offsets = source_offsets(scores, y, sources)
    ref.human_offsets = source_offsets(scores, y, sources, label=0)
    ref.anchored_error = anchored_error
    return ref


def _rms(rows):
    """Root-mean-square error of held-out rows' estimates."""
    return float(np.sqrt(np.mean([(r["estimate"] - r["share"]) ** 2 for r in rows]))) if rows else 0.0


def source_balanced_weights(y, sources):
    """Every (source, label) carries the same total weight: the references describe human and
    machine text across domains, not the size of whichever source is largest."""
    keys = np.char.add(np.asarray(sources).astype(str), np.asarray(y).astype(str))
    _, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
    return 1.0 / cnt[inv]


def mix_counts(ref, scores, y, share, n, rng):
    """Bin counts of a crawl of `n` documents drawn from labelled scores at a machine `share`
    (in the reference's bins, or the probit bins when `ref` is None)."""
    human, machine = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    k = int(round(share * n))
    pick = np.concatenate([rng.choice(machine, k), rng.choice(human, n - k)])
    return probit_counts(scores[pick]) if ref is None else ref.counts(scores[pick])


def held_out_errors(scores, y, sources, shares=(0.0, 0.05, 0.2, 0.5), n=1000, draws=5, n_bins=32, seed=0,
                    anchor=0):
    """Estimate errors on crawls mixed from each source, with references built without it.

    With `anchor`, each crawl also has that many other human texts of its source as its
    pre-cut-off anchor and is fitted with `anchored_estimate` (sources with fewer than twice
    that many human texts are left out). Returns (rms error, rows of {source, share, estimate,
    low, high}); the rms is the `shift` stored with the references."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    sources = np.asarray(sources).astype(str)
    ok = np.isfinite(s)
    rows = []
    for src in sorted(set(sources[ok])):
        inside, outside = ok & (sources == src), ok & (sources != src)
        if min((y[inside] == 0).sum(), (y[inside] == 1).sum(), (y[outside] == 0).sum(), (y[outside] == 1).sum()) < 10:
            continue
        if anchor and (y[inside] == 0).sum() < 2 * anchor:
            continue
        # no error model yet (these rows measure it): intervals are the sampling intervals
        ref = _reference(s[outside], y[outside], sources[outside], n_bins, anchored_error={})
        rng = np.random.default_rng(seed)
        ins_s, ins_y = s[inside], y[inside]
        for share in shares:
            for _ in range(draws):
                if anchor:
                    humans = rng.permutation(np.flatnonzero(ins_y == 0))
                    crawl = np.r_[humans[anchor:], np.flatnonzero(ins_y == 1)]
                    est = ref.anchored_estimate(mix_counts(None, ins_s[crawl], ins_y[crawl], share, n, rng),
                                                probit_counts(ins_s[humans[:anchor]]))
                else:
                    est = ref.shifted_estimate(mix_counts(None, ins_s, ins_y, share, n, rng))
                rows.append({"source": src, "share": share, "estimate": est["value"],
                             "sampling_low": est["sampling_low"], "sampling_high": est["sampling_high"],
                             **({"mixture": est["mixture"], "tail": est["tail"]} if anchor else {})})
    return _rms(rows), rows


def _error_model(rows, key):
    """(floor, relative) of the variance model floor ** 2 + (relative * share) ** 2 of rows[key]
    on held-out sources: the floor is the rms error at a true share of 0, the relative part the
    least-squares fit of the squared errors above it at shares above 0."""
    rows = [r for r in rows if r.get(key) is not None]
    share = np.array([r["share"] for r in rows], dtype=np.float64)
    err2 = np.square(np.array([r[key] for r in rows], dtype=np.float64) - share)
    floor2 = float(err2[share == 0].mean()) if (share == 0).any() else 0.0
    s2 = share[share > 0] ** 2
    relative2 = float(s2 @ (err2[share > 0] - floor2) / (s2 @ s2)) if len(s2) else 0.0
    return float(np.sqrt(floor2)), float(np.sqrt(max(relative2, 0.0)))


def anchored_error(rows):
    """Error models of held-out anchored rows: of the mixture and the tail estimate, and of
    their inverse-variance combination under those models (the one the interval uses)."""
    errors = {k: _error_model(rows, k) for k in ("mixture", "tail")}
    combined = [{**r, "combined": combine_estimates({k: r[k] for k in ("mixture", "tail")}, errors)[0]}
                for r in rows]
    return {**errors, "combined": _error_model(combined, "combined")}


def held_out_intervals(rows, anchored):
    """Rows with the estimate and 95 % interval the shipped method gives a crawl of their source
    when its error model is measured on the other sources only: the honest coverage."""
    out = []
    for src in sorted({r["source"] for r in rows}):
        other = [r for r in rows if r["source"] != src]
        if anchored:
            errors = anchored_error(other)
        else:
            shift = _rms(other)
        for r in (r for r in rows if r["source"] == src):
            if anchored:
                value, low, high = anchored_interval(r["mixture"], r["tail"], r["sampling_low"],
                                                     r["sampling_high"], errors)
            else:
                value = r["estimate"]
                low, high = widened(value, value, r["sampling_low"], r["sampling_high"],
                                    half_width((shift, 0.0), value))
            out.append({**r, "estimate": value, "low": low, "high": high})
    return out


def build_reference(scores, y, sources, n_bins=32, seed=0):
    """The shipped reference: all labelled scores, source-balanced, with the held-out errors of
    both estimates. Returns (reference, {"reference": rows, "anchored": rows})."""
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s)
    y, sources = np.asarray(y, dtype=int)[ok], np.asarray(sources).astype(str)[ok]
    shift, rows = held_out_errors(s[ok], y, sources, n_bins=n_bins, seed=seed)
    _, anchored_rows = held_out_errors(s[ok], y, sources, n_bins=n_bins, seed=seed, anchor=MIN_ANCHOR)
    errors = anchored_error(anchored_rows) if anchored_rows else None  # not measured: no anchored fit
    return _reference(s[ok], y, sources, n_bins, shift, errors), {"reference": rows, "anchored": anchored_rows}
