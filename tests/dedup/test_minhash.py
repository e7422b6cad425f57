import numpy as np

from corpus_audit.transforms.dedup.minhash import MinHashConfig, MinHasher, jaccard


def test_signatures_are_seeded_and_deterministic(real_texts):
    a, b = MinHasher(MinHashConfig(seed=1)), MinHasher(MinHashConfig(seed=1))
    sh = [a.shingles(t) for t in real_texts[:20]]
    assert np.array_equal(a.signatures(sh), b.signatures([b.shingles(t) for t in real_texts[:20]]))
    c = MinHasher(MinHashConfig(seed=2))
    assert not np.array_equal(a.signatures(sh), c.signatures([c.shingles(t) for t in real_texts[:20]]))


def test_signature_agreement_estimates_jaccard(real_texts):
    h = MinHasher(MinHashConfig(num_bands=32, rows_per_band=8))
    words = real_texts[0].split()
    variants = [" ".join(words[: int(len(words) * f)]) for f in (1.0, 0.9, 0.7, 0.5)]
    sh = [h.shingles(t) for t in variants]
    sig = h.signatures(sh)
    for i in range(1, 4):
        estimate = (sig[0] == sig[i]).mean()
        assert abs(estimate - jaccard(sh[0], sh[i])) < 0.12


def test_batching_does_not_change_signatures(real_texts):
    h = MinHasher()
    sh = [h.shingles(t) for t in real_texts[:300]]
    together = h.signatures(sh)
    one_by_one = np.vstack([h.signatures([s]) for s in sh])
    assert np.array_equal(together, one_by_one)


def test_shingles_ignore_case_and_punctuation_but_not_words():
    h = MinHasher()
    assert np.array_equal(h.shingles("The cat sat on the mat today, again."),
                          h.shingles("the CAT sat on the mat -- today again"))
    assert not np.array_equal(h.shingles("the cat sat on the mat today"),
                              h.shingles("the dog sat on the mat today"))
    assert len(h.shingles("too few words")) == 0


def test_band_keys_equal_only_for_equal_bands(real_texts):
    h = MinHasher()
    sig = h.signatures([h.shingles(real_texts[0]), h.shingles(real_texts[0]), h.shingles(real_texts[1])])
    keys = h.band_keys(sig)
    assert keys.shape == (3, h.config.num_bands)
    assert np.array_equal(keys[0], keys[1])
    assert not np.any(keys[0] == keys[2])
    assert len(np.unique(keys[0])) == h.config.num_bands  # band index is part of the key
