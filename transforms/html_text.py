"""HTML → main text with Resiliparse: fast (C++ Lexbor parser) and drops navigation and
boilerplate, which would otherwise make unrelated pages of one site look like near-duplicates."""
from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.encoding import bytes_to_str, detect_encoding
from resiliparse.parse.html import HTMLTree


def decode(payload, declared_charset=None):
    """Text of an HTML payload: the HTTP charset if it decodes, else a detected one."""
    if declared_charset:
        try:
            return payload.decode(declared_charset)
        except (LookupError, UnicodeDecodeError):
            pass
    return bytes_to_str(payload, detect_encoding(payload))


def extract(payload, declared_charset=None):
    """(main text, <meta name="generator"> content or None)."""
    tree = HTMLTree.parse(decode(payload, declared_charset))
    generator = None
    if tree.head is not None:
        for meta in tree.head.get_elements_by_tag_name("meta"):
            if (meta.getattr("name") or "").lower() == "generator":
                generator = (meta.getattr("content") or "").strip()[:200] or None
                break
    text = extract_plain_text(tree, main_content=True, alt_texts=False, links=False,
                              list_bullets=False)
    return text, generator
