"""Stylometry: sentence rhythm, vocabulary richness, punctuation, function words, repetition.

Features are computed on the first `max_chars` characters of normalised text and none of them
grows with document length (richness and repetition use a fixed window of words), so length,
which is confounded with the label in the development data, is not learnt. Standardised
features → logistic regression.
"""
from __future__ import annotations

import re

import numpy as np

from .base import IS_UPPER, TOKEN_CHARS, LinearDetector, LinearHead, TokenBatch, _P, tokenize_batch, word_hash_array

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

BASE_FEATURES = [
    "log_sent_len_mean", "sent_len_cv", "sent_len_std_log", "sent_len_max_rel", "word_len_mean",
    "word_len_std", "long_word_share", "mattr50", "hapax100", "rep_bigram200", "rep_trigram200",
    "upper_char_share", "capitalised_mid_share", "upper_token_share", "digit_token_share",
    "contraction_rate", "question_sent_share", "exclaim_sent_share", "conj_start_share",
    "comma_per_sent", "fw_share",
]
FEATURE_NAMES = BASE_FEATURES + [f"punct[{p}]" for p in PUNCT] + [f"fw[{w}]" for w in _FW_INDEX]


_CONTRACTION_RE = re.compile(r"'(?:t|s|re|ve|ll|d|m)\b", re.I)
_FW_HASH = word_hash_array(list(_FW_INDEX))
_FW_ORDER = np.argsort(_FW_HASH)
_FW_SORTED = _FW_HASH[_FW_ORDER]
_CONJ_HASH = word_hash_array(["and", "but", "so", "or", "because", "yet"])
_PUNCT_CODES = np.array([ord(p) for p in PUNCT])
_SENT_END = np.zeros(256, dtype=bool)
_SENT_END[list(b".!?")] = True
_OPENER = np.zeros(256, dtype=bool)
_OPENER[list(b"\"'([")] = True
_CAP_OR_DIGIT = np.zeros(256, dtype=bool)
_CAP_OR_DIGIT[list(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")] = True
_TEXT_END = np.zeros(256, dtype=bool)
_TEXT_END[list(b".!?\"')")] = True


def lookup_hashes(sorted_hashes, order, h):
    """Index into the original list of each hash in h, or -1."""
    if not len(h):
        return np.zeros(0, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_hashes, h), len(sorted_hashes) - 1)
    return np.where(sorted_hashes[pos] == h, order[pos], -1)


def _distinct_per_group(values, group, n_groups):
    """Number of distinct values in each group (values: uint64 hashes, group: int < 2^24).

    One sort of (group << 40 | top 40 bits of the hash): two different words of one group
    collide with probability ~2^-40."""
    if not len(values):
        return np.zeros(n_groups)
    key = np.sort((group.astype(np.uint64) << np.uint64(40)) | (values >> np.uint64(24)))
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    return np.bincount((key[new] >> np.uint64(40)).astype(np.int64), minlength=n_groups).astype(np.float64)


def _ngram_repeat_share(tb, pos, n_gram, limit=200):
    """Per text: 1 - distinct/total word n-grams among its first `limit` words (0 when fewer
    than n + 1 words)."""
    m = np.minimum(tb.n, limit)
    i = np.flatnonzero(pos + n_gram - 1 < m[tb.tdoc])
    g = tb.h[i].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n_gram):
            g = g * _P + tb.h[i + k]
    total = np.maximum(m - n_gram + 1, 1)
    distinct = _distinct_per_group(g, tb.tdoc[i], tb.D)
    return np.where(m >= n_gram + 1, 1.0 - distinct / total, 0.0)


def sentence_bounds(B, doc_start, doc_end):
    """(starts, ends, doc) of sentences in the joined bytes: a split after [.!?] + space when the
    next character is an upper-case letter or digit, optionally behind an opening quote/bracket."""
    nb = len(B)
    split = np.zeros(0, dtype=np.int64)
    if nb >= 3:
        cand = np.flatnonzero(_SENT_END[B[:-2]] & (B[1:-1] == 32))
        nxt = B[cand + 2]
        ok = _CAP_OR_DIGIT[nxt]
        quoted = np.flatnonzero(_OPENER[nxt] & (cand + 3 < nb))
        if len(quoted):
            ok[quoted] |= _CAP_OR_DIGIT[B[cand[quoted] + 3]]
        split = cand[ok] + 1  # the space between two sentences
    ss = np.sort(np.concatenate((doc_start, split + 1)))
    se = np.sort(np.concatenate((split, doc_end)))
    return ss, se, np.searchsorted(doc_start, ss, side="right") - 1


