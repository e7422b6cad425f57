"""Train and evaluate the detector ensemble (`corpus_audit.transforms.detectors`).

    train(data_globs, out_dir, seed=42) -> summary dict
    evaluate(data_globs, model_dir=None, report_path=None) -> results dict

Data: JSONL(.gz) rows with `text`, `label` (human | machine | mixed) and optionally `source`,
`generator`, `domain`, `group`, `language`. Training uses English human/machine rows only;
`mixed` and non-English rows are scored and reported separately. Text is whitespace-normalised
before any feature (the detectors do it themselves), and one artefact of the development data
is removed when loading: CS224N human abstracts begin with a "Title: … Abstract:" header that no
machine abstract has. Splits are by `group` only. Each (group, label) gets total weight 1 in
training, so the ~8 length-cut copies of a fast-detect-gpt article do not outweigh other sources.
"""
from __future__ import annotations

import copy
import glob
import gzip
import hashlib
import io
import json
import os
import re
import sys
import time

import numpy as np

from corpus_audit.transforms.detectors import base
from corpus_audit.transforms.detectors.ensemble import Ensemble
from corpus_audit.transforms.detectors.lm import WARMUP_TOKENS
from corpus_audit.transforms.detectors.lm_stage import DEFAULT_TOKENS
from corpus_audit.transforms.detectors.model_io import (DETECTOR_CLASSES, DETECTOR_NAMES, LM_FAMILY, LM_FEATURES,
                                                         DetectorModel, load_default_model, load_model,
                                                         save_model)

DETECTOR_VERSION = "1.7.0"
STATELESS = ("classifier", "stylometry", "wordfreq", "phrases")  # features independent of training data
CHAT_GENERATORS = ("gpt-3.5-turbo", "gpt-4", "chatgpt (gpt-3.5)", "chatgpt (gpt-3.5), self-edited",
                   "llama-2-70b-chat")
# Stacker options (see ensemble.py). Non-negative weights: a detector whose out-of-fold score runs
# against the label on the training sources is dropped rather than inverted. Leave-source-out
# stacking folds were tried and lowered LOSO chat AUROC (0.869 -> 0.819), so they are off.
SOURCE_FOLDS = False
NONNEG_STACK = True
# How the ensemble combines the detectors (ensemble.py): "human_reference" (equal-weight Stouffer
# combination of each detector's quantile among out-of-fold human scores) or "stack" (the
# logistic-regression stacker of models before 1.2.0). Measured leave-one-source-out on the
# development data, chat text vs all human: stack AUROC 0.875 / TPR@1% 19.7%, human_reference
# 0.899 / 33.9%; grouped CV pooled 0.815 vs 0.792 (the stacker fits the training sources' mix).
ENSEMBLE_METHOD = "human_reference"
MIN_CLASS = 10  # scopes with fewer rows of a class are not scored ("–")
LM_TOKENS = DEFAULT_TOKENS  # the audit's --lm-tokens default must be what the head is fitted on (README)
# The direction in which each LM statistic points to machine text, as zero-shot detection
# defines it: likelier tokens, log-probs above what the LM itself expects (Fast-DetectGPT's
# curvature), more top-1 and top-10 hits, lower entropy, a narrower spread of log-probs, more
# log-probability than the document's vocabulary or no text at all would give (the gains). The LM
# head sums the standardised statistics in these directions with equal weights and fits only
# the sum's slope (>= 0) and intercept (`LinearHead.fit(equal=True)`), so no training source
# decides which statistic to trust, nor inverts one (OUTFOX's student essays read likelier than
# its machine essays).
# Leave-one-source-out on the 3,148 LM-scored rows, each score taken as its quantile among the
# training sources' human texts (as the ensemble takes it), a logistic regression with
# coefficients bounded to these signs (the head until 1.5.0) read pooled AUROC 0.709 (base models
# / 2023 chat / 2024 chat 0.735 / 0.802 / 0.636), the equal-weight sum 0.724 (0.783 / 0.801 /
# 0.646), the mean log-probability alone 0.720. Adding the two gains (model 1.7.0) to the sum:
# alone 0.750 (0.801 / 0.828 / 0.675), and summed with the fast families' held-out z-scores as
# the ensemble does, pooled 0.799 -> 0.806 and 2023 chat TPR at 1 % FPR 43.2 -> 45.6 %.
LM_DIRECTION = {"lm_logprob": 1, "lm_entropy": -1, "lm_curvature": 1, "lm_rank1": 1, "lm_rank10": 1,
                "lm_logprob_std": -1, "lm_gain": 1, "lm_gain_prior": 1}
