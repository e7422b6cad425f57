"""Detectors of machine-written text, their stacked + calibrated ensemble, and provenance.

Pipeline API:

    model = load_default_model()                  # or load_model(dir)
    scores = model.score_detectors(texts)         # {"classifier": arr, ...}  → columns det_<name>
    p = model.likelihood(scores, known_similarity, known_containment, cluster_size)
    prov, reason = decide_provenance(p, known_match_kind=..., ...)
"""
from .base import normalize_text
from .model_io import DETECTOR_NAMES, DetectorModel, load_default_model, load_model, save_model
from .provenance import decide_provenance

__all__ = ["DETECTOR_NAMES", "DetectorModel", "decide_provenance", "load_default_model",
           "load_model", "normalize_text", "save_model"]
