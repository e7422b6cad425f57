"""Word tokens and their seeded 64-bit hashes, computed with numpy over the text's bytes.

A word is a maximal run of ASCII letters, digits or underscore, or of non-ASCII characters
other than the common Unicode punctuation and spaces (which are mapped to spaces first).
Hashing every word with a Python call costs about half a microsecond per word; here the
whole text is hashed in a handful of array operations: a polynomial hash over each word's
UTF-8 bytes from prefix sums, which the seed offsets, then a 64-bit mix.
"""
import numpy as np

_P = np.uint64(0x100000001B3)  # odd, so it has an inverse modulo 2^64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

# ASCII bytes that belong to words; every byte >= 0x80 is part of a (non-ASCII) word.
_WORD_BYTE = np.zeros(256, dtype=bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD_BYTE[_c] = True
_WORD_BYTE[0x80:] = True

# Non-ASCII punctuation and spaces that separate words, as UTF-8 (lead bytes, next byte):
# U+2000-U+207F (dashes, curly quotes, ellipsis), NBSP « » ¿ ¡ § ¶ · × ÷, CJK and fullwidth
# punctuation, and the byte-order mark.
_SEPARATOR_SEQUENCES = [
    (b"\xe2", range(0x80, 0x82), 3),
    (b"\xc2", (0xA0, 0xA1, 0xA7, 0xAB, 0xB6, 0xB7, 0xBB, 0xBF), 2),
    (b"\xc3", (0x97, 0xB7), 2),
    (b"\xe3", (0x80,), 3),
    (b"\xef", (0xBC, 0xBB), 3),
]
_IS_LEAD = np.zeros(256, dtype=bool)
_SEPARATOR_WIDTH = np.zeros((256, 256), dtype=np.uint8)  # [lead byte, next byte] -> bytes
for _lead, _nexts, _width in _SEPARATOR_SEQUENCES:
    _IS_LEAD[_lead[0]] = True
    _SEPARATOR_WIDTH[_lead[0], list(_nexts)] = _width

_POWERS = {_P: np.ones(1, dtype=np.uint64), _P_INV: np.ones(1, dtype=np.uint64)}


def _powers(base, n):
    """base^0 … base^(n-1) mod 2^64 (cached per process, grown by doubling)."""
    cached = _POWERS[base]
    if len(cached) < n:
        size = max(n, 2 * len(cached))
        cached = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, base, dtype=np.uint64)],
                            dtype=np.uint64)
        _POWERS[base] = cached
    return cached[:n]


def mix64(x):
    """splitmix64 finaliser on a uint64 array: spreads combined hashes over all bits."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _word_bounds(text):
    """(utf-8 bytes, word start offsets, word end offsets); few numpy calls, as texts are short."""
    data = text.lower()
    raw = np.frombuffer(data.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    n = len(raw)
    is_word = np.zeros(n + 2, dtype=bool)  # padded by one False on each side
    is_word[1:n + 1] = _WORD_BYTE[raw]
    if not data.isascii():
        lead = np.flatnonzero(_IS_LEAD[raw])
        width = _SEPARATOR_WIDTH[raw[lead], raw[np.minimum(lead + 1, n - 1)]]
        lead, width = lead[width > 0], width[width > 0]
        is_word[lead + 1] = False
        is_word[np.minimum(lead + 2, n)] = False
        is_word[np.minimum(lead[width == 3] + 3, n)] = False
    edges = np.diff(is_word.view(np.int8))
    return raw, np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def count_words(text):
    return len(_word_bounds(text)[1])


def word_hashes(text, seed=0):
    """One uint64 hash per word, in order; equal words (after lower-casing) hash equally."""
    raw, starts, ends = _word_bounds(text)
    if len(starts) == 0:
        return np.empty(0, dtype=np.uint64)
    # Prefix sums of b_i * P^i; a word's sum times P^-start is independent of its position.
    weighted = np.cumsum(raw.astype(np.uint64) * _powers(_P, len(raw)), dtype=np.uint64)
    prefix = np.concatenate((np.zeros(1, dtype=np.uint64), weighted))
    sums = prefix[ends] - prefix[starts]
    inv_start = _powers(_P_INV, len(raw))[starts]
    lengths = (ends - starts).astype(np.uint64)
    return mix64(sums * inv_start + lengths * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed))


def ngram_hashes(word_hashes, multipliers):
    """One hash per run of len(multipliers) consecutive words (empty if the text is shorter)."""
    n = len(multipliers)
    if len(word_hashes) < n:
        return np.empty(0, dtype=np.uint64)
    m = len(word_hashes) - n + 1
    acc = word_hashes[:m] * multipliers[0]
    for k in range(1, n):
        acc = acc + word_hashes[k:k + m] * multipliers[k]
    return mix64(acc)