LM_SIGNS = tuple(LM_DIRECTION[k] for k in LM_FEATURES)
_TITLE_HEADER = re.compile(r"^\s*Title:[^\n]{0,400}\n\s*Abstract:\s*")
# Layout artefacts of the development sources that tell the classes apart without being
# evidence of authorship (both READMEs of the development data list them): a leading "Title: …"
# line (CS224N human abstracts; Claude-3-Opus Yelp reviews and ChatGPT-4 essays), Markdown
# emphasis and heading marks (arXiv machine abstracts, WritingPrompts human stories).
_TITLE_LINE = re.compile(r"^\s*(?:\*\*)?Title:[^\n]{0,300}\n")
_MARKDOWN = re.compile(r"\*\*|^[ \t]*#{1,6}[ \t]+", re.M)


# ---------------------------------------------------------------------------------- data
def _expand(data_globs):
    if isinstance(data_globs, str):
        data_globs = [data_globs]
    files = sorted({f for g in data_globs for f in (glob.glob(g) or ([g] if os.path.exists(g) else []))})
    if not files:
        raise FileNotFoundError(f"no data files match {data_globs}")
    return files


def load_rows(data_globs):
    """Rows with normalised `text` plus `raw_sha`: (rows, sha256 over the files' bytes)."""
    files = _expand(data_globs)
    digest = hashlib.sha256()
    rows = []
    for path in files:
        with open(path, "rb") as f:
            raw = f.read()
        digest.update(raw)
        data = gzip.decompress(raw) if path.endswith(".gz") else raw
        for line in io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"):
            if not line.strip():
                continue
            r = json.loads(line)
            text = base.to_text(r.get("text"))
            text = strip_layout_artefacts(text)
            rows.append({
                "id": r.get("id"),
                "text": base.normalize_text(text),
                "label": r.get("label", "human"),
                "source": r.get("source") or os.path.basename(path),
                "generator": r.get("generator") or r.get("label", ""),
                "domain": r.get("domain") or "unknown",
                "group": r.get("group") or r.get("id") or hashlib.sha1(text.encode()).hexdigest(),
                "language": r.get("language") or "en",
            })
    return rows, digest.hexdigest()


def strip_layout_artefacts(text):
    """The development data's title headers and Markdown marks, removed before normalisation."""
    text = _TITLE_LINE.sub("", _TITLE_HEADER.sub("", text), count=1)
    return _MARKDOWN.sub("", text) if ("**" in text or "#" in text) else text


def group_label_weights(groups, y):
    """Each (group, label) pair has total weight 1; then scaled to mean 1."""
    keys = [f"{g}\x00{v}" for g, v in zip(groups, y)]
    _, inv, cnt = np.unique(keys, return_inverse=True, return_counts=True)
    w = 1.0 / cnt[inv]
    return w * (len(w) / w.sum())


# ---------------------------------------------------------------------------------- fitting
def new_detectors():
    return {name: DETECTOR_CLASSES[name]() for name in DETECTOR_NAMES}


def featurize_stateless(texts, log=None):
    dets = new_detectors()
    feats = {}
    for name in STATELESS:
        t0 = time.perf_counter()
        feats[name] = dets[name].featurize(texts)
        if log:
            log(f"  features {name}: {time.perf_counter() - t0:.1f}s")
    return feats


def cached_prefix_length(z):
    """Tokens the unsuffixed columns of an LM feature cache were scored over (caches from
    before it was recorded: 128, the only length they were made with)."""
    return int(z["n_tokens"][0]) if "n_tokens" in z.files else 128


def check_cached_warmup(z, name):
    """A cache whose statistics left out another warm-up than the scorer's (caches from before it
    was recorded left out none) would train a head on other statistics than the audit computes."""
    warmup = int(z["warmup_tokens"][0]) if "warmup_tokens" in z.files else 0
    if warmup != WARMUP_TOKENS:
        raise ValueError(f"{name}: {warmup} warm-up tokens left out, the scorer leaves out {WARMUP_TOKENS}: "
                         f"rescore with scripts/lm_features.py")


def load_lm_features(path, rows, n_tokens=LM_TOKENS):
    """{lm_*: array aligned with rows}, NaN for rows the cache (scripts/lm_features.py) lacks."""
    with np.load(path, allow_pickle=False) as z:
        check_cached_warmup(z, path)
        base_n = cached_prefix_length(z)
        suffix = "" if n_tokens == base_n else f"_{n_tokens}"
        if LM_FEATURES[0] + suffix not in z.files:
            raise ValueError(f"{path}: LM features over {base_n} tokens and no {LM_FEATURES[0] + suffix} "
                             f"column; training takes them over {n_tokens}")
        missing = [k for k in LM_FEATURES if k + suffix not in z.files]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} column (a cache from before the statistic "
                             f"existed): rescore it with scripts/lm_features.py")
        index = {str(i): j for j, i in enumerate(z["id"])}
        cols = {k: z[k + suffix].astype(np.float64) for k in LM_FEATURES}
    at = np.array([index.get(str(r.get("id")), -1) for r in rows])
    return {k: np.where(at >= 0, v[np.maximum(at, 0)], np.nan) for k, v in cols.items()}


