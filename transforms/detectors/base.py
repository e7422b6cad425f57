"""Shared pieces of the detectors: text normalisation, tokenising, a standardised linear head.

Every detector works on *normalised* text (`normalize_text`): runs of whitespace collapse to
one space, both ends are stripped, typographic quotes/apostrophes/dashes fold to ASCII, and
control characters are dropped. Layout (newlines, leading spaces, double spaces, curly quotes)
separates the classes of the development data by artefact, so no feature may see it.
"""
from __future__ import annotations

import functools
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

_FOLD_PAIRS = tuple((chr(k), v) for k, v in _FOLD.items())
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
        # str.translate with a dict costs ~0.1 µs per character; a replace per folded character
        # that occurs is a C scan (same result: every replacement is ASCII, so none chains)
        for a, b in _FOLD_PAIRS:
            if a in t:
                t = t.replace(a, b)
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


def _bounded_logistic(Z, y, w, C, signs):
    """sklearn's L2 logistic objective (C · Σ w·loss + ½‖coef‖², intercept unpenalised) with
    each coefficient bounded to its sign, by L-BFGS-B."""
    from scipy.optimize import minimize

    def loss(p):
        t = Z @ p[1:] + p[0]
        f = C * np.sum(w * (np.logaddexp(0.0, t) - y * t)) + 0.5 * p[1:] @ p[1:]
        g = C * w * (sigmoid(t) - y)
        return f, np.concatenate([[g.sum()], Z.T @ g + p[1:]])

    bounds = [(None, None)] + [(0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None)
                               for s in signs]
    r = minimize(loss, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                 options={"maxiter": 2000})
    return r.x[1:].astype(np.float64), float(r.x[0])


class LinearHead:
    """Standardise → logistic regression; state is four plain arrays."""

    def __init__(self, mean=None, scale=None, coef=None, intercept=0.0):
        self.mean, self.scale, self.coef = mean, scale, coef
        self.intercept = float(intercept)

    def fit(self, X, y, sample_weight=None, C=1.0, seed=0, signs=None, equal=False):
        """`signs` (+1 / -1 / 0 per feature) bounds each coefficient to that sign (0: free): a
        feature whose training-data direction contradicts it gets weight 0 instead of flipping.
        `equal` (with `signs`) fixes the direction to the signs' equal-weight sum of the
        standardised features and fits only its slope (≥ 0) and the intercept: the training
        sources choose the scale of the score, not which feature it trusts."""
        if equal and signs is None:
            raise ValueError("an equal-weight head needs the features' signs")
        X = np.asarray(X, dtype=np.float64)
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        mean = np.average(X, axis=0, weights=w)
        sd = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=w))
        self.mean, self.scale = mean, np.where(sd > 1e-9, sd, 1.0)
        Z = (X - self.mean) / self.scale
        if signs is None:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=C, max_iter=2000, random_state=seed)
            lr.fit(Z, y, sample_weight=w)
            self.coef, self.intercept = lr.coef_[0].astype(np.float64), float(lr.intercept_[0])
        elif equal:
            d = np.asarray(signs, dtype=np.float64) / np.sqrt(len(signs))
            slope, self.intercept = _bounded_logistic((Z @ d)[:, None], np.asarray(y, float), w, C, (1,))
            self.coef = slope[0] * d
        else:
            self.coef, self.intercept = _bounded_logistic(Z, np.asarray(y, float), w, C, signs)
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
    # True: `featurize(texts, tokens=None)` takes a shared `TokenBatch` of exactly these texts
    uses_tokens = False

    def features_one(self, text):  # pragma: no cover - interface
        raise NotImplementedError

    def featurize(self, texts):
        if not len(texts):
            return np.zeros((0, len(self.feature_names)))
        return np.vstack([self.features_one(t) for t in texts])

    def score(self, texts, tokens=None):
        return self.predict(self.featurize(texts, tokens) if self.uses_tokens else self.featurize(texts))

    def fit(self, X, y, sample_weight=None, seed=0):
        self.head.fit(X, y, sample_weight, C=self.C, seed=seed)
        return self

    def predict(self, X):
        return self.head.predict(X)


