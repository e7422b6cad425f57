"""Calibrated ensemble of the detectors, plus explicit hard-evidence rules.

Prediction for one document, in order (method "human_reference", the default since 1.2.0):

1. **Human reference.** Each detector's score s_k becomes z_k = Φ⁻¹(F_k(s_k)), where F_k is the
   distribution of that detector's *out-of-fold* scores on the human training texts (GroupKFold
   by `group`, weighted like training; stored as a table of at most 2048 (score, mid-rank CDF)
   points, linear interpolation, clipped to [0.5/n, 1 - 0.5/n]). z_k says how unusual the text
   is for human writing in the detector's eyes, on one common scale for every detector.
2. **Combination.** raw = Φ(Σ_k w_k z_k / sqrt(Σ_k w_k²)) (Stouffer's method) over the
   families that scored the document: an optional family (the LM) that did not score it
   drops out of both sums. Nothing about the *machine* side is fitted: the weights w_k are
   chosen on leave-one-source-out z-scores from a small grid (weights.py), because weights
   learnt on the training sources (a stacked logistic regression, non-negative or shrunk)
   fit the generators seen in training and transferred worse to sources left out of training.
3. **Calibration.** p = isotonic(raw), an isotonic regression fitted on the out-of-fold raw
   scores, stored as its two threshold arrays (applied with linear interpolation); documents
   the LM scored use a second one fitted on the rows it scored. A tie-breaker of 1e-3 · raw
   is mixed in, p = (1 - 1e-3) · isotonic + 1e-3 · raw, so the ranking equals raw's. The
   calibration assumes its training rows' machine share; with `prior` the odds are moved to
   the crawl's expected share by Bayes' rule.

Method "stack" (models before 1.2.0) replaces steps 1-2 by z = b + Σ_k w_k · logit(s_k), a
logistic regression on out-of-fold detector scores, and calibrates its output the same way.

4. **Soft evidence (neutral until trained with evidence).** p ← sigmoid(logit(p) +
   w_cluster · log(cluster_size)), with w_cluster = `cluster_weight` (0.0 in models trained on
   the detection data, which has no clusters; stored in model.json so it can be set later).
5. **Hard evidence overrides** (documented rules; they only ever raise p):

   | rule | condition | result |
   |---|---|---|
   | known near copy | known_similarity ≥ 0.5 | p = max(p, 0.97) |
   | partial copy of known output | known_containment = c ≥ 0.3 | p = max(p, c · 0.97 + (1 - c) · p) |

   A near copy of a known model output is machine text whatever the detectors say. A document
   containing a share c of a known output is at least that machine-written, so the
   likelihood moves toward the near-copy floor in proportion to c. Missing evidence (None or
   NaN) is neutral.
"""
from __future__ import annotations

import numpy as np

from .base import logit, sigmoid

NEAR_COPY_SIMILARITY = 0.5
NEAR_COPY_FLOOR = 0.97
CONTAINMENT_MIN = 0.3
CONTAINMENT_CEILING = 0.97
TIE_BREAK = 1e-3
# The machine share a crawl is assumed to have when the audit is not told (`--prior`): the
# training mix (about half machine) would call a human text synthetic on half the evidence a
# mostly-human crawl needs. Chosen by measurement (README, "Detector quality").
DEFAULT_PRIOR = 0.1
REF_POINTS = 2048