def fit_model(texts, y, groups, seed=42, features=None, n_inner=5, meta=None, log=None, sources=None,
              lm=None, weights=None):
    """Fit every detector on all given rows and the ensemble on their out-of-fold scores.

    `features` optionally holds precomputed stateless feature matrices for exactly these rows;
    `lm` the LM statistics of these rows (NaN where unscored), which adds the LM family."""
    from sklearn.model_selection import GroupKFold

    y = np.asarray(y, dtype=int)
    groups = np.asarray(groups)
    w = group_label_weights(groups, y)
    dets = new_detectors()
    X = {}
    for name, det in dets.items():
        det.prepare(texts, y, seed=seed)
        X[name] = features[name] if (features is not None and name in features) else det.featurize(texts)
    stack_groups = groups
    if SOURCE_FOLDS and sources is not None and len(np.unique(sources)) >= 2:
        # Out-of-fold scores for the stacker come from detectors trained on *other sources*, so
        # the stacker weights a detector by how well it transfers, not by how well it fits.
        stack_groups = np.asarray(sources)
        k = len(np.unique(stack_groups))
    else:
        k = min(n_inner, len(np.unique(groups)))
    folds = list(GroupKFold(n_splits=k).split(np.zeros(len(y)), y, stack_groups))
    oof = {}
    for name, det in dets.items():
        t0 = time.perf_counter()
        s = np.zeros(len(y))
        for tr, te in folds:
            d = copy.deepcopy(det)
            d.fit(X[name][tr], y[tr], w[tr], seed=seed)
            s[te] = d.predict(X[name][te])
        det.fit(X[name], y, w, seed=seed)
        oof[name] = s
        if log:
            log(f"  fit {name}: {time.perf_counter() - t0:.1f}s")
    names, lm_head = list(DETECTOR_NAMES), None
    if lm is not None:
        X = np.column_stack([lm[k] for k in LM_FEATURES])
        ok = np.all(np.isfinite(X), axis=1)
        if ok.sum() >= MIN_CLASS * 2 and 0 < y[ok].sum() < ok.sum():
            def head(idx):
                return base.LinearHead().fit(X[idx], y[idx], w[idx], seed=seed, signs=LM_SIGNS, equal=True)

            s = np.full(len(y), np.nan)
            for tr, te in folds:
                tr, te = tr[ok[tr]], te[ok[te]]
                if len(te) and 0 < y[tr].sum() < len(tr):
                    s[te] = head(tr).predict(X[te])
            lm_head = head(np.flatnonzero(ok))
            oof[LM_FAMILY], names = s, names + [LM_FAMILY]
    ens = Ensemble(names, nonneg=NONNEG_STACK, method=ENSEMBLE_METHOD, optional=[LM_FAMILY],
                   weights=None if weights is None else {k: weights.get(k, 1.0) for k in names})
    ens.fit(oof, y, groups, sample_weight=w, seed=seed, n_folds=n_inner)
    m = {"detector_version": DETECTOR_VERSION, "seed": int(seed), "prior": float(np.average(y, weights=w))}
    m.update(meta or {})
    return DetectorModel(dets, ens, m, lm_head), oof


def _version(model):
    from corpus_audit.transforms.detectors.model_io import model_state

    _, arrays = model_state(model)
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return f"{DETECTOR_VERSION}+{h.hexdigest()[:10]}"


def _trainable(r):
    return r["label"] in ("human", "machine") and r["language"] == "en"


def _loso_splits(rows):
    """(name, train indices, test indices) holding out each source; groups never span sources
    here, and if they did the held-out groups are dropped from training."""
    groups = np.array([r["group"] for r in rows])
    src = np.array([r["source"] for r in rows])
    allidx = np.arange(len(rows))
    splits = []
    for s in sorted(set(src)):
        te = np.flatnonzero(src == s)
        held = set(groups[te])
        tr = np.array([i for i in allidx if src[i] != s and groups[i] not in held])
        splits.append((f"held out {s}", tr, te))
    return splits


def transfer_fit(rows, feats, lm, seed):
    """Leave-one-source-out scores of every row, the family weights they choose, and the share
    references built from them: what the model is expected to do on sources it never saw."""
    from corpus_audit.transforms.detectors.share import build_reference
    from corpus_audit.transforms.detectors.weights import choose_weights, combine

    from scipy.special import ndtr

    loso = _cross_scores(rows, feats, _loso_splits(rows), seed, "loso", lm)
    names = [k[2:] for k in loso if k.startswith("z.")]
    Z = np.column_stack([loso["z." + k] for k in names])
    en = np.array([_trainable(r) for r in rows])
    y = np.array([r["label"] == "machine" for r in rows], dtype=int)
    src = np.array([r["source"] for r in rows])
    weights, table = choose_weights(Z[en], names, y[en], src[en], optional=[LM_FAMILY])
    w = np.array([weights[k] for k in names])
    fast_cols = [i for i, k in enumerate(names) if k != LM_FAMILY]
    raw_fast = ndtr(combine(Z[:, fast_cols], w[fast_cols]))
    raw_full = ndtr(combine(Z, w))
    references, checks = {}, {}
    references["fast"], checks["fast"] = build_reference(raw_fast[en], y[en], src[en], seed=seed)
    if LM_FAMILY in names:
        full = np.isfinite(Z[:, names.index(LM_FAMILY)]) & en
        if full.sum() >= 4 * MIN_CLASS:
            references["full"], checks["full"] = build_reference(raw_full[full], y[full], src[full], seed=seed)
    return {"loso": loso, "weights": weights, "weight_table": table, "references": references,
            "share_checks": checks, "raw_fast": raw_fast, "raw_full": raw_full}


