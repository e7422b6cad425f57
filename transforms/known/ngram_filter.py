"""A Bloom filter over the known-output index's sampled n-gram hashes.

Without it every document sends all its sampled n-grams (about 50 per page, 16 bytes each) into
the n-gram join, nearly all of which match nothing: 0.8 GB per million pages. The shard pass
keeps only the n-grams the filter may contain, so the join sees the real hits plus about 1 %
false positives. A Bloom filter has no false negatives, so the matches are the same.

The n-gram hashes are already uniform 64-bit values, so the probe positions are taken from
their bits (double hashing) instead of hashing again.
"""
import apache_beam as beam
import numpy as np

from corpus_audit.transforms.dedup.graph import sorted_unique

BITS_PER_ITEM = 10
PROBES = 4
_WINDOW_BITS = 1 << 27


def _set_bits(num_bits, hashes):
    """The bit array with the hashes' probe positions set: a byte per bit, packed, one window
    of at most _WINDOW_BITS bits (128 MB) and one probe at a time, so the temporaries stay a
    few bytes per hash (np.bitwise_or.at costs ~80 ns a position)."""
    h = np.asarray(hashes, dtype=np.uint64)
    h1, h2 = h & np.uint64(0xFFFFFFFF), (h >> np.uint64(32)) | np.uint64(1)
    mask = np.uint64(num_bits - 1)
    words = np.empty(num_bits // 64, dtype=np.uint64)
    window = min(num_bits, _WINDOW_BITS)
    flags = np.empty(window, dtype=np.uint8)
    for start in range(0, num_bits, window):
        flags[:] = 0
        for i in range(PROBES):
            pos = (h1 + np.uint64(i) * h2) & mask
            if window < num_bits:
                pos = pos[(pos >> np.uint64(window.bit_length() - 1)) == start // window] - np.uint64(start)
            flags[pos.astype(np.int64)] = 1
        words[start // 64:(start + window) // 64] = np.packbits(flags, bitorder="little").view("<u8")
    return words


class NgramFilter:
    """Set membership with false positives (about 1 % at 10 bits per item) and no false negatives."""

    def __init__(self, words):
        self.words = words  # uint64 bit array; its length in bits is a power of two

    @classmethod
    def build(cls, hashes):
        n = max(len(hashes), 1)
        num_bits = 1 << max(int(np.ceil(np.log2(n * BITS_PER_ITEM))), 6)
        return cls(_set_bits(num_bits, hashes))

    def may_contain(self, hashes):
        """Probe by probe, each on the hashes whose earlier probes all hit: most absent hashes
        are out after one or two of the PROBES lookups."""
        h = np.asarray(hashes, dtype=np.uint64)
        out = np.zeros(len(h), dtype=bool)
        mask = np.uint64(len(self.words) * 64 - 1)
        alive, h1, h2 = np.arange(len(h)), h & np.uint64(0xFFFFFFFF), (h >> np.uint64(32)) | np.uint64(1)
        for i in range(PROBES):
            pos = (h1 + np.uint64(i) * h2) & mask
            hit = ((self.words[(pos >> np.uint64(6)).astype(np.int64)] >> (pos & np.uint64(63))) & np.uint64(1)) != 0
            alive, h1, h2 = alive[hit], h1[hit], h2[hit]
        out[alive] = True
        return out


class BuildNgramFilter(beam.CombineFn):
    """(partition, (hashes, owners)) batches of the index → one NgramFilter.

    The distinct hashes meet on one worker: 8 bytes per distinct sampled n-gram of the index
    (40 MB for 100,000 outputs). An accumulator is (distinct so far, pending batches); pending
    batches are merged in once they outweigh the distinct set, so each hash is sorted a few
    times, not once per batch, and memory stays within twice the distinct set plus a batch."""

    def create_accumulator(self):
        return [np.empty(0, dtype=np.uint64), [], 0]

    def add_input(self, acc, element):
        hashes = np.asarray(element[1][0], dtype=np.uint64)
        acc[1].append(hashes)
        acc[2] += len(hashes)
        if acc[2] > max(len(acc[0]), 1 << 16):
            self._compact(acc)
        return acc

    @staticmethod
    def _compact(acc):
        acc[0] = sorted_unique(np.concatenate([acc[0]] + acc[1]))
        acc[1], acc[2] = [], 0
        return acc

    def merge_accumulators(self, accs):
        merged = self.create_accumulator()
        for acc in accs:
            merged[1] += [acc[0]] + acc[1]
        return self._compact(merged)

    def extract_output(self, acc):
        return NgramFilter.build(self._compact(acc)[0])
