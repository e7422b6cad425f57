"""Stylometry: sentence rhythm, vocabulary richness, punctuation, function words, repetition.

Features are computed on the first `max_chars` characters of normalised text and none of them
grows with document length (richness and repetition use a fixed window of words), so length,
which is confounded with the label in the development data, is not learnt. Standardised
features → logistic regression.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from .base import LinearHead, LinearDetector

FUNCTION_WORDS = (
    "the a an and but or so because although though while whereas if then also however "
    "moreover furthermore additionally overall ultimately therefore thus hence indeed instead "
    "i me my we our you your he she his her they them their it its this that these those "
    "is are was were be been being have has had do does did not no can could will would should "
    "may might must of in on at to for with by from about into through between among across "
    "very really just quite actually well like only even still yet some any many much more most "
    "such both each every other another own same which who whom whose what when where why how "
    "there here up out").split()
_FW_INDEX = {w: i for i, w in enumerate(dict.fromkeys(FUNCTION_WORDS))}
N_FW = len(_FW_INDEX)

PUNCT = [",", ".", ";", ":", "!", "?", '"', "'", "(", "-", "*", "#", "%", "$", "/", "&"]
_TOKEN_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|\d+(?:[.,]\d+)*")
_CONTRACTION_RE = re.compile(r"'(?:t|s|re|ve|ll|d|m)\b", re.I)
_STARTS_CONJ = re.compile(r"^(?:And|But|So|Or|Because|Yet)\b")

BASE_FEATURES = [
    "log_sent_len_mean", "sent_len_cv", "sent_len_std_log", "sent_len_max_rel", "word_len_mean",
    "word_len_std", "long_word_share", "mattr50", "hapax100", "rep_bigram200", "rep_trigram200",
    "upper_char_share", "capitalised_mid_share", "upper_token_share", "digit_token_share",
    "contraction_rate", "question_sent_share", "exclaim_sent_share", "conj_start_share",
    "comma_per_sent", "fw_share",
]
FEATURE_NAMES = BASE_FEATURES + [f"punct[{p}]" for p in PUNCT] + [f"fw[{w}]" for w in _FW_INDEX]


def _repeat_share(words, n):
    if len(words) < n + 1:
        return 0.0
    grams = list(zip(*(words[i:] for i in range(n))))
    return 1.0 - len(set(grams)) / len(grams)


_UPPER = re.compile(r"[A-Z]")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def stylometry_features(text: str, max_chars=6000) -> np.ndarray:
    t = text[:max_chars]
    f = np.zeros(len(FEATURE_NAMES), dtype=np.float64)
    toks = _TOKEN_RE.findall(t)
    if not toks:
        return f
    words = list(map(str.lower, toks))
    n = len(words)
    sents = [s for s in _SENT_SPLIT.split(t) if s]
    ns = len(sents)
    sl = [s.count(" ") + 1 for s in sents]
    # If the text was cut mid-sentence, the last fragment is not a sentence.
    if len(sl) > 1 and t[-1] not in ".!?\"')":
        sl = sl[:-1]
    m = sum(sl) / len(sl)
    sd = math.sqrt(sum((x - m) ** 2 for x in sl) / len(sl))
    lsl = [math.log(x) for x in sl]
    lm = sum(lsl) / len(lsl)
    lsd = math.sqrt(sum((x - lm) ** 2 for x in lsl) / len(lsl))
    wl = np.array(list(map(len, toks)), dtype=np.float64)
    win = words[:50 * (n // 50)] or words
    ttrs = [len(set(win[i:i + 50])) / len(win[i:i + 50]) for i in range(0, len(win), 50)]
    first100 = words[:100]
    counts = Counter(first100)
    hapax = sum(1 for c in counts.values() if c == 1) / len(first100)
    w200 = words[:200]
    letters = float(wl.sum()) or 1.0
    caps = sum(map(str.istitle, toks))
    sent_caps = sum(1 for s in sents if s[0].isupper())
    fw_hits = [j for j in map(_FW_INDEX.get, words) if j is not None]
    base = [
        math.log1p(m), sd / m, lsd, max(sl) / m, wl.mean(), wl.std(),
        float((wl >= 9).mean()), sum(ttrs) / len(ttrs), hapax, _repeat_share(w200, 2),
        _repeat_share(w200, 3), len(_UPPER.findall(t)) / letters, max(caps - sent_caps, 0) / n,
        sum(map(str.isupper, toks)) / n, sum(map(str.isdigit, toks)) / n,
        (len(_CONTRACTION_RE.findall(t)) if "'" in t else 0) / n,
        sum(s.endswith("?") for s in sents) / ns, sum(s.endswith("!") for s in sents) / ns,
        sum(bool(_STARTS_CONJ.match(s)) for s in sents) / ns, t.count(",") / ns,
        len(fw_hits) / n,
    ]
    f[: len(base)] = base
    o = len(base)
    for j, p in enumerate(PUNCT):
        f[o + j] = t.count(p) / n
    o += len(PUNCT)
    f[o:] = np.bincount(np.array(fw_hits, dtype=np.int64), minlength=N_FW) / n
    return f


class StylometryDetector(LinearDetector):
    feature_names = FEATURE_NAMES
    name = "stylometry"

    def __init__(self, max_chars=6000, C=0.3):
        self.max_chars, self.C = int(max_chars), float(C)
        self.head = LinearHead()

    def features_one(self, text):
        return stylometry_features(text, self.max_chars)

    def get_state(self):
        return ({"max_chars": self.max_chars, "C": self.C, "features": FEATURE_NAMES},
                self.head.get_state(""))

    @classmethod
    def from_state(cls, params, arrays):
        if list(params["features"]) != FEATURE_NAMES:
            raise ValueError("stylometry feature list of the saved model differs from this code")
        d = cls(params["max_chars"], params["C"])
        d.head = LinearHead.from_state(arrays, "")
        return d