def train(data_globs, out_dir, seed: int = 42, lm_features=None) -> dict:
    """Train all detectors on every English human/machine row and the ensemble on OOF scores;
    family weights and share references come from leave-one-source-out scores."""
    t0 = time.perf_counter()
    rows, sha = load_rows(data_globs)
    lm_all = load_lm_features(lm_features, rows) if lm_features else None
    feats_all = featurize_stateless([r["text"] for r in rows], log=_log)
    transfer = transfer_fit(rows, feats_all, lm_all, seed) if len({r["source"] for r in rows}) > 1 else None
    keep = np.array([_trainable(r) for r in rows])
    tr = [r for r, k in zip(rows, keep) if k]
    texts = [r["text"] for r in tr]
    y = np.array([r["label"] == "machine" for r in tr], dtype=int)
    groups = np.array([r["group"] for r in tr])
    sources = np.array([r["source"] for r in tr])
    lm = None if lm_all is None else {k: v[keep] for k, v in lm_all.items()}
    model, oof = fit_model(texts, y, groups, seed=seed, log=_log, sources=sources, lm=lm,
                           features={k: v[keep] for k, v in feats_all.items()},
                           weights=None if transfer is None else transfer["weights"],
                           meta={"training_data_sha256": sha, "trained_on": {
                               "files": [os.path.basename(f) for f in _expand(data_globs)],
                               "rows": len(tr), "human": int((y == 0).sum()), "machine": int((y == 1).sum()),
                               "groups": int(len(np.unique(groups))),
                               "lm_scored_rows": 0 if lm is None else int(np.isfinite(lm[LM_FEATURES[0]]).sum())}})
    if lm is not None:
        model.meta["lm"] = {"n_tokens": LM_TOKENS, "warmup_tokens": WARMUP_TOKENS, "features": list(LM_FEATURES)}
    if transfer is not None:
        model.ensemble.share = transfer["references"]
    model.meta["detector_version"] = _version(model)
    save_model(out_dir, model)
    from sklearn.metrics import roc_auc_score

    oof_auc = {k: float(roc_auc_score(y[np.isfinite(v)], v[np.isfinite(v)])) for k, v in oof.items()}
    summary = {"out_dir": out_dir, "detector_version": model.detector_version, "seed": seed,
               "training_data_sha256": sha, "rows": len(tr), "dropped_rows": len(rows) - len(tr),
               "ensemble_weights": model.ensemble.get_state()[0]["weights"],
               "share_reference_rms": {k: v.shift for k, v in model.ensemble.share.items()},
               "oof_auroc": oof_auc, "seconds": round(time.perf_counter() - t0, 1),
               "model_bytes": sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))}
    _log(json.dumps(summary, indent=1))
    return summary


