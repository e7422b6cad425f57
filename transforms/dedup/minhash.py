"""Seeded, vectorised MinHash signatures and LSH band keys.

Word hashes come from `tokens.py`; shingle hashes are combined from word hashes with numpy,
and all permutations of a batch of documents are applied as one uint64 matrix operation
(multiply-shift hashing, Dietzfelbinger et al.), so no Python loop runs per shingle per
permutation.
"""
from dataclasses import asdict, dataclass

import numpy as np

from corpus_audit.transforms.dedup.tokens import mix64, ngram_hashes, word_hashes

_CHUNK_ELEMENTS = 1 << 14  # shingles × permutations per step: small enough to stay in cache
_LARGE_SHINGLES = 8192  # a text with more shingles is hashed in slices of this many


@dataclass(frozen=True)
class MinHashConfig:
    """Defaults chosen by measurement on planted web-style near-duplicates of real texts
    (tests/test_dedup_quality.py, benchmarks/): 4-word shingles, 25 bands × 4 rows = 100
    permutations (S-curve midpoint (1/25)^(1/4) ≈ 0.45) finds edited re-posts down to
    Jaccard ≈ 0.6; every candidate pair is then verified on the whole signature
    (estimated Jaccard ≥ verify_threshold), which removes the chance collisions between
    pages that share only a boilerplate block (Jaccard ≈ 0.1)."""

    shingle_size: int = 4
    num_bands: int = 25
    rows_per_band: int = 4
    verify_threshold: float = 0.4
    seed: int = 42
    min_shingles: int = 5
    max_bucket_size: int = 5000

    @property
    def num_perm(self):
        return self.num_bands * self.rows_per_band

    @property
    def threshold(self):
        """Jaccard similarity at which two documents share a band with probability ≈ 1/2."""
        return (1.0 / self.num_bands) ** (1.0 / self.rows_per_band)

    def to_dict(self):
        return {**asdict(self), "num_perm": self.num_perm, "threshold": round(self.threshold, 4)}


class MinHasher:
    def __init__(self, config=MinHashConfig()):
        self.config = config
        rng = np.random.Generator(np.random.PCG64(config.seed))
        # Odd multipliers make x -> a*x+b a bijection mod 2^64; the top 32 bits are the hash.
        self._a = rng.integers(0, 2**64, size=config.num_perm, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**64, size=config.num_perm, dtype=np.uint64)
        self._shingle_mult = rng.integers(0, 2**64, size=config.shingle_size, dtype=np.uint64) | np.uint64(1)
        self._band_mult = rng.integers(0, 2**64, size=config.rows_per_band, dtype=np.uint64) | np.uint64(1)
        self._band_salt = rng.integers(0, 2**64, size=config.num_bands, dtype=np.uint64)

    def word_hashes(self, text):
        return word_hashes(text, self.config.seed)

    def shingles(self, text, wh=None):
        """Word-shingle hashes of a text in order (uint64; repeats kept: they do not change a
        MinHash, and skipping the sort saves time); `wh`: the text's word hashes, if known."""
        return ngram_hashes(self.word_hashes(text) if wh is None else wh, self._shingle_mult)

    def signatures(self, shingle_sets):
        """(len(shingle_sets), num_perm) uint32 MinHash matrix; every set must be non-empty."""
        P = self.config.num_perm
        out = np.empty((len(shingle_sets), P), dtype=np.uint32)
        i = 0
        while i < len(shingle_sets):
            if len(shingle_sets[i]) > _LARGE_SHINGLES:  # one long text: bounded memory
                out[i] = self._signature_in_slices(shingle_sets[i])
                i += 1
                continue
            # Take documents until the chunk holds about _CHUNK_ELEMENTS hashed values.
            j, total = i, 0
            while j < len(shingle_sets) and (j == i or total + len(shingle_sets[j]) * P <= _CHUNK_ELEMENTS):
                total += len(shingle_sets[j]) * P
                j += 1
            chunk = shingle_sets[i:j]
            flat = np.concatenate(chunk)
            starts = np.zeros(len(chunk), dtype=np.int64)
            np.cumsum([len(s) for s in chunk[:-1]], out=starts[1:])
            hashed = np.multiply(flat[:, None], self._a[None, :])
            hashed += self._b[None, :]
            # The minimum of the 64-bit values has the minimal top 32 bits: shift afterwards.
            out[i:j] = np.minimum.reduceat(hashed, starts, axis=0) >> np.uint64(32)
            i = j
        return out

    def _signature_in_slices(self, shingles):
        """One document's signature as a running minimum over slices of its shingles, so that
        a 10 MB text (1.6M shingles) needs a few MB, not shingles × permutations × 8 bytes."""
        low = np.full(self.config.num_perm, np.iinfo(np.uint64).max, dtype=np.uint64)
        for k in range(0, len(shingles), _LARGE_SHINGLES):
            hashed = np.multiply(shingles[k:k + _LARGE_SHINGLES, None], self._a[None, :])
            hashed += self._b[None, :]
            np.minimum(low, hashed.min(axis=0), out=low)
        return low >> np.uint64(32)

    def band_keys(self, signatures):
        """(n, num_bands) uint64 keys; equal key = equal band, salted per band index."""
        n = signatures.shape[0]
        bands = signatures.reshape(n, self.config.num_bands, self.config.rows_per_band).astype(np.uint64)
        combined = (bands * self._band_mult[None, None, :]).sum(axis=2, dtype=np.uint64)
        return mix64(combined ^ self._band_salt[None, :])


def exact_keys(text_hashes_hex):
    """64-bit bucket keys for exact-text matching (the first 16 hex digits of each document's
    text_hash), as a uint64 array."""
    raw = bytes.fromhex("".join(h[:16] for h in text_hashes_hex))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


def jaccard(a, b):
    """Exact Jaccard of the sets of two shingle-hash arrays (for tests and calibration)."""
    a, b = np.unique(a), np.unique(b)
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