# ---------------------------------------------------------------------------------- shared tokens
TOKEN_CHARS = 6000  # stylometry and word-frequency features look at this many leading characters
_P = np.uint64(0x100000001B3)
# byte classes: 1 = ASCII letter or apostrophe (word), 2 = ASCII digit, 0 = anything else
BYTE_CLASS = np.zeros(256, dtype=np.int8)
BYTE_CLASS[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'")] = 1
BYTE_CLASS[list(b"0123456789")] = 2
LOWER = np.arange(256, dtype=np.uint64)
LOWER[65:91] += 32
IS_UPPER = np.zeros(256, dtype=np.int32)
IS_UPPER[65:91] = 1
_APOS = ord("'")


def word_hash_array(words) -> np.ndarray:
    """Hashes of single words as `tokenize` computes them (for look-up tables)."""
    P, M = int(_P), (1 << 64) - 1
    out = []
    for w in words:
        h, p = 0, 1
        for c in w.lower().encode("utf-8"):
            h = (h + c * p) & M
            p = (p * P) & M
        out.append(h)
    return np.array(out, dtype=np.uint64)


class TokenBatch:
    """One tokenising pass over a batch of normalised texts, shared by the stylometry and
    word-frequency detectors (which compute their features for the whole batch with numpy).

    The first `max_chars` characters of every text are UTF-8 encoded and joined with a "\\n"
    byte (never part of normalised text) into `B`; text d is B[doc_start[d]:doc_end[d]].
    Tokens are maximal runs of ASCII letters/apostrophes (one leading and one trailing apostrophe
    stripped) or of ASCII digits. Per token (in text order): byte `starts`/`ends` in B, `tdoc`
    (its text), `digit` (a digit run) and `h`, a 64-bit polynomial hash of its lower-case bytes
    (the same for the same word whatever its case; `word_hash_array` gives it for a word list).
    `n[d]` tokens belong to text d, starting at token `tok_off[d]`."""

    def __init__(self, texts, max_chars=TOKEN_CHARS):
        self.texts = [t[:max_chars] for t in texts]
        enc = [t.encode("utf-8") for t in self.texts]
        self.D = D = len(enc)
        lens = np.fromiter(map(len, enc), dtype=np.int64, count=D)
        self.doc_start = np.cumsum(lens + 1) - (lens + 1)
        self.doc_end = self.doc_start + lens
        B = self.B = np.frombuffer(b"\n".join(enc), dtype=np.uint8)
        self._cum_upper = None
        if not len(B):
            z = np.zeros(0, dtype=np.int64)
            self.starts = self.ends = self.tdoc = z
            self.digit, self.h = np.zeros(0, bool), np.zeros(0, np.uint64)
        else:
            c = BYTE_CLASS[B]
            change = np.flatnonzero(c[1:] != c[:-1]) + 1
            starts = np.concatenate(([0], change))
            ends = np.concatenate((change, [len(B)]))
            kind = c[starts]
            keep = kind != 0
            starts, ends, kind = starts[keep], ends[keep], kind[keep]
            word = kind == 1
            starts = starts + (word & (B[starts] == _APOS))
            ends = ends - (word & (B[ends - 1] == _APOS))
            ok = ends > starts
            self.starts, self.ends, self.digit = starts[ok], ends[ok], kind[ok] == 2
            self.tdoc = np.searchsorted(self.doc_start, self.starts, side="right") - 1
            self.h = _hash_spans(B, self.starts, self.ends)
        self.n = np.bincount(self.tdoc, minlength=D)
        self.tok_off = np.cumsum(self.n) - self.n

    def cum_upper(self):
        """Prefix counts of upper-case ASCII letters in B (length len(B) + 1)."""
        if self._cum_upper is None:
            self._cum_upper = np.concatenate(([0], np.cumsum(IS_UPPER[self.B])))
        return self._cum_upper


_HASH_CHUNK = 1 << 18


@functools.lru_cache(maxsize=None)
def _pow_tables():
    """(P^j, P^-j) mod 2^64 for j ≤ _HASH_CHUNK, built on first use. Cached as one tuple: with the
    threaded runner two workers may ask at once, and neither may see half-built tables."""
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.r_[np.uint64(1), np.full(_HASH_CHUNK, _P, dtype=np.uint64)], dtype=np.uint64)
        inv = np.uint64(pow(int(_P), -1, 1 << 64))
        inverses = np.cumprod(np.r_[np.uint64(1), np.full(_HASH_CHUNK, inv, dtype=np.uint64)], dtype=np.uint64)
    return powers, inverses


def _hash_spans(B, starts, ends):
    """Σ_j lower(B[j]) · P^(j - start) mod 2^64 for every span, from prefix sums computed over
    windows of at most _HASH_CHUNK bytes (spans never cross a window: they are cut at texts,
    which are shorter than a window, and windows start at a span start)."""
    POW, PINV = _pow_tables()
    h = np.empty(len(starts), dtype=np.uint64)
    lb = LOWER[B]
    i = 0
    while i < len(starts):
        base = int(starts[i])
        j = int(np.searchsorted(ends, base + _HASH_CHUNK, side="right"))
        j = max(j, i + 1)
        seg = lb[base: int(ends[j - 1])]
        H = np.concatenate((np.zeros(1, np.uint64), np.cumsum(seg * POW[: len(seg)], dtype=np.uint64)))
        s, e = starts[i:j] - base, ends[i:j] - base
        h[i:j] = (H[e] - H[s]) * PINV[s]
        i = j
    return h


def tokenize_batch(texts, max_chars: int = TOKEN_CHARS) -> TokenBatch:
    return TokenBatch(texts, max_chars)


def split_sentences(text):
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])", text) if s]
