"""Family weights of the ensemble, chosen by how well they transfer to unseen sources.

The inputs are leave-one-source-out z-scores (each family's quantile among human texts, from a
model that never saw the scored source), so a weight vector is judged on generators and domains
outside its training data. The grid is small on purpose: a family is in or out, and the LM gets
one of a few weights, so the choice cannot fit the held-out sources' noise.
"""
from __future__ import annotations

import itertools

import numpy as np

LM_WEIGHTS = (0.0, 1.0, 2.0, 3.0, 4.0)


def combine(Z, w):
    """Stouffer over the families that scored each row (NaN = not scored; none scored → 0)."""
    live = np.isfinite(Z)
    num = np.where(live, Z, 0.0) @ w
    den = np.sqrt(live.astype(np.float64) @ (w ** 2))
    return num / np.maximum(den, 1e-12)


def per_source_auroc(score, y, sources):
    """Mean over sources of the within-source AUROC (sources with both classes)."""
    from sklearn.metrics import roc_auc_score

    vals = []
    for s in np.unique(sources):
        m = (sources == s) & np.isfinite(score)
        if 0 < y[m].sum() < m.sum():
            vals.append(roc_auc_score(y[m], score[m]))
    return float(np.mean(vals)) if vals else float("nan")


def choose_weights(Z, names, y, sources, optional=("lm",)):
    """{family: weight} maximising the mean of the fast stack's and the full stack's mean
    per-source AUROC; ties go to the earlier (simpler) vector of the grid."""
    Z, y, sources = np.asarray(Z, float), np.asarray(y, int), np.asarray(sources).astype(str)
    fast_idx = [i for i, k in enumerate(names) if k not in optional]
    opt_idx = [i for i, k in enumerate(names) if k in optional]
    full_rows = np.all(np.isfinite(Z[:, opt_idx]), axis=1) if opt_idx else np.zeros(len(y), bool)
    best, best_w, table = -np.inf, None, []
    for mask in itertools.product((1.0, 0.0), repeat=len(fast_idx)):
        if not any(mask):
            continue
        for lw in (LM_WEIGHTS if opt_idx else (0.0,)):
            w = np.zeros(len(names))
            w[fast_idx] = mask
            w[opt_idx] = lw
            fast = per_source_auroc(combine(Z[:, fast_idx], w[fast_idx]), y, sources)
            full = per_source_auroc(combine(Z[full_rows], w)[:], y[full_rows], sources[full_rows]) \
                if full_rows.any() else fast
            score = 0.5 * (fast + full)
            table.append((dict(zip(names, w.tolist())), fast, full))
            if score > best + 1e-9:
                best, best_w = score, w
    return dict(zip(names, best_w.tolist())), table
