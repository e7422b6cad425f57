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

from .base import TOKEN_CHARS, LinearDetector, LinearHead, tokenize_batch, word_hash_array

_FULL_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*\Z")
FEATURE_NAMES = ["zipf_mean", "zipf_std", "zipf_p10", "zipf_p25", "zipf_p50", "rank_lt10",
                 "rank_lt100", "rank_lt1k", "rank_lt10k", "rank_in_list", "oov", "content_zipf_mean",
                 "content_zipf_std", "log_rank_mean", "window20_zipf_std", "rare_share"]
WINDOW = 20
_RANK_EDGES = np.array([10, 100, 1000, 10000])


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
    uses_tokens = True

    def __init__(self, vocab_size=50000, max_chars=TOKEN_CHARS, oov_zipf=2.0, C=1.0):
        self.vocab_size, self.max_chars = int(vocab_size), int(max_chars)
        self.oov_zipf, self.C = float(oov_zipf), float(C)
        self.words, self.zipf, self._lookup = None, None, None
        self.head = LinearHead()

    def _ensure_vocab(self):
        if self.words is None:
            self.words, self.zipf = build_vocabulary(self.vocab_size)
        if self._lookup is None:
            # Words are looked up by the hash of their lower-case bytes (base.TokenBatch), so a
            # text's words are found with one sorted search instead of a dict call per word.
            hashes = word_hash_array(self.words)
            self._order = np.argsort(hashes, kind="stable")
            self._sorted = hashes[self._order]
            self._lookup = True
            big = self.vocab_size * 4
            # index len(words) = out of vocabulary
            self._rank = np.r_[np.arange(len(self.words), dtype=np.float64), big]
            self._z = np.r_[self.zipf.astype(np.float64), self.oov_zipf]
            self._logrank = np.log1p(self._rank)
            # integer sort key that orders indices by Zipf value (for per-text percentiles)
            self._zkey = np.argsort(np.argsort(self._z, kind="stable"), kind="stable").astype(np.uint64)
            self._zsorted = np.sort(self._z)

    def featurize(self, texts, tokens=None):
        """Features of a batch at once: per-document statistics as bincounts over the batch's
        concatenated words, with no numpy calls per text (tokens: a shared TokenBatch of texts)."""
        self._ensure_vocab()
        D = len(texts)
        F = np.zeros((D, len(FEATURE_NAMES)))
        if not D:
            return F
        if tokens is None or self.max_chars != TOKEN_CHARS:
            tokens = tokenize_batch(texts, self.max_chars)
        words = ~tokens.digit  # digit runs are not words
        h, doc = tokens.h[words], tokens.tdoc[words]
        n = np.bincount(doc, minlength=D)
        N = int(n.sum())
        if not N:
            return F
        miss = len(self.words)
        pos = np.minimum(np.searchsorted(self._sorted, h), miss - 1)
        idx = np.where(self._sorted[pos] == h, self._order[pos], miss)
        off = np.cumsum(n) - n
        has = n > 0
        nn = np.maximum(n, 1).astype(np.float64)
        ranks, z = self._rank[idx], self._z[idx]

        def mean(v, cnt=nn):
            return np.bincount(doc, weights=v, minlength=D) / cnt

        zm = mean(z)
        zsd = np.sqrt(np.maximum(mean(z * z) - zm * zm, 0.0))
        key = np.sort((doc.astype(np.uint64) << np.uint64(32)) | self._zkey[idx])
        zs = self._zsorted[(key & np.uint64(0xFFFFFFFF)).astype(np.int64)]
        q = lambda f: zs[np.minimum(off + (f * (n - 1)).astype(np.int64), max(N - 1, 0))]
        oov = (idx == miss).astype(np.float64)
        content = (ranks >= 100).astype(np.float64)
        cn = np.bincount(doc, weights=content, minlength=D)
        cm = np.bincount(doc, weights=z * content, minlength=D) / np.maximum(cn, 1)
        csd = np.sqrt(np.maximum(np.bincount(doc, weights=z * z * content, minlength=D) / np.maximum(cn, 1)
                                 - cm * cm, 0.0))
        # spread of the means of consecutive 20-word windows (documents of >= 40 words)
        k = np.where(n >= 2 * WINDOW, n // WINDOW, 0)
        w = np.arange(N) - off[doc]
        inw = w < (k * WINDOW)[doc]
        woff = np.cumsum(k) - k
        K = int(k.sum())
        win_std = np.zeros(D)
        if K:
            wm = np.bincount((woff[doc] + w // WINDOW)[inw], weights=z[inw], minlength=K) / WINDOW
            wdoc = np.repeat(np.arange(D), k)
            kk = np.maximum(k, 1)
            m1 = np.bincount(wdoc, weights=wm, minlength=D) / kk
            win_std = np.sqrt(np.maximum(np.bincount(wdoc, weights=wm * wm, minlength=D) / kk - m1 * m1, 0.0))
        oov_share = mean(oov)
        cols = [zm, zsd, q(0.1), q(0.25), q(0.5), mean((ranks < 10) * 1.0), mean((ranks < 100) * 1.0),
                mean((ranks < 1000) * 1.0), mean((ranks < 10000) * 1.0), 1.0 - oov_share, oov_share,
                np.where(cn > 0, cm, self.oov_zipf), np.where(cn > 0, csd, 0.0), mean(self._logrank[idx]),
                win_std, mean((z < 3.0) * 1.0)]
        F[:] = np.column_stack(cols)
        F[~has] = 0.0
        return F

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