# ---------------------------------------------------------------------------------- metrics
def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def metrics(y, s):
    """AUROC and TPR at 1% / 5% FPR (machine positive); None when a class has < MIN_CLASS rows."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(y, dtype=int)
    s = np.asarray(s, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos < MIN_CLASS or n_neg < MIN_CLASS:
        return {"n_human": n_neg, "n_machine": n_pos, "auroc": None, "tpr@1%": None, "tpr@5%": None}
    fpr, tpr, _ = roc_curve(y, s)
    tpr_at = lambda f: float(tpr[fpr <= f + 1e-12].max())
    return {"n_human": n_neg, "n_machine": n_pos, "auroc": float(roc_auc_score(y, s)),
            "tpr@1%": tpr_at(0.01), "tpr@5%": tpr_at(0.05)}


def reliability(y, p, bins=10):
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = idx == b
        out.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(m.sum()),
                    "mean_predicted": float(p[m].mean()) if m.any() else None,
                    "observed_machine": float(y[m].mean()) if m.any() else None})
    ece = sum(r["n"] * abs(r["mean_predicted"] - r["observed_machine"]) for r in out if r["n"]) / max(len(y), 1)
    return out, float(ece)


def _length_bucket(n):
    return "<100 words" if n < 100 else ("100-300 words" if n <= 300 else ">300 words")


def _scopes(rows):
    """(scope name, row indices, y) of every reported slice; English human/machine rows only,
    except `language:` scopes (non-English) and `mixed:` scopes (mixed vs same-domain human)."""
    lab = np.array([r["label"] for r in rows])
    lang = np.array([r["language"] for r in rows])
    src = np.array([r["source"] for r in rows])
    gen = np.array([r["generator"] for r in rows])
    dom = np.array([r["domain"] for r in rows])
    nw = np.array([len(r["text"].split()) for r in rows])
    en_hm = (lang == "en") & np.isin(lab, ["human", "machine"])
    human = lab == "human"
    out = []

    def add(name, mask):
        idx = np.flatnonzero(mask)
        out.append((name, idx, (lab[idx] != "human").astype(int)))

    add("pooled (en)", en_hm)
    chat = np.isin(gen, CHAT_GENERATORS)
    add("chat models vs all human", en_hm & (human | chat))
    for s in sorted(set(src)):
        add(f"source: {s}", en_hm & (src == s))
        add(f"chat vs human, source: {s}", en_hm & (src == s) & (human | chat))
    for g in sorted(set(gen[lab == "machine"])):
        srcs = set(src[gen == g])
        add(f"generator: {g}", en_hm & ((gen == g) | (human & np.isin(src, list(srcs)))))
    fam = np.array([generator_family(g) if l == "machine" else "" for g, l in zip(gen, lab)])
    for f in ("base model", "2023 chat", "2024 chat"):
        srcs = set(src[fam == f])
        add(f"generators: {f}", en_hm & ((fam == f) | (human & np.isin(src, list(srcs)))))
    for d in sorted(set(dom[en_hm])):
        add(f"domain: {d}", en_hm & (dom == d))
    bucket = np.array([_length_bucket(n) for n in nw])
    for b in ("<100 words", "100-300 words", ">300 words"):
        add(f"length: {b}", en_hm & (bucket == b))
    for lg in sorted(set(lang) - {"en"}):
        add(f"language: {lg} (not trained on)", (lang == lg) & np.isin(lab, ["human", "machine"]))
    mixed = lab == "mixed"
    if mixed.any():
        mdoms = set(dom[mixed])
        add("mixed (gpt-4 rewrites) vs same-domain human", (mixed | human) & np.isin(dom, list(mdoms)) & (lang == "en"))
    return out


# ---------------------------------------------------------------------------------- evaluation
def _score_rows(model, rows, idx, feats, lm=None):
    """Detector scores, each family's human z, and the ensemble likelihood (full stack and fast
    stack) for rows[idx], reusing cached stateless features and LM statistics."""
    scores = {}
    texts = [rows[i]["text"] for i in idx]
    for name, det in model.detectors.items():
        X = feats[name][idx] if name in feats else det.featurize(texts)
        scores[name] = np.clip(det.predict(X), 0, 1)
    empty = np.array([len(t) == 0 for t in texts])
    for name in scores:
        scores[name][empty] = model.prior
    if lm is not None and model.has_lm:
        scores[LM_FAMILY] = model.score_lm({k: v[idx] for k, v in lm.items()})
    fam = {k: scores.get(k, np.full(len(idx), np.nan)) for k in model.ensemble.detector_names}
    scores["ensemble"] = model.likelihood(fam)
    scores["ensemble_fast"] = model.likelihood(model.ensemble.fast_scores(fam))
    if model.ensemble.method == "human_reference":
        Z = model.ensemble.human_z(fam)
        for j, k in enumerate(model.ensemble.detector_names):
            scores["z." + k] = Z[:, j]
    return scores


def _cross_scores(rows, feats, splits, seed, label, lm=None):
    n = len(rows)
    out = {}
    for fold_name, train_idx, test_idx in splits:
        t0 = time.perf_counter()
        train_idx = np.array([i for i in train_idx if _trainable(rows[i])])
        texts = [rows[i]["text"] for i in train_idx]
        y = np.array([rows[i]["label"] == "machine" for i in train_idx], dtype=int)
        groups = np.array([rows[i]["group"] for i in train_idx])
        sources = np.array([rows[i]["source"] for i in train_idx])
        sub = {k: v[train_idx] for k, v in feats.items()}
        lm_sub = None if lm is None else {k: v[train_idx] for k, v in lm.items()}
        model, _ = fit_model(texts, y, groups, seed=seed, features=sub, sources=sources, lm=lm_sub)
        s = _score_rows(model, rows, test_idx, feats, lm)
        for k, v in s.items():
            out.setdefault(k, np.full(n, np.nan))[test_idx] = v
        _log(f"[{label}] {fold_name}: trained on {len(train_idx)}, scored {len(test_idx)} "
             f"in {time.perf_counter() - t0:.0f}s")
    return out


def _fmt(x, pct=False):
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _report(results):
    names = results["scorers"]
    L = ["# Detector evaluation", "",
         f"Data sha256 `{results['data_sha256']}`; {results['rows']} rows. Training uses English "
         "human/machine rows only; splits by `group` or by source. Metrics: AUROC, TPR at 1% and 5% FPR "
         "(machine = positive), unweighted over rows; – = fewer than 10 rows of a class. "
         "`chat` = " + ", ".join(CHAT_GENERATORS) + ". `ensemble_fast` is the stack without the LM; "
         "`ensemble` adds it where LM statistics exist. `z.lm` is the LM's score as the ensemble reads "
         "it, Phi^-1 of its quantile among the scoring model's human training texts: pooled over "
         "sources, raw `lm` scores of different fold models sit on different scales. "
         "Leave-one-source-out ensembles use the family "
         f"weights that scheme chose ({_weights_text(results['weights'])}), calibrated on the other "
         f"sources, at the default prior {results['prior']}.", ""]
    if results.get("share"):
        L += ["## Crawl share estimate on held-out sources", "",
              "Crawls of 1,000 documents mixed from one source at a known machine share, estimated with "
              "references built without that source (5 draws per source). `reference`: the development "
              "data's human and machine histograms. `anchored`: the crawl also holds 100 other human "
              "texts of its source as its pre-cut-off documents (sources with fewer than 200 human "
              "texts are left out), the crawl's own human reference; its estimate combines the "
              "mixture with the anchor's low-tail shortfall by their measured errors. Each source's "
              "interval is widened by the error measured on the other sources only, so `interval "
              "covers` is what a crawl of an unseen source gets.", "",
              "| stack | method | true share | mean error | mean abs error | worst abs error | interval covers | "
              "mean interval width | estimate per source |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in results["share"]:
            per = ", ".join(f"{k.split('/')[-1]} {v:.2f}" for k, v in r["by_source"].items())
            L.append(f"| {r['stack']} | {r['method']} | {r['true_share']:.0%} | {r['mean_error']:+.3f} | "
                     f"{r['mean_abs_error']:.3f} | {r['worst_abs_error']:.3f} | {r['coverage']:.0%} | "
                     f"{r['mean_interval_width']:.3f} | {per} |")
        L.append("")
    for scheme, res in results["schemes"].items():
        cols = [k for k in names if any(k in m for m in res["metrics"].values())]
        L += [f"## {scheme}", "", "AUROC per scope and scorer:", "",
              "| scope | n human | n machine | " + " | ".join(cols) + " |",
              "|---|---:|---:|" + "---:|" * len(cols)]
        for scope, m in res["metrics"].items():
            e = m[cols[0]]
            L.append(f"| {scope} | {e['n_human']} | {e['n_machine']} | " +
                     " | ".join(_fmt(m[k]["auroc"]) if k in m else "–" for k in cols) + " |")
        L += ["", "TPR at 1% / 5% FPR per scope and scorer:", "",
              "| scope | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        for scope, m in res["metrics"].items():
            L.append(f"| {scope} | " + " | ".join(
                f"{_fmt(m[k]['tpr@1%'], True)} / {_fmt(m[k]['tpr@5%'], True)}" if k in m else "–" for k in cols) + " |")
        fpr = res.get("fpr_at_0.5") or {}
        if fpr:
            stacks = list(fpr)
            L += ["", "Human texts at likelihood ≥ 0.5, per domain:", "",
                  "| domain | n | " + " | ".join(stacks) + " |", "|---|---:|" + "---:|" * len(stacks)]
            for d in fpr[stacks[0]]:
                L.append(f"| {d} | {fpr[stacks[0]][d][0]} | " + " | ".join(
                    _fmt(fpr[k].get(d, (0, None))[1], True) for k in stacks) + " |")
        for k, r in (res.get("rules") or {}).items():
            L += ["", f"Provenance rules on `{k}`: `synthetic` at p ≥ t mislabels this share of human texts "
                  "and labels this share of machine texts; `human` at p ≤ t mislabels machine texts and "
                  "labels human texts:", "", "| rule | t | error | labelled |", "|---|---:|---:|---:|"]
            for label in ("synthetic", "human"):
                for t, (err, cov) in r[label].items():
                    L.append(f"| {label} | {t} | {_fmt(err, True)} | {_fmt(cov, True)} |")
        L += ["", f"Reliability of the ensemble (English human/machine rows; ECE {res['ece']:.3f}):", "",
              "| bin | n | mean predicted | observed machine share |", "|---|---:|---:|---:|"]
        for r in res["reliability"]:
            L.append(f"| {r['bin']} | {r['n']} | {_fmt(r['mean_predicted'])} | {_fmt(r['observed_machine'])} |")
        if res.get("mixed"):
            mx = res["mixed"]
            L += ["", f"Mixed rows (GPT-4 rewrites of human essays, n={mx['n']}): mean ensemble score "
                  f"{mx['mean_mixed']:.3f} vs {mx['mean_human_same_domain']:.3f} for human essays of the same "
                  f"domains; share ≥ 0.5: {100 * mx['share_ge_0.5']:.1f}%."]
        L.append("")
    return "\n".join(L)


def _weights_text(weights):
    return ", ".join(f"{k} {v:g}" for k, v in weights.items())


def generator_family(generator):
    """base model | 2023 chat | 2024 chat, by the model's release (for the evaluation's breakdown)."""
    g = generator.lower()
    if any(k in g for k in ("claude-3", "gpt-4o", "gpt-4-turbo", "gpt-4-0125", "gpt-4-1106", "gemini", "llama-3",
                            "qwen")):
        return "2024 chat"
    if any(k in g for k in ("gpt-3.5", "chatgpt", "gpt-4", "llama-2", "text-davinci-003", "flan-t5")):
        return "2023 chat"
    return "base model"


def calibrated_loso(raw, rows, prior):
    """LOSO likelihoods: each source's raw scores calibrated by an isotonic fit on the other
    sources' LOSO scores, then moved from that fit's machine share to `prior`."""
    from sklearn.isotonic import IsotonicRegression

    from corpus_audit.transforms.detectors.base import logit, sigmoid

    src = np.array([r["source"] for r in rows])
    y = np.array([r["label"] == "machine" for r in rows], dtype=int)
    fit_rows = np.array([_trainable(r) for r in rows]) & np.isfinite(raw)
    out = np.full(len(rows), np.nan)
    for s in sorted(set(src)):
        test, other = (src == s) & np.isfinite(raw), fit_rows & (src != s)
        if not test.any() or not 0 < y[other].sum() < other.sum():
            continue
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw[other], y[other])
        p = np.clip(iso.predict(raw[test]), 1e-4, 1 - 1e-4)
        out[test] = sigmoid(logit(p) - logit(y[other].mean()) + logit(prior))
    return out


def _share_table(checks):
    """Per stack, method and true share: mean and worst |error| of the estimate on held-out
    sources, and how often the interval covers the truth when its error model is measured on
    the other sources (as a crawl of an unseen source gets it)."""
    from corpus_audit.transforms.detectors.share import held_out_intervals

    table = []
    for stack, by_method in checks.items():
        for method, rows in sorted(by_method.items(), reverse=True):
            rows = held_out_intervals(rows, anchored=method == "anchored")
            for share in sorted({r["share"] for r in rows}):
                sel = [r for r in rows if r["share"] == share]
                err = np.array([r["estimate"] - share for r in sel])
                lo, hi = np.array([r["low"] for r in sel]), np.array([r["high"] for r in sel])
                table.append({"stack": stack, "method": method, "true_share": share,
                              "mean_abs_error": float(np.abs(err).mean()),
                              "worst_abs_error": float(np.abs(err).max()), "mean_error": float(err.mean()),
                              "coverage": float(((lo <= share) & (share <= hi)).mean()),
                              "mean_interval_width": float(np.mean(hi - lo)),
                              "by_source": {src: round(float(np.mean([r["estimate"] for r in sel
                                                                      if r["source"] == src])), 3)
                                            for src in sorted({r["source"] for r in sel})}})
    return table


def evaluate(data_globs, model_dir=None, report_path=None, seed: int = 42, n_folds: int = 5,
             lm_features=None, cv=False, scores_path=None) -> dict:
    """Leave-one-source-out (retraining per fold; the family weights and share references it
    chooses), optionally grouped k-fold CV, and the given (or default) model on all rows as a
    resubstitution sanity check (not a generalisation estimate when it saw the same data)."""
    from sklearn.model_selection import GroupKFold

    from corpus_audit.transforms.detectors.ensemble import DEFAULT_PRIOR

    t0 = time.perf_counter()
    rows, sha = load_rows(data_globs)
    texts = [r["text"] for r in rows]
    _log(f"evaluate: {len(rows)} rows")
    feats = featurize_stateless(texts, log=_log)
    lm = load_lm_features(lm_features, rows) if lm_features else None
    groups = np.array([r["group"] for r in rows])
    transfer = transfer_fit(rows, feats, lm, seed)
    loso = transfer["loso"]
    names = [k[2:] for k in loso if k.startswith("z.")]
    loso["ensemble_fast"] = calibrated_loso(transfer["raw_fast"], rows, DEFAULT_PRIOR)
    loso["ensemble"] = calibrated_loso(transfer["raw_full"], rows, DEFAULT_PRIOR)
    scheme_scores = {"leave-one-source-out": loso}
    if scores_path:  # per-row LOSO scores, by id (no text), for analyses of one's own
        meta = {k: np.array([str(r[k]) for r in rows]) for k in ("id", "source", "label", "generator", "domain")}
        np.savez_compressed(scores_path, **meta, **{k.replace(".", "_"): v for k, v in loso.items()})
    if cv:
        allidx = np.arange(len(rows))
        splits_cv = [(f"fold {i}", tr, te) for i, (tr, te) in
                     enumerate(GroupKFold(n_splits=n_folds).split(allidx, groups=groups))]
        scheme_scores[f"grouped {n_folds}-fold CV"] = _cross_scores(rows, feats, splits_cv, seed, "cv", lm)
    model = load_model(model_dir) if model_dir else load_default_model()
    scheme_scores["given model on all rows (resubstitution)"] = _score_rows(model, rows, np.arange(len(rows)), {}, lm)

    scopes = _scopes(rows)
    lab = np.array([r["label"] for r in rows])
    en_hm = np.flatnonzero(np.array([_trainable(r) for r in rows]))
    # z.lm: the LM's score as the ensemble reads it, its quantile among the scoring model's human
    # training texts; raw det_lm of different fold models sit on different scales when pooled
    scorers = DETECTOR_NAMES + ([LM_FAMILY, "z." + LM_FAMILY] if LM_FAMILY in names else []) + \
        ["ensemble_fast", "ensemble"]
    results = {"data_sha256": sha, "rows": len(rows), "model_version": model.detector_version,
               "scorers": scorers, "prior": DEFAULT_PRIOR, "weights": transfer["weights"],
               "share": _share_table(transfer["share_checks"]), "schemes": {}}
    for scheme, sc in scheme_scores.items():
        met = {}
        for scope, idx, y in scopes:
            met[scope] = {k: metrics(y[np.isfinite(sc[k][idx])], sc[k][idx][np.isfinite(sc[k][idx])])
                          for k in scorers if k in sc}
        e = sc["ensemble"][en_hm]
        ok = np.isfinite(e)
        rel, ece = reliability((lab[en_hm][ok] == "machine").astype(int), e[ok])
        entry = {"metrics": met, "reliability": rel, "ece": ece, "fpr_at_0.5": _fpr_by_domain(rows, sc),
                 "rules": _rule_errors(rows, sc)}
        mixed = np.flatnonzero(lab == "mixed")
        if len(mixed):
            mdoms = {rows[i]["domain"] for i in mixed}
            hum = np.array([i for i in range(len(rows)) if lab[i] == "human" and rows[i]["domain"] in mdoms], dtype=int)
            e = sc["ensemble"]
            entry["mixed"] = {"n": int(len(mixed)), "mean_mixed": float(np.nanmean(e[mixed])),
                              "mean_human_same_domain": float(np.nanmean(e[hum])) if len(hum) else float("nan"),
                              "share_ge_0.5": float(np.nanmean(e[mixed] >= 0.5))}
        results["schemes"][scheme] = entry
    results["seconds"] = round(time.perf_counter() - t0, 1)
    md = _report(results)
    print(md)
    if report_path:
        os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
        with open(report_path, "w", encoding="utf-8") as f:
            f.write(md)
    return results


def _rule_errors(rows, sc):
    """What the provenance rules on the likelihood accept: for `synthetic` at p ≥ t the share of
    human texts it mislabels and of machine texts it labels; for `human` at p ≤ t the reverse."""
    y = np.array([r["label"] == "machine" for r in rows], dtype=int)
    en = np.array([_trainable(r) for r in rows])
    out = {}
    for k in ("ensemble_fast", "ensemble"):
        if k not in sc:
            continue
        v = sc[k]
        ok = en & np.isfinite(v)
        h, m = v[ok & (y == 0)], v[ok & (y == 1)]
        out[k] = {"synthetic": {t: (float((h >= t).mean()), float((m >= t).mean())) for t in (0.5, 0.8, 0.9, 0.95)},
                  "human": {t: (float((m <= t).mean()), float((h <= t).mean())) for t in (0.1, 0.05, 0.02, 0.01)}}
    return out


def _fpr_by_domain(rows, sc):
    """Share of human texts at likelihood ≥ 0.5, per domain and pooled (English rows)."""
    out = {}
    dom = np.array([r["domain"] for r in rows])
    human = np.array([r["label"] == "human" and r["language"] == "en" for r in rows])
    for k in ("ensemble_fast", "ensemble"):
        if k not in sc:
            continue
        v = sc[k]
        ok = human & np.isfinite(v)
        out[k] = {"pooled": (int(ok.sum()), float((v[ok] >= 0.5).mean()) if ok.any() else None)}
        for d in sorted(set(dom[ok])):
            m = ok & (dom == d)
            out[k][d] = (int(m.sum()), float((v[m] >= 0.5).mean()))
    return out


if __name__ == "__main__":  # python -m corpus_audit.pipelines.train train|evaluate DATA... [--out DIR]
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["train", "evaluate"])
    ap.add_argument("data", nargs="+")
    ap.add_argument("--out", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--report", default=None)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    if a.command == "train":
        train(a.data, a.out, seed=a.seed)
    else:
        evaluate(a.data, model_dir=a.model, report_path=a.report, seed=a.seed)
