"""Word-frequency statistics: "perplexity" without a language model.

Language models favour frequent words; people use more rare words and vary more. The word
list and Zipf frequencies come from `wordfreq` (English, top `vocab_size` words) at training
time and are saved with the model, so scoring needs neither wordfreq nor the network and does
not change when wordfreq does. Features (first `max_chars` characters, lower-cased words):
mean/std/percentiles of Zipf frequency (OOV → `oov_zipf`), a GLTR-style histogram of ranks
(top-10/100/1k/10k/rest-of-list/OOV), content-word statistics, mean log-rank, and the spread of
the mean frequency of 20-word windows. Standardised features → logistic regression.
"""
from __future__ import annotations

import re

import numpy as np

from .base import WORD_RE, LinearHead, LinearDetector

_FULL_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*\Z")
FEATURE_NAMES = ["zipf_mean", "zipf_std", "zipf_p10", "zipf_p25", "zipf_p50", "rank_lt10",
                 "rank_lt100", "rank_lt1k", "rank_lt10k", "rank_in_list", "oov", "content_zipf_mean",
                 "content_zipf_std", "log_rank_mean", "window20_zipf_std", "rare_share"]
WINDOW = 20


def build_vocabulary(vocab_size=50000):
    """(words, zipf) from wordfreq's English list, keeping plain lower-case words."""
    import wordfreq

    words, zipf = [], []
    for w in wordfreq.top_n_list("en", vocab_size):
        if _FULL_WORD.match(w):
            words.append(w)
            zipf.append(wordfreq.zipf_frequency(w, "en"))
    return words, np.asarray(zipf, dtype=np.float32)


class WordfreqDetector(LinearDetector):
    feature_names = FEATURE_NAMES
    name = "wordfreq"

    def __init__(self, vocab_size=50000, max_chars=5000, oov_zipf=2.0, C=1.0):
        self.vocab_size, self.max_chars = int(vocab_size), int(max_chars)
        self.oov_zipf, self.C = float(oov_zipf), float(C)
        self.words, self.zipf, self._lookup = None, None, None
        self.head = LinearHead()

    def _ensure_vocab(self):
        if self.words is None:
            self.words, self.zipf = build_vocabulary(self.vocab_size)
        if self._lookup is None:
            self._lookup = {w: i for i, w in enumerate(self.words)}
            big = self.vocab_size * 4
            # index len(words) = out of vocabulary
            self._rank = np.r_[np.arange(len(self.words), dtype=np.float64), big]
            self._z = np.r_[self.zipf.astype(np.float64), self.oov_zipf]
            self._logrank = np.log1p(self._rank)

    def features_one(self, text):
        f = np.zeros(len(FEATURE_NAMES))
        words = WORD_RE.findall(text[: self.max_chars].lower())
        n = len(words)
        if not n:
            return f
        get, miss = self._lookup.get, len(self.words)
        idx = np.fromiter((get(w, miss) for w in words), dtype=np.int64, count=n)
        ranks, z = self._rank[idx], self._z[idx]
        zs = np.sort(z)
        content = z[ranks >= 100]
        oov = idx == miss
        if n >= 2 * WINDOW:
            k = n // WINDOW
            win_std = float(z[: k * WINDOW].reshape(k, WINDOW).mean(axis=1).std())
        else:
            win_std = 0.0
        f[:] = [z.mean(), z.std(), zs[int(0.1 * (n - 1))], zs[int(0.25 * (n - 1))], zs[int(0.5 * (n - 1))],
                (ranks < 10).mean(), (ranks < 100).mean(), (ranks < 1000).mean(), (ranks < 10000).mean(),
                1.0 - oov.mean(), oov.mean(), content.mean() if len(content) else self.oov_zipf,
                content.std() if len(content) else 0.0, self._logrank[idx].mean(), win_std, (z < 3.0).mean()]
        return f

    def featurize(self, texts):
        self._ensure_vocab()
        return super().featurize(texts)

    def get_state(self):
        self._ensure_vocab()
        blob = np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8)
        arrays = {"vocab_utf8": blob, "zipf": self.zipf.astype(np.float32)}
        arrays.update(self.head.get_state(""))
        return ({"vocab_size": self.vocab_size, "max_chars": self.max_chars, "oov_zipf": self.oov_zipf,
                 "C": self.C, "features": FEATURE_NAMES, "vocab_words": len(self.words)}, arrays)

    @classmethod
    def from_state(cls, params, arrays):
        d = cls(params["vocab_size"], params["max_chars"], params["oov_zipf"], params["C"])
        d.words = bytes(np.asarray(arrays["vocab_utf8"], dtype=np.uint8)).decode("utf-8").split("\n")
        d.zipf = np.asarray(arrays["zipf"], dtype=np.float32)
        d.head = LinearHead.from_state(arrays, "")
        return d