def stylometry_matrix(tb: TokenBatch) -> np.ndarray:
    """Feature rows (FEATURE_NAMES) of every text of a TokenBatch, computed for the whole batch."""
    D = tb.D
    F = np.zeros((D, len(FEATURE_NAMES)))
    if not D or not len(tb.starts):
        return F
    B, st, en, h, tdoc, n = tb.B, tb.starts, tb.ends, tb.h, tb.tdoc, tb.n
    nn = np.maximum(n, 1).astype(np.float64)

    def per_doc(v, idx=tdoc, cnt=nn):
        return np.bincount(idx, weights=v, minlength=D) / cnt

    # byte histograms per text (separators counted in an extra row)
    byte_doc = np.repeat(np.arange(D), tb.doc_end - tb.doc_start + 1)[: len(B)]
    sep = np.zeros(len(B), dtype=bool)
    sep[tb.doc_end[tb.doc_end < len(B)]] = True
    byte_doc = np.where(sep, D, byte_doc)
    hist = np.bincount(byte_doc * 256 + B, minlength=(D + 1) * 256).reshape(D + 1, 256)[:D].astype(np.float64)

    # sentences
    ss, se, sdoc = sentence_bounds(B, tb.doc_start, tb.doc_end)
    ns = np.maximum(np.bincount(sdoc, minlength=D), 1).astype(np.float64)
    spaces = np.concatenate(([0], np.cumsum(B == 32)))
    sl = (spaces[se] - spaces[ss] + 1).astype(np.float64)
    # If a text was cut mid-sentence, its last fragment is not a sentence.
    last = np.cumsum(np.bincount(sdoc, minlength=D)) - 1
    ends_ok = _TEXT_END[B[np.maximum(tb.doc_end - 1, 0)]]
    drop = (np.bincount(sdoc, minlength=D) > 1) & ~ends_ok
    incl = np.ones(len(sl), dtype=bool)
    incl[last[drop]] = False
    sli, sdi = sl[incl], sdoc[incl]
    ci = np.maximum(np.bincount(sdi, minlength=D), 1).astype(np.float64)
    m = per_doc(sli, sdi, ci)
    sd = np.sqrt(np.maximum(per_doc(sli * sli, sdi, ci) - m * m, 0.0))
    lsl = np.log(sli)
    lm = per_doc(lsl, sdi, ci)
    lsd = np.sqrt(np.maximum(per_doc(lsl * lsl, sdi, ci) - lm * lm, 0.0))
    first = np.cumsum(ci.astype(np.int64)) - ci.astype(np.int64)
    smax = np.maximum.reduceat(sli, np.minimum(first, len(sli) - 1))
    m_safe = np.where(m > 0, m, 1.0)

    # words
    wl = (en - st).astype(np.float64)
    wm = per_doc(wl)
    wsd = np.sqrt(np.maximum(per_doc(wl * wl) - wm * wm, 0.0))
    cu = tb.cum_upper()
    upc = cu[en] - cu[st]
    first_up = IS_UPPER[B[st]] == 1
    letters = np.bincount(tdoc, weights=wl, minlength=D)
    letters = np.where(letters > 0, letters, 1.0)
    upper_chars = (cu[tb.doc_end] - cu[tb.doc_start]).astype(np.float64)
    caps = np.bincount(tdoc, weights=first_up & (upc == 1), minlength=D)
    sent_caps = np.bincount(sdoc, weights=IS_UPPER[B[np.minimum(ss, len(B) - 1)]], minlength=D)
    pos = np.arange(len(st)) - tb.tok_off[tdoc]

    # moving type-token ratio over 50-word windows (whole text when shorter)
    big = n >= 50
    ng = np.where(big, n // 50, (n > 0).astype(np.int64))
    goff = np.cumsum(ng) - ng
    tb_big = big[tdoc]
    inwin = ~tb_big | (pos < 50 * (n // 50)[tdoc])
    grp = goff[tdoc] + np.where(tb_big, pos // 50, 0)
    G = int(ng.sum())
    gsize = np.bincount(grp[inwin], minlength=G)
    gdist = _distinct_per_group(h[inwin], grp[inwin], G)
    gdoc = np.repeat(np.arange(D), ng)
    mattr = np.bincount(gdoc, weights=gdist / np.maximum(gsize, 1), minlength=D) / np.maximum(ng, 1)

    # hapax share among the first 100 words (same sort key as _distinct_per_group)
    f100 = pos < 100
    key = np.sort((tdoc[f100].astype(np.uint64) << np.uint64(40)) | (h[f100] >> np.uint64(24)))
    newrun = np.ones(len(key), dtype=bool)
    newrun[1:] = key[1:] != key[:-1]
    run_len = np.diff(np.r_[np.flatnonzero(newrun), len(key)])
    run_doc = (key[newrun] >> np.uint64(40)).astype(np.int64)
    hapax = np.bincount(run_doc, weights=run_len == 1, minlength=D) / np.maximum(np.minimum(n, 100), 1)

    # sentences opening with a capitalised conjunction (And, But, So, Or, Because, Yet)
    ft = np.searchsorted(st, ss)
    okf = ft < len(st)
    ftv, sv = ft[okf], ss[okf]
    isconj = (st[ftv] == sv) & first_up[ftv] & (upc[ftv] == 1) & np.isin(h[ftv], _CONJ_HASH)
    conj = np.bincount(sdoc[okf], weights=isconj, minlength=D)

    lastb = B[np.maximum(se - 1, 0)]
    fw = lookup_hashes(_FW_SORTED, _FW_ORDER, h)
    hit = fw >= 0
    fw_hist = np.bincount(tdoc[hit] * N_FW + fw[hit], minlength=D * N_FW).reshape(D, N_FW)
    contractions = np.array([len(_CONTRACTION_RE.findall(t)) if "'" in t else 0 for t in tb.texts], dtype=np.float64)

    cols = [np.log1p(m), sd / m_safe, lsd, smax / m_safe, wm, wsd, per_doc(wl >= 9), mattr, hapax,
            _ngram_repeat_share(tb, pos, 2), _ngram_repeat_share(tb, pos, 3), upper_chars / letters,
            np.maximum(caps - sent_caps, 0) / nn, per_doc((upc > 0) & (upc == wl)), per_doc(tb.digit),
            contractions / nn, np.bincount(sdoc, weights=lastb == 63, minlength=D) / ns,
            np.bincount(sdoc, weights=lastb == 33, minlength=D) / ns, conj / ns, hist[:, 44] / ns,
            fw_hist.sum(axis=1) / nn]
    nb = len(cols)
    F[:, :nb] = np.column_stack(cols)
    F[:, nb: nb + len(PUNCT)] = hist[:, _PUNCT_CODES] / nn[:, None]
    F[:, nb + len(PUNCT):] = fw_hist / nn[:, None]
    F[n == 0] = 0.0
    return F


def stylometry_features(text: str, max_chars=TOKEN_CHARS) -> np.ndarray:
    """Feature vector of one normalised text (see FEATURE_NAMES)."""
    return stylometry_matrix(tokenize_batch([text], max_chars))[0]


class StylometryDetector(LinearDetector):
    feature_names = FEATURE_NAMES
    name = "stylometry"
    uses_tokens = True

    def __init__(self, max_chars=TOKEN_CHARS, C=0.3):
        self.max_chars, self.C = int(max_chars), float(C)
        self.head = LinearHead()

    def featurize(self, texts, tokens=None):
        """Feature matrix of normalised texts; `tokens` = tokenize_batch(texts) if already made."""
        if tokens is None or self.max_chars != TOKEN_CHARS:
            tokens = tokenize_batch(texts, self.max_chars)
        return stylometry_matrix(tokens)

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
