import re

import numpy as np

from corpus_audit.transforms.dedup.tokens import count_words, word_hashes


def test_words_split_on_ascii_and_unicode_punctuation():
    text = "Don’t stop—now! “Quoted” text… «guillemets» a·b 東京 naïve café 42_x"
    assert count_words(text) == 13
    assert count_words("plain ascii, with punctuation; and numbers 3.14") == 8


def test_equal_words_hash_equally_wherever_they_are():
    a = word_hashes("Alpha beta gamma beta")
    b = word_hashes("x y z BETA")
    assert a[1] == a[3] == b[3]
    assert len(set(a.tolist())) == 3
    assert word_hashes("ab")[0] != word_hashes("ba")[0]
    assert word_hashes("naïve")[0] != word_hashes("naive")[0]


def test_seed_changes_every_hash_and_counts_match_regex_on_ascii(real_texts):
    assert not np.any(word_hashes("one two three", seed=1) == word_hashes("one two three", seed=2))
    for text in real_texts[:200]:
        if text.isascii():
            assert count_words(text) == len(re.findall(r"[A-Za-z0-9_]+", text))