def human_reference_table(scores, weights, max_points=REF_POINTS):
    """(x, cdf): sorted distinct scores of the human reference and their weighted mid-rank CDF,
    thinned to at most `max_points` points (first and last kept)."""
    s = np.asarray(scores, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    x, inv = np.unique(s, return_inverse=True)
    wx = np.bincount(inv, weights=w, minlength=len(x))
    tot = wx.sum()
    cdf = (np.cumsum(wx) - 0.5 * wx) / tot
    if len(x) > max_points:
        keep = np.unique(np.linspace(0, len(x) - 1, max_points).round().astype(np.int64))
        x, cdf = x[keep], cdf[keep]
    return x, cdf


def _evidence(x, n, fill):
    if x is None:
        return np.full(n, fill, dtype=np.float64)
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(a) != n:
        raise ValueError(f"evidence array has {len(a)} values for {n} documents")
    return np.where(np.isfinite(a), a, fill)


def apply_evidence(p, known_similarity=None, known_containment=None):
    """The hard-evidence rules of the table above (vectorised; only raise p)."""
    p = np.asarray(p, dtype=np.float64).copy()
    n = len(p)
    sim = _evidence(known_similarity, n, 0.0)
    con = np.clip(_evidence(known_containment, n, 0.0), 0.0, 1.0)
    part = con >= CONTAINMENT_MIN
    p[part] = np.maximum(p[part], con[part] * CONTAINMENT_CEILING + (1 - con[part]) * p[part])
    near = sim >= NEAR_COPY_SIMILARITY
    p[near] = np.maximum(p[near], NEAR_COPY_FLOOR)
    return p


class _NonNegLR:
    """Weighted L2 logistic regression with weights constrained to be ≥ 0 (L-BFGS-B): a detector
    whose out-of-fold score is anti-correlated with the label on the training sources gets
    weight 0 instead of a negative weight that would not transfer to other sources."""

    def __init__(self, C=1.0, equal_shrink=0.0):
        self.C = float(C)
        self.equal_shrink = float(equal_shrink)

    def fit(self, Z, y, w):
        from scipy.optimize import minimize

        Z, y, w = np.asarray(Z, float), np.asarray(y, float), np.asarray(w, float)
        d = Z.shape[1]
        lam = self.equal_shrink * w.sum()  # pull the weights toward their mean (equal weighting)

        def f(theta):
            b, c = theta[0], theta[1:]
            z = Z @ c + b
            dev = c - c.mean()
            loss = np.sum(w * (np.logaddexp(0, z) - y * z)) + 0.5 * c @ c / self.C + 0.5 * lam * dev @ dev
            g = w * (sigmoid(z) - y)
            return loss, np.r_[g.sum(), Z.T @ g + c / self.C + lam * dev]

        res = minimize(f, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                       bounds=[(None, None)] + [(0.0, None)] * d)
        self.intercept_ = np.array([res.x[0]])
        self.coef_ = res.x[1:][None, :]
        return self

    def predict_proba(self, Z):
        p = sigmoid(np.asarray(Z, float) @ self.coef_[0] + self.intercept_[0])
        return np.column_stack([1 - p, p])


class Ensemble:
    def __init__(self, detector_names, coef=None, intercept=0.0, iso_x=None, iso_y=None,
                 cluster_weight=0.0, C=1.0, nonneg=False, stack_input="logit",
                 equal_shrink=0.0, method="stack", ref=None, ref_n=0, optional=(), weights=None,
                 iso_full_x=None, iso_full_y=None, calibration_prior=None, share=None):
        self.method = str(method)
        self.optional = [k for k in optional if k in detector_names]
        self.weights = None if weights is None else {k: float(weights[k]) for k in detector_names}
        self.iso_full_x = None if iso_full_x is None else np.asarray(iso_full_x, dtype=np.float64)
        self.iso_full_y = None if iso_full_y is None else np.asarray(iso_full_y, dtype=np.float64)
        # machine share of the rows each calibration was fitted on: the prior it assumes
        self.calibration_prior = dict(calibration_prior or {})
        self.share = dict(share or {})  # {"fast" | "full": ShareReference}
        self.ref = ref  # {name: (x, cdf)} for method "human_reference"
        self.ref_n = int(ref_n)
        self.nonneg = bool(nonneg)
        self.stack_input = str(stack_input)
        self.equal_shrink = float(equal_shrink)
        self.detector_names = list(detector_names)
        self.coef = None if coef is None else np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self.iso_x = None if iso_x is None else np.asarray(iso_x, dtype=np.float64)
        self.iso_y = None if iso_y is None else np.asarray(iso_y, dtype=np.float64)
        self.cluster_weight = float(cluster_weight)
        self.C = float(C)

    def _matrix(self, det_scores):
        if self.stack_input == "prob":
            # Bounded inputs: one over-confident detector (e.g. the n-gram classifier on a source
            # it never saw) cannot outvote the others, which is what transfers across sources.
            return np.column_stack([np.clip(np.asarray(det_scores[k], dtype=np.float64), 0.0, 1.0)
                                    for k in self.detector_names])
        return np.column_stack([logit(det_scores[k]) for k in self.detector_names])

    def human_z(self, det_scores):
        """Matrix of z_k = Φ⁻¹(F_k(s_k)) against the human reference (method human_reference)."""
        from scipy.special import ndtri

        lo = 0.5 / max(self.ref_n, 1)
        cols = []
        for k in self.detector_names:
            x, cdf = self.ref[k]
            s = np.asarray(det_scores[k], dtype=np.float64) if k in det_scores else None
            if s is None:
                cols.append(np.full(len(next(iter(det_scores.values()))), np.nan))
                continue
            z = ndtri(np.clip(np.interp(s, x, cdf, left=lo, right=1 - lo), lo, 1 - lo))
            cols.append(np.where(np.isfinite(s), z, np.nan))
        return np.column_stack(cols)

    def raw(self, det_scores):
        """Combined score; with method human_reference a family that did not score a document
        (NaN, e.g. the LM outside its sample) drops out of that document's Stouffer sum."""
        if self.method == "human_reference":
            from scipy.special import ndtr

            from .weights import combine

            return ndtr(combine(self.human_z(det_scores), self.coef))
        return sigmoid(self._matrix(det_scores) @ self.coef + self.intercept)

    def has_optional(self, det_scores):
        """Rows scored by every optional family (the LM): they use the full-stack calibration."""
        n = len(next(iter(det_scores.values())))
        if not self.optional:
            return np.zeros(n, dtype=bool)
        return np.all([np.isfinite(np.asarray(det_scores.get(k, np.full(n, np.nan)), dtype=np.float64))
                       for k in self.optional], axis=0)

    def calibrate(self, raw, full=None):
        raw = np.asarray(raw, dtype=np.float64)
        if self.iso_x is None or len(self.iso_x) == 0:
            return raw
        iso = np.interp(raw, self.iso_x, self.iso_y)
        if full is not None and self.iso_full_x is not None and np.any(full):
            iso = np.where(full, np.interp(raw, self.iso_full_x, self.iso_full_y), iso)
        return (1 - TIE_BREAK) * iso + TIE_BREAK * raw

    def fast_scores(self, det_scores):
        """The same scores with the optional families removed (the fast stack)."""
        return {k: (np.full(len(v), np.nan) if k in self.optional else v) for k, v in det_scores.items()}

    def fit(self, det_scores, y, groups, sample_weight=None, seed=0, n_folds=5):
        """Stack on out-of-fold detector scores; isotonic calibration on nested OOF output."""
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold

        y = np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if self.method == "human_reference":
            human = y == 0
            self.ref = {}
            for k in self.detector_names:
                s = np.asarray(det_scores[k], dtype=np.float64)
                ref = human & np.isfinite(s)
                self.ref[k] = human_reference_table(s[ref], w[ref])
            self.ref_n = int(human.sum())
            self.coef = np.array([1.0 if self.weights is None else self.weights[k] for k in self.detector_names])
            self.intercept = 0.0

            def isotonic(raw, yy):
                # unweighted, like the stack's: calibrated for documents as they come, duplicates included
                iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, yy)
                return np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64)

            oof = self.raw(self.fast_scores(det_scores))
            self.iso_x, self.iso_y = isotonic(oof, y)
            self.calibration_prior = {"fast": float(y.mean())}
            full = self.has_optional(det_scores) if self.optional else np.zeros(len(y), dtype=bool)
            if full.sum() >= 20 and 0 < y[full].sum() < full.sum():
                oof_full = self.raw(det_scores)
                self.iso_full_x, self.iso_full_y = isotonic(oof_full[full], y[full])
                self.calibration_prior["full"] = float(y[full].mean())
            self.oof_raw = oof
            return self
        Z = self._matrix(det_scores)

        def lr_fit(idx):
            if self.nonneg:
                return _NonNegLR(self.C, self.equal_shrink).fit(Z[idx], y[idx], w[idx])
            m = LogisticRegression(C=self.C, max_iter=1000, random_state=seed)
            return m.fit(Z[idx], y[idx], sample_weight=w[idx])

        oof = np.zeros(len(y))
        k = min(n_folds, len(np.unique(groups)))
        for tr, te in GroupKFold(n_splits=k).split(Z, y, groups):
            oof[te] = lr_fit(tr).predict_proba(Z[te])[:, 1]
        m = lr_fit(np.arange(len(y)))
        self.coef, self.intercept = m.coef_[0].astype(np.float64), float(m.intercept_[0])
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof, y)
        self.iso_x = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.iso_y = np.asarray(iso.y_thresholds_, dtype=np.float64)
        self.oof_raw = oof
        return self

    def predict(self, det_scores, known_similarity=None, known_containment=None, cluster_size=None, prior=None):
        """Calibrated likelihood; `prior` (the crawl's expected machine share) replaces the
        training mix the calibration assumes, by Bayes' rule on the odds."""
        full = self.has_optional(det_scores)
        p = self.calibrate(self.raw(det_scores), full)
        if prior is not None:
            assumed = np.where(full, self.calibration_prior.get("full", self.calibration_prior.get("fast", 0.5)),
                               self.calibration_prior.get("fast", 0.5))
            q = np.clip(p, 1e-12, 1 - 1e-12)  # finer than logit()'s clip: Bayes' rule is exact at the ends
            p = sigmoid(np.log(q / (1 - q)) - logit(assumed) + logit(np.full(len(p), float(prior))))
        if cluster_size is not None and self.cluster_weight != 0.0:
            cs = np.maximum(_evidence(cluster_size, len(p), 1.0), 1.0)
            p = sigmoid(logit(p) + self.cluster_weight * np.log(cs))
        return np.clip(apply_evidence(p, known_similarity, known_containment), 0.0, 1.0)

    def get_state(self):
        if self.method == "human_reference":
            params = {"method": self.method, "detector_names": self.detector_names,
                      "weights": {k: float(c) for k, c in zip(self.detector_names, self.coef)},
                      "reference": "out-of-fold detector scores of the human training texts, weighted; "
                                   f"{self.ref_n} texts; at most {REF_POINTS} (score, mid-rank CDF) points",
                      "reference_n": self.ref_n,
                      "combination": "Stouffer: Phi(sum w_k z_k / sqrt(sum w_k^2)), z_k = Phi^-1(F_human,k(s_k))",
                      "calibration": "isotonic on out-of-fold combined output, linear interpolation, tie-break 1e-3",
                      "evidence": self._evidence_params(),
                      "optional": self.optional, "calibration_prior": self.calibration_prior,
                      "share": {}}
            arrays = {"coef": self.coef, "iso_x": self.iso_x, "iso_y": self.iso_y}
            if self.iso_full_x is not None:
                arrays["iso_full_x"], arrays["iso_full_y"] = self.iso_full_x, self.iso_full_y
            for k, (x, cdf) in self.ref.items():
                arrays[f"ref_x.{k}"], arrays[f"ref_cdf.{k}"] = x, cdf
            for stack, ref in sorted(self.share.items()):
                sp, sa = ref.get_state(f"share.{stack}.")
                params["share"][stack] = sp
                arrays.update(sa)
            return params, arrays
        params = {"detector_names": self.detector_names, "intercept": self.intercept,
                  "weights": {k: float(c) for k, c in zip(self.detector_names, self.coef)},
                  "stack_input": self.stack_input, "C": self.C, "nonneg": self.nonneg,
                  "equal_shrink": self.equal_shrink,
                  "calibration": "isotonic on out-of-fold stack output, linear interpolation, tie-break 1e-3",
                  "evidence": self._evidence_params()}
        return params, {"coef": self.coef, "iso_x": self.iso_x, "iso_y": self.iso_y}

    def _evidence_params(self):
        return {"cluster_weight": self.cluster_weight,
                "near_copy_similarity": NEAR_COPY_SIMILARITY, "near_copy_floor": NEAR_COPY_FLOOR,
                "containment_min": CONTAINMENT_MIN, "containment_ceiling": CONTAINMENT_CEILING}

    @classmethod
    def from_state(cls, params, arrays):
        if params.get("method") == "human_reference":
            names = params["detector_names"]
            ref = {k: (np.asarray(arrays[f"ref_x.{k}"], float), np.asarray(arrays[f"ref_cdf.{k}"], float))
                   for k in names}
            from .share import ShareReference

            share = {stack: ShareReference.from_state(sp, arrays, f"share.{stack}.")
                     for stack, sp in params.get("share", {}).items()}
            return cls(names, arrays["coef"], 0.0, arrays["iso_x"], arrays["iso_y"],
                       params["evidence"]["cluster_weight"], method="human_reference", ref=ref,
                       ref_n=params["reference_n"], optional=params.get("optional", ()),
                       weights=params["weights"], iso_full_x=arrays.get("iso_full_x"),
                       iso_full_y=arrays.get("iso_full_y"),
                       calibration_prior=params.get("calibration_prior"), share=share)
        return cls(params["detector_names"], arrays["coef"], params["intercept"], arrays["iso_x"],
                   arrays["iso_y"], params["evidence"]["cluster_weight"], params.get("C", 1.0),
                   params.get("nonneg", False),
                   "prob" if params.get("stack_input") == "prob" else "logit", params.get("equal_shrink", 0.0))
