"""Shared pieces of the detectors: text normalisation, tokenising, a standardised linear head.

Every detector works on *normalised* text (`normalize_text`): runs of whitespace collapse to
one space, both ends are stripped, typographic quotes/apostrophes/dashes fold to ASCII, and
control characters are dropped. Layout (newlines, leading spaces, double spaces, curly quotes)
separates the classes of the development data by artefact, so no feature may see it.
"""
from __future__ import annotations

import re

import numpy as np

_WS = re.compile(r"\s+")
_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_FOLD = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ",
})

WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")
EPS = 1e-4


def to_text(x) -> str:
    """Anything → str: bytes are decoded as UTF-8 (invalid bytes replaced), None → ''."""
    if x is None:
        return ""
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x).decode("utf-8", errors="replace")
    if not isinstance(x, str):
        return str(x)
    return x


def normalize_text(x) -> str:
    """Collapse whitespace, strip, fold typographic punctuation, drop control characters."""
    t = to_text(x)
    if not t.isascii():
        t = t.translate(_FOLD)
    if _CTRL.search(t):
        t = _CTRL.sub(" ", t)
    return " ".join(t.split())


def normalize_texts(texts) -> list[str]:
    return [normalize_text(t) for t in texts]


def sigmoid(z):
    z = np.clip(np.asarray(z, dtype=np.float64), -50, 50)
    return 1.0 / (1.0 + np.exp(-z))


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


class LinearHead:
    """Standardise → logistic regression; state is four plain arrays."""

    def __init__(self, mean=None, scale=None, coef=None, intercept=0.0):
        self.mean, self.scale, self.coef = mean, scale, coef
        self.intercept = float(intercept)

    def fit(self, X, y, sample_weight=None, C=1.0, seed=0):
        from sklearn.linear_model import LogisticRegression

        X = np.asarray(X, dtype=np.float64)
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        mean = np.average(X, axis=0, weights=w)
        sd = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
        self.mean, self.scale = mean, np.where(sd > 1e-9, sd, 1.0)
        lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
        lr.fit((X - self.mean) / self.scale, y, sample_weight=w)
        self.coef, self.intercept = lr.coef_[0].astype(np.float64), float(lr.intercept_[0])
        return self

    def decision(self, X):
        X = np.asarray(X, dtype=np.float64)
        Z = np.clip((X - self.mean) / self.scale, -8, 8)  # robust to out-of-range features
        return Z @ self.coef + self.intercept

    def predict(self, X):
        return sigmoid(self.decision(X))

    def get_state(self, prefix):
        return {f"{prefix}mean": self.mean, f"{prefix}scale": self.scale, f"{prefix}coef": self.coef,
                f"{prefix}intercept": np.array([self.intercept])}

    @classmethod
    def from_state(cls, arrays, prefix):
        return cls(np.asarray(arrays[f"{prefix}mean"], float), np.asarray(arrays[f"{prefix}scale"], float),
                   np.asarray(arrays[f"{prefix}coef"], float), float(arrays[f"{prefix}intercept"][0]))


class Detector:
    """Interface of a detector family.

    `featurize(texts)` maps normalised texts to a feature matrix (pure given the parameters);
    `prepare(texts, y, seed)` sets data-dependent feature parameters (only compression has any);
    `fit(X, y, w)` fits the head on features; `predict(X)` → probability-like scores in [0, 1];
    `score(texts)` = predict(featurize(texts)). State: (params: JSON dict, arrays: name → ndarray).
    """

    name = "base"

    def prepare(self, texts, y, seed=0):
        return self

    def featurize(self, texts):  # pragma: no cover - interface
        raise NotImplementedError

    def fit(self, X, y, sample_weight=None, seed=0):  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, X):  # pragma: no cover - interface
        raise NotImplementedError

    def score(self, texts):
        return self.predict(self.featurize(texts))

    def get_state(self):  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def from_state(cls, params, arrays):  # pragma: no cover - interface
        raise NotImplementedError


class LinearDetector(Detector):
    """A detector whose features are one fixed-length vector per text (`features_one`) and
    whose head is a standardised logistic regression (`self.head`, `self.C`)."""

    feature_names = ()

    def features_one(self, text):  # pragma: no cover - interface
        raise NotImplementedError

    def featurize(self, texts):
        if not len(texts):
            return np.zeros((0, len(self.feature_names)))
        return np.vstack([self.features_one(t) for t in texts])

    def fit(self, X, y, sample_weight=None, seed=0):
        self.head.fit(X, y, sample_weight, C=self.C, seed=seed)
        return self

    def predict(self, X):
        return self.head.predict(X)


def split_sentences(text):
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])", text) if s]


_EN_STOP = frozenset(
    "the of and to a in is that it was for on are as with his they at be this have from or one had "
    "by but not what all were we when your can said there use an each which she do how their if "
    "will up other about out many then them these so some her would make like him into has look "
    "more could no than been its who now my over did down only way may should very our just also".split())


def english_share(text: str, max_chars=3000) -> float:
    """Share of Latin-script word tokens that are very common English words (0 for no words)."""
    words = WORD_RE.findall(text[:max_chars].lower())
    if not words:
        return 0.0
    return sum(w in _EN_STOP for w in words) / len(words)


def guess_is_english(texts, threshold=0.15) -> np.ndarray:
    """Cheap stop-word language check: True where ≥ threshold of words are English stop words
    and most characters are Latin letters."""
    out = np.zeros(len(texts), dtype=bool)
    for i, t in enumerate(texts):
        t = to_text(t)[:3000]
        letters = sum(c.isalpha() for c in t)
        ascii_letters = sum(("a" <= c <= "z") or ("A" <= c <= "Z") for c in t)
        if letters == 0 or ascii_letters / letters < 0.8:
            continue
        out[i] = english_share(t) >= threshold
    return out
