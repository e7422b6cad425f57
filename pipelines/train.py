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
from corpus_audit.transforms.detectors.model_io import (DETECTOR_CLASSES, DETECTOR_NAMES, DetectorModel,
                                                         load_default_model, load_model, save_model)

DETECTOR_VERSION = "1.2.0"
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
_TITLE_HEADER = re.compile(r"^\s*Title:[^\n]{0,400}\n\s*Abstract:\s*")


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
            text = _TITLE_HEADER.sub("", text)
            rows.append({
                "text": base.normalize_text(text),
                "label": r.get("label", "human"),
                "source": r.get("source") or os.path.basename(path),
                "generator": r.get("generator") or r.get("label", ""),
                "domain": r.get("domain") or "unknown",
                "group": r.get("group") or r.get("id") or hashlib.sha1(text.encode()).hexdigest(),
                "language": r.get("language") or "en",
            })
    return rows, digest.hexdigest()


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


def fit_model(texts, y, groups, seed=42, features=None, n_inner=5, meta=None, log=None, sources=None):
    """Fit every detector on all given rows and the ensemble on their out-of-fold scores.

    `features` optionally holds precomputed stateless feature matrices for exactly these rows."""
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
    ens = Ensemble(DETECTOR_NAMES, nonneg=NONNEG_STACK, method=ENSEMBLE_METHOD).fit(oof, y, groups, sample_weight=w, seed=seed, n_folds=n_inner)
    m = {"detector_version": DETECTOR_VERSION, "seed": int(seed), "prior": float(np.average(y, weights=w))}
    m.update(meta or {})
    return DetectorModel(dets, ens, m), oof


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


