"""The detector model: detectors + ensemble, saved as `model.json` + `arrays.npz` (no pickle).

`model.json` holds `detector_version`, every detector's feature parameters, the detector
names, the ensemble weights and calibration description, the training data's sha256 and the
seed, and the sha256 of every array (so two trainings can be compared for reproducibility).
`arrays.npz` holds plain numeric arrays only and is read with `allow_pickle=False`.
"""
from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np

from .base import LinearHead, normalize_text, tokenize_batch
from .classifier import ClassifierDetector
from .compression import CompressionDetector
from .ensemble import Ensemble
from .phrases import PhrasesDetector
from .stylometry import StylometryDetector
from .wordfreq_stats import WordfreqDetector

FORMAT = "corpus-audit-detectors/1"
DETECTOR_CLASSES = {c.name: c for c in (ClassifierDetector, StylometryDetector, WordfreqDetector,
                                        CompressionDetector, PhrasesDetector)}
DETECTOR_NAMES = list(DETECTOR_CLASSES)
# The language-model family (lm.py): its statistics are computed where a worker has the LM, and
# this head turns them into det_lm. Optional in the ensemble: a document it did not score keeps
# the fast stack's likelihood.
LM_FAMILY = "lm"
LM_FEATURES = ("lm_logprob", "lm_entropy", "lm_curvature", "lm_rank1", "lm_rank10", "lm_logprob_std", "lm_gain",
               "lm_gain_prior")
DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_model")
MIN_CHARS = 1  # texts with fewer non-space characters get the prior instead of detector scores


class DetectorModel:
    """Detectors and ensemble. Texts given to `score_detectors` are raw: they are normalised here."""

    def __init__(self, detectors: dict, ensemble: Ensemble, meta: dict, lm_head: LinearHead | None = None,
                 lm_features=LM_FEATURES):
        self.detectors = detectors
        self.ensemble = ensemble
        self.meta = dict(meta)
        self.lm_head = lm_head
        # the statistics the head was fitted on, in its order: a model from before a statistic
        # was added keeps reading the ones it knows
        self.lm_features = tuple(lm_features)

    @property
    def has_lm(self) -> bool:
        return self.lm_head is not None

    def score_lm(self, features: dict) -> np.ndarray:
        """LM statistics {lm_*: array} → det_lm in [0, 1]; NaN where the LM did not score."""
        X = np.column_stack([np.asarray(features[k], dtype=np.float64) for k in self.lm_features])
        out = np.full(len(X), np.nan)
        ok = np.all(np.isfinite(X), axis=1)
        if self.lm_head is not None and ok.any():
            out[ok] = self.lm_head.predict(X[ok])
        return out

    @property
    def detector_names(self) -> list:
        return list(self.detectors)

    @property
    def detector_version(self) -> str:
        return self.meta["detector_version"]

    @property
    def prior(self) -> float:
        return float(self.meta.get("prior", 0.5))

    def score_detectors(self, texts) -> dict:
        """Raw texts (str, bytes or None) → {name: scores in [0, 1]}; empty texts get the prior."""
        norm = [normalize_text(t) for t in texts]
        ok = np.array([len(t) >= MIN_CHARS for t in norm], dtype=bool)
        live = [t for t, k in zip(norm, ok) if k]
        # one tokenisation shared by the detectors that use it (stylometry, word frequencies)
        tokens = tokenize_batch(live) if live and any(getattr(d, "uses_tokens", False)
                                                    for d in self.detectors.values()) else None
        out = {}
        for name, det in self.detectors.items():
            s = np.full(len(norm), self.prior, dtype=np.float64)
            if live:
                sc = det.score(live, tokens) if getattr(det, "uses_tokens", False) else det.score(live)
                s[ok] = np.clip(sc, 0.0, 1.0)
            out[name] = s
        return out

    def likelihood(self, det_scores: dict, known_similarity=None, known_containment=None,
                   cluster_size=None, prior=None) -> np.ndarray:
        """Calibrated likelihood in [0, 1] that each document is machine-written (see ensemble.py);
        `prior` is the machine share expected in the crawl (None: the training mix)."""
        return self.ensemble.predict(det_scores, known_similarity, known_containment, cluster_size, prior)

    def predict(self, texts, known_similarity=None, known_containment=None, cluster_size=None):
        return self.likelihood(self.score_detectors(texts), known_similarity, known_containment, cluster_size)


def _array_digest(arrays):
    return {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:16] for k, v in sorted(arrays.items())}


def model_state(model: DetectorModel):
    params, arrays = {}, {}
    for name, det in model.detectors.items():
        p, a = det.get_state()
        params[name] = p
        arrays.update({f"{name}.{k}": np.asarray(v) for k, v in a.items()})
    if model.lm_head is not None:
        arrays.update({k: np.asarray(v) for k, v in model.lm_head.get_state(f"{LM_FAMILY}.").items()})
        params[LM_FAMILY] = {"features": list(model.lm_features),
                             "head": "standardise; the statistics' equal-weight sum in their zero-shot "
                                     "directions, its scale and offset by logistic regression"}
    ep, ea = model.ensemble.get_state()
    arrays.update({f"ensemble.{k}": np.asarray(v) for k, v in ea.items()})
    for k, v in arrays.items():
        if v.dtype == object:
            raise TypeError(f"array {k} has dtype object")
    doc = {"format": FORMAT, **model.meta, "detector_names": model.detector_names,
           "detectors": params, "ensemble": ep, "array_sha256": _array_digest(arrays)}
    return doc, arrays


def save_model(directory: str, model: DetectorModel) -> str:
    os.makedirs(directory, exist_ok=True)
    doc, arrays = model_state(model)
    np.savez_compressed(os.path.join(directory, "arrays.npz"), **arrays)
    with open(os.path.join(directory, "model.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=False, ensure_ascii=False)
        f.write("\n")
    return directory


def load_model(directory: str) -> DetectorModel:
    """Read through Beam's filesystems: workers load `--model gs://...` or a path only the
    cluster mounts, not the driver's disk."""
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(FileSystems.join(directory, "model.json")):
        raise FileNotFoundError(f"{directory}: no detector model (model.json) there")
    with FileSystems.open(FileSystems.join(directory, "model.json")) as f:
        doc = json.loads(f.read().decode("utf-8"))
    if doc.get("format") != FORMAT:
        raise ValueError(f"{directory}: not a {FORMAT} model")
    with FileSystems.open(FileSystems.join(directory, "arrays.npz")) as f:
        raw = io.BytesIO(f.read())
    with np.load(raw, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    detectors = {}
    for name in doc["detector_names"]:
        sub = {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(name + ".")}
        detectors[name] = DETECTOR_CLASSES[name].from_state(doc["detectors"][name], sub)
    ens = {k[len("ensemble."):]: v for k, v in arrays.items() if k.startswith("ensemble.")}
    ensemble = Ensemble.from_state(doc["ensemble"], ens)
    meta = {k: doc[k] for k in ("detector_version", "training_data_sha256", "seed", "prior", "trained_on",
                                "lm") if k in doc}
    lm_head = LinearHead.from_state(arrays, f"{LM_FAMILY}.") if f"{LM_FAMILY}.coef" in arrays else None
    lm_features = doc["detectors"].get(LM_FAMILY, {}).get("features", LM_FEATURES)
    return DetectorModel(detectors, ensemble, meta, lm_head, lm_features)


_DEFAULT = None


def load_default_model() -> DetectorModel:
    """The model shipped in the package (`default_model/`), loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_model(DEFAULT_MODEL_DIR)
    return _DEFAULT
