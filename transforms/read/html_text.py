"""HTML → main text with Resiliparse: fast (C++ Lexbor parser) and drops navigation and
boilerplate, which would otherwise make unrelated pages of one site look like near-duplicates.

Resiliparse's main-content pass takes time quadratic in the nesting depth (20,000 nested
<div>s: 10 s for a 0.2 MB page), so a page nested deeper than MAX_MAIN_CONTENT_DEPTH is
reduced to all its text instead: bounded time for hostile pages, the same result for real
ones (a few dozen levels).
"""
import re

import numpy as np
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree

MAX_MAIN_CONTENT_DEPTH = 1000

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
# Elements that never hold their own kind of nesting: void elements and those the parser
# closes implicitly at the next sibling.
_FLAT = frozenset("area base br col embed hr img input link meta param source track wbr "
                  "p li dt dd tr td th option".split())


def decode(payload, declared_charset=None):
    """Text of an HTML payload: the HTTP charset if it decodes, else a detected one."""
    if declared_charset:
        try:
            return payload.decode(declared_charset)
        except (LookupError, UnicodeDecodeError):
            pass
    return bytes_to_str(payload, detect_encoding(payload))


def nesting_depth(html, at_least=MAX_MAIN_CONTENT_DEPTH):
    """Deepest element nesting of the markup, from its tags (a stray end tag never takes the
    depth below zero); 0 when the page has too few tags to reach `at_least`."""
    if html.count("<") - html.count("</") < at_least:  # fewer start tags than that
        return 0
    steps = np.array([0 if name.lower() in _FLAT else (-1 if slash else 1)
                      for slash, name in _TAG.findall(html)], dtype=np.int64)
    if not len(steps):
        return 0
    walk = np.cumsum(steps)
    # depth_t = max(depth_{t-1} + step_t, 0) = walk_t - min(0, min(walk_0..t))
    return int((walk - np.minimum(np.minimum.accumulate(walk), 0)).max())


def extract(payload, declared_charset=None):
    """(main text, <meta name="generator"> content or None)."""
    html = decode(payload, declared_charset)
    tree = HTMLTree.parse(html)
    generator = None
    if tree.head is not None:
        for meta in tree.head.get_elements_by_tag_name("meta"):
            if (meta.getattr("name") or "").lower() == "generator":
                generator = (meta.getattr("content") or "").strip()[:200] or None
                break
    main_content = nesting_depth(html) <= MAX_MAIN_CONTENT_DEPTH
    text = extract_plain_text(tree, main_content=main_content, alt_texts=False, links=False,
                              list_bullets=False)
    return text, generator