def train(data_globs, out_dir, seed: int = 42) -> dict:
    """Train all detectors on every English human/machine row and the ensemble on OOF scores."""
    t0 = time.perf_counter()
    rows, sha = load_rows(data_globs)
    tr = [r for r in rows if _trainable(r)]
    texts = [r["text"] for r in tr]
    y = np.array([r["label"] == "machine" for r in tr], dtype=int)
    groups = np.array([r["group"] for r in tr])
    sources = np.array([r["source"] for r in tr])
    model, oof = fit_model(texts, y, groups, seed=seed, log=_log, sources=sources,
                           meta={"training_data_sha256": sha, "trained_on": {
                               "files": [os.path.basename(f) for f in _expand(data_globs)],
                               "rows": len(tr), "human": int((y == 0).sum()), "machine": int((y == 1).sum()),
                               "groups": int(len(np.unique(groups)))}})
    model.meta["detector_version"] = _version(model)
    save_model(out_dir, model)
    from sklearn.metrics import roc_auc_score

    oof_auc = {k: float(roc_auc_score(y, v)) for k, v in oof.items()}
    summary = {"out_dir": out_dir, "detector_version": model.detector_version, "seed": seed,
               "training_data_sha256": sha, "rows": len(tr), "dropped_rows": len(rows) - len(tr),
               "ensemble_weights": model.ensemble.get_state()[0]["weights"],
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
def _score_rows(model, rows, idx, feats):
    """Detector scores + ensemble likelihood for rows[idx], reusing cached stateless features."""
    scores = {}
    texts = [rows[i]["text"] for i in idx]
    for name, det in model.detectors.items():
        X = feats[name][idx] if name in feats else det.featurize(texts)
        scores[name] = np.clip(det.predict(X), 0, 1)
    empty = np.array([len(t) == 0 for t in texts])
    for name in scores:
        scores[name][empty] = model.prior
    scores["ensemble"] = model.likelihood({k: scores[k] for k in model.detector_names})
    return scores


def _cross_scores(rows, feats, splits, seed, label):
    n = len(rows)
    out = {k: np.full(n, np.nan) for k in DETECTOR_NAMES + ["ensemble"]}
    for fold_name, train_idx, test_idx in splits:
        t0 = time.perf_counter()
        train_idx = np.array([i for i in train_idx if _trainable(rows[i])])
        texts = [rows[i]["text"] for i in train_idx]
        y = np.array([rows[i]["label"] == "machine" for i in train_idx], dtype=int)
        groups = np.array([rows[i]["group"] for i in train_idx])
        sources = np.array([rows[i]["source"] for i in train_idx])
        sub = {k: v[train_idx] for k, v in feats.items()}
        model, _ = fit_model(texts, y, groups, seed=seed, features=sub, sources=sources)
        s = _score_rows(model, rows, test_idx, feats)
        for k, v in s.items():
            out[k][test_idx] = v
        _log(f"[{label}] {fold_name}: trained on {len(train_idx)}, scored {len(test_idx)} "
             f"in {time.perf_counter() - t0:.0f}s")
    return out


def _fmt(x, pct=False):
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def _report(results):
    L = ["# Detector evaluation", "",
         f"Data sha256 `{results['data_sha256']}`; {results['rows']} rows. Training uses English "
         "human/machine rows only; splits by `group`. Metrics: AUROC, TPR at 1% and 5% FPR "
         "(machine = positive), unweighted over rows; – = fewer than 10 rows of a class. "
         "`chat` = " + ", ".join(CHAT_GENERATORS) + ".", ""]
    names = DETECTOR_NAMES + ["ensemble"]
    for scheme, res in results["schemes"].items():
        L += [f"## {scheme}", "", "AUROC per scope and scorer:", "",
              "| scope | n human | n machine | " + " | ".join(names) + " |",
              "|---|---:|---:|" + "---:|" * len(names)]
        for scope, m in res["metrics"].items():
            e = m["ensemble"]
            L.append(f"| {scope} | {e['n_human']} | {e['n_machine']} | " +
                     " | ".join(_fmt(m[k]["auroc"]) for k in names) + " |")
        L += ["", "TPR at 1% / 5% FPR per scope and scorer:", "",
              "| scope | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for scope, m in res["metrics"].items():
            L.append(f"| {scope} | " + " | ".join(
                f"{_fmt(m[k]['tpr@1%'], True)} / {_fmt(m[k]['tpr@5%'], True)}" for k in names) + " |")
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


def evaluate(data_globs, model_dir=None, report_path=None, seed: int = 42, n_folds: int = 5) -> dict:
    """Grouped k-fold CV and leave-one-source-out, retraining per fold; the given (or default)
    model is also scored on all rows as a resubstitution sanity check (not a generalisation
    estimate when it was trained on the same data)."""
    from sklearn.model_selection import GroupKFold

    t0 = time.perf_counter()
    rows, sha = load_rows(data_globs)
    texts = [r["text"] for r in rows]
    _log(f"evaluate: {len(rows)} rows")
    feats = featurize_stateless(texts, log=_log)
    groups = np.array([r["group"] for r in rows])
    src = np.array([r["source"] for r in rows])
    allidx = np.arange(len(rows))
    splits_cv = [(f"fold {i}", tr, te) for i, (tr, te) in
                 enumerate(GroupKFold(n_splits=n_folds).split(allidx, groups=groups))]
    # Groups never span sources here; if they did, LOSO drops the held-out groups from training.
    splits_loso = []
    for s in sorted(set(src)):
        te = np.flatnonzero(src == s)
        held = set(groups[te])
        tr = np.array([i for i in allidx if src[i] != s and groups[i] not in held])
        splits_loso.append((f"held out {s}", tr, te))
    scheme_scores = {f"grouped {n_folds}-fold CV": _cross_scores(rows, feats, splits_cv, seed, "cv")}
    if len(splits_loso) > 1:
        scheme_scores["leave-one-source-out"] = _cross_scores(rows, feats, splits_loso, seed, "loso")
    model = load_model(model_dir) if model_dir else load_default_model()
    res_scores = _score_rows(model, rows, allidx, {})
    scheme_scores["given model on all rows (resubstitution)"] = res_scores

    scopes = _scopes(rows)
    lab = np.array([r["label"] for r in rows])
    en_hm = np.flatnonzero(np.array([_trainable(r) for r in rows]))
    results = {"data_sha256": sha, "rows": len(rows), "model_version": model.detector_version, "schemes": {}}
    for scheme, sc in scheme_scores.items():
        met = {}
        for scope, idx, y in scopes:
            met[scope] = {k: metrics(y, sc[k][idx]) for k in DETECTOR_NAMES + ["ensemble"]}
        rel, ece = reliability((lab[en_hm] == "machine").astype(int), sc["ensemble"][en_hm])
        entry = {"metrics": met, "reliability": rel, "ece": ece}
        mixed = np.flatnonzero(lab == "mixed")
        if len(mixed):
            mdoms = {rows[i]["domain"] for i in mixed}
            hum = np.array([i for i in allidx if lab[i] == "human" and rows[i]["domain"] in mdoms], dtype=int)
            e = sc["ensemble"]
            entry["mixed"] = {"n": int(len(mixed)), "mean_mixed": float(e[mixed].mean()),
                              "mean_human_same_domain": float(e[hum].mean()) if len(hum) else float("nan"),
                              "share_ge_0.5": float((e[mixed] >= 0.5).mean())}
        results["schemes"][scheme] = entry
    results["seconds"] = round(time.perf_counter() - t0, 1)
    md = _report(results)
    print(md)
    if report_path:
        os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
        with open(report_path, "w", encoding="utf-8") as f:
            f.write(md)
    return results


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
