"""A planted near-duplicate corpus for benchmarking deduplication.

Pure functions, no Beam. Everything random goes through a `random.Random(seed)` passed
around explicitly, so the same sentences, `n_docs` and seed give the same corpus.

Base documents (~2.4 KB) are concatenations of real sentences drawn at random from a
sentence pool, so two base documents are unrelated. A share of the corpus (`dup_share`)
are near-duplicates of a base document, made the way copies appear on the web: exact
re-posts, an added header/footer block, word edits, dropped or swapped sentences,
truncation, and combinations of two of these. Negative controls are groups of unrelated
base documents that all carry the same long boilerplate block; their truth clusters are
distinct, so a dedup system must not merge them.
"""
import gzip
import json
import os
import random
import re
from collections import Counter

# ---------------------------------------------------------------- sentences

_WS = re.compile(r"\s+")
# Split after terminal punctuation, optionally followed by a closing quote or bracket.
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"'\u201d\u2019)\]])\s+")
_ENDS_SENTENCE = re.compile(r"[.!?][\"'\u201d\u2019)\]]?$")


def normalise_whitespace(text):
    return _WS.sub(" ", text).strip()


def split_sentences(text):
    """Sentences of a text after whitespace normalisation."""
    return [s for s in _SENT_SPLIT.split(normalise_whitespace(text)) if s]


def load_sentences(path, min_words=5, max_words=60):
    """Distinct sentences of `min_words`-`max_words` words from a JSONL(.gz) file of texts.

    Only sentences that end with terminal punctuation are kept, so the fragments left where
    a text was cut to length (the same article appears at several lengths) are dropped.
    Order is first occurrence in the file, so the result is deterministic.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    seen = {}
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            text = json.loads(line).get("text")
            if not isinstance(text, str):
                continue
            for s in split_sentences(text):
                n = len(s.split(" "))
                if min_words <= n <= max_words and _ENDS_SENTENCE.search(s):
                    seen.setdefault(s, None)
    return list(seen)


# ---------------------------------------------------------------- boilerplate

# Header/footer blocks (40-80 words) added to "boilerplate" near-duplicates.
BOILERPLATE_BLOCKS = (
    "Skip to main content. Home | News | Sport | Business | Technology | Science | Health | "
    "Entertainment | Travel | Opinion | Video | Podcasts | Newsletters. Sign in to your account "
    "or register for free to save articles, follow topics and get our daily briefing delivered "
    "straight to your inbox every morning before seven.",

    "This article was originally published on our partner site and is republished here with "
    "permission. The views expressed are those of the author and do not necessarily reflect the "
    "position of the editorial board. Found an error? Let us know through the corrections form "
    "at the bottom of this page and our team will review it within two working days.",

    "We use cookies and similar technologies to improve your browsing experience, personalise "
    "content and advertising, and analyse how our website is used. By clicking Accept all you "
    "agree to the storing of cookies on your device. You can change your preferences at any time "
    "by visiting the privacy settings page linked in the footer.",

    "Share this story: Facebook Twitter LinkedIn WhatsApp Email Print. Related topics: Local news, "
    "Community, Events, Weather, Traffic, Schools. Most read this week: the ten places you should "
    "visit this summer, how to save money on your energy bills, and what the new parking rules "
    "mean for residents in the city centre.",

    "Subscribe to our newsletter for the latest updates, exclusive offers and behind the scenes "
    "stories from our reporters. It only takes a minute and you can unsubscribe whenever you like. "
    "Already a subscriber? Log in to manage your account, update your delivery address or read "
    "the digital edition on any device.",

    "Copyright 2024 Northfield Media Group Limited. All rights reserved. This material may not be "
    "published, broadcast, rewritten or redistributed in whole or in part without prior written "
    "permission. Terms of use | Privacy policy | Accessibility | Contact us | Advertise with us | "
    "Careers | Sitemap | Help centre.",
)

# Long blocks (60-100 words) carried by the negative-control groups.
CONTROL_BLOCKS = (
    "About this site: Riverside Community Forum is a volunteer-run space for residents to discuss "
    "local issues, share announcements and ask for recommendations. Posts are moderated by a small "
    "team of neighbours who check new threads every evening. Please be respectful, stay on topic "
    "and avoid sharing personal information such as phone numbers or home addresses. Commercial "
    "advertising is only allowed in the weekly marketplace thread. If you believe a post breaks "
    "these rules, use the report button and a moderator will look at it as soon as possible.",

    "Disclaimer: the information on this page is provided for general educational purposes only "
    "and does not constitute medical, legal or financial advice. Always consult a qualified "
    "professional about your individual circumstances before making any decision. While we try "
    "to keep the content accurate and up to date, we make no guarantees about its completeness "
    "or reliability, and we accept no liability for any loss arising from its use. Links to "
    "third-party websites are provided for convenience and do not imply endorsement.",

    "Terms and conditions of the reader rewards programme: points are earned on every eligible "
    "purchase made through the member portal and expire twelve months after the date they were "
    "awarded. Points have no cash value, cannot be transferred between accounts and may not be "
    "combined with other promotional codes unless stated. The programme operator reserves the "
    "right to change or withdraw benefits at any time with thirty days notice published on this "
    "page. Full details are available from customer services during normal office hours.",

    "Editor's note: this post is part of our long-running reader submissions series, in which "
    "members of the community write about topics they care about. Submissions are lightly edited "
    "for length and clarity but otherwise appear as written. Opinions belong to the individual "
    "authors. If you would like to contribute a piece of your own, send a short outline of your "
    "idea together with a few lines about yourself to the editorial inbox, and a member of the "
    "team will get back to you within a fortnight.",

    "Comment policy and community guidelines: we welcome thoughtful discussion and encourage "
    "readers to share their own experiences in the comments below. Comments that contain abuse, "
    "spam, links to unrelated websites or repeated promotional content will be removed without "
    "warning. Accounts that repeatedly break these guidelines may be suspended. Comments are "
    "closed automatically thirty days after publication. By posting you agree that your comment "
    "may be quoted in future articles with your display name attached.",

    "Accessibility statement: we are committed to making this website usable by as many people as "
    "possible. You should be able to zoom in up to four hundred percent without the text spilling "
    "off the screen, navigate most of the site using just a keyboard, and listen to most of the "
    "site using a screen reader. We know some parts of the website are not fully accessible yet, "
    "including older archived documents. If you need information in a different format, contact "
    "our support team and tell us what you need.",
)

# ---------------------------------------------------------------- edits

EDIT_KINDS = ("exact", "boilerplate", "word_edits", "drop_sentences", "swap_sentences", "truncate")
COMBINATIONS = (
    ("boilerplate", "word_edits"),
    ("truncate", "word_edits"),
    ("drop_sentences", "boilerplate"),
    ("swap_sentences", "truncate"),
    ("truncate", "boilerplate"),
)
# Relative weights of the planted kinds (single edits, then each combination).
_KIND_WEIGHTS = [("exact", 12), ("boilerplate", 12), ("word_edits", 12), ("drop_sentences", 10),
                 ("swap_sentences", 10), ("truncate", 12)] + [("+".join(c), 32 / len(COMBINATIONS))
                                                              for c in COMBINATIONS]
# Structural edits work on sentences, then truncation and word edits on the text, and the
# boilerplate block is added last (it is copied, never edited).
_ORDER = ("drop_sentences", "swap_sentences", "truncate", "word_edits", "boilerplate")

BASE_CHARS = (2200, 2600)
WORD_EDIT_SHARE = 0.03
TRUNCATE_SHARE = (0.82, 0.88)
DROP_SHARE = (0.05, 0.15)
SWAPS = 2
CONTROL_SHARE = 0.01
CONTROL_MIN_GROUP = 3


def _base_paragraphs(sentences, rng, target_chars):
    """A base document as paragraphs (lists of sentences) of ~target_chars characters."""
    chosen, used, size = [], set(), 0
    while size < target_chars:
        i = rng.randrange(len(sentences))
        if i in used:
            continue
        used.add(i)
        chosen.append(sentences[i])
        size += len(sentences[i]) + 1
    paragraphs, i = [], 0
    while i < len(chosen):
        k = rng.randint(2, 6)
        paragraphs.append(chosen[i:i + k])
        i += k
    return paragraphs


def _render(paragraphs):
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _drop_sentences(paragraphs, rng):
    flat = [(pi, s) for pi, p in enumerate(paragraphs) for s in p]
    k = max(1, round(len(flat) * rng.uniform(*DROP_SHARE)))
    drop = set(rng.sample(range(len(flat)), k))
    out = [[] for _ in paragraphs]
    for idx, (pi, s) in enumerate(flat):
        if idx not in drop:
            out[pi].append(s)
    return [p for p in out if p]


def _swap_sentences(paragraphs, rng):
    flat = [s for p in paragraphs for s in p]
    for _ in range(SWAPS):
        a, b = rng.sample(range(len(flat)), 2)
        flat[a], flat[b] = flat[b], flat[a]
    out, i = [], 0
    for p in paragraphs:
        out.append(flat[i:i + len(p)])
        i += len(p)
    return out


def _truncate(text, rng):
    cut = int(len(text) * rng.uniform(*TRUNCATE_SHARE))
    space = text.rfind(" ", 0, cut)
    return text[:space if space > 0 else cut].rstrip()


def _word_edits(text, rng, vocabulary):
    parts = re.split(r"(\s+)", text)  # words at even positions, whitespace at odd ones
    word_pos = [i for i in range(0, len(parts), 2) if parts[i]]
    k = max(1, round(len(word_pos) * WORD_EDIT_SHARE))
    for i in rng.sample(word_pos, k):
        new = rng.choice(vocabulary)
        parts[i] = new if new != parts[i].lower() else new + "s"
    return "".join(parts)


def _add_boilerplate(text, rng):
    r = rng.random()
    header = rng.choice(BOILERPLATE_BLOCKS) if r < 0.6 else None
    footer = rng.choice(BOILERPLATE_BLOCKS) if r >= 0.4 else None
    return "\n\n".join(x for x in (header, text, footer) if x)


def make_near_duplicate(paragraphs, kind, rng, vocabulary):
    """Text of a planted copy of the base document `paragraphs`; `kind` is an edit or "a+b"."""
    edits = set(kind.split("+"))
    unknown = edits - set(EDIT_KINDS)
    if unknown:
        raise ValueError(f"unknown edit kind(s): {sorted(unknown)}")
    paras = paragraphs
    if "drop_sentences" in edits:
        paras = _drop_sentences(paras, rng)
    if "swap_sentences" in edits:
        paras = _swap_sentences(paras, rng)
    text = _render(paras)
    if "truncate" in edits:
        text = _truncate(text, rng)
    if "word_edits" in edits:
        text = _word_edits(text, rng, vocabulary)
    if "boilerplate" in edits:
        text = _add_boilerplate(text, rng)
    return text


def _vocabulary(sentences, limit=20000):
    """Lower-case alphabetic words of the pool, in first-seen order (replacement words)."""
    vocab = {}
    for s in sentences:
        for w in s.split(" "):
            w = w.strip(".,;:!?\"'()[]").lower()
            if w.isalpha() and 3 <= len(w) <= 12:
                vocab.setdefault(w, None)
                if len(vocab) >= limit:
                    return list(vocab)
    return list(vocab)


def build_corpus(sentences, n_docs, seed, dup_share=0.3, control_share=CONTROL_SHARE):
    """Planted corpus of `n_docs` documents, shuffled, ids "d0000001"….

    Returns a list of dicts with keys:
      id, text, cluster  -- cluster is the id of the base document (a base is its own)
      kind               -- "base", "control", or the planted edit ("truncate", "boilerplate+word_edits", …)
      control_group      -- index of the shared boilerplate block for negative controls, else None
    Only id and text are meant to reach a dedup system (see write_jsonl_shards).
    """
    if n_docs < 10:
        raise ValueError("n_docs must be at least 10")
    sentences = list(sentences)
    if len(sentences) < 1000:
        raise ValueError(f"need at least 1,000 sentences, got {len(sentences)}")
    rng = random.Random(seed)
    vocabulary = _vocabulary(sentences)

    n_dup = round(n_docs * dup_share)
    n_groups = len(CONTROL_BLOCKS)
    n_control = max(n_groups * CONTROL_MIN_GROUP, round(n_docs * control_share))
    n_plain = n_docs - n_dup - n_control
    if n_plain < 1:
        raise ValueError("dup_share and control_share leave no plain base documents")

    # Entries: [text, base index (cluster key), kind, control group]; index = base key.
    entries = []
    bases = []
    for i in range(n_plain):
        paras = _base_paragraphs(sentences, rng, rng.randint(*BASE_CHARS))
        bases.append(paras)
        entries.append([_render(paras), i, "base", None])
    for j in range(n_control):
        group = j % n_groups
        paras = _base_paragraphs(sentences, rng, rng.randint(*BASE_CHARS))
        block = CONTROL_BLOCKS[group]
        text = _render(paras)
        text = f"{block}\n\n{text}" if rng.random() < 0.5 else f"{text}\n\n{block}"
        entries.append([text, len(entries), "control", group])

    kinds = [k for k, _ in _KIND_WEIGHTS]
    weights = [w for _, w in _KIND_WEIGHTS]
    for _ in range(n_dup):
        b = rng.randrange(n_plain)
        kind = rng.choices(kinds, weights)[0]
        entries.append([make_near_duplicate(bases[b], kind, rng, vocabulary), b, kind, None])

    order = list(range(len(entries)))
    rng.shuffle(order)
    new_id = {}
    for pos, idx in enumerate(order):
        new_id[idx] = f"d{pos + 1:07d}"
    docs = []
    for idx in order:
        text, cluster_key, kind, group = entries[idx]
        docs.append({"id": new_id[idx], "text": text, "cluster": new_id[cluster_key],
                     "kind": kind, "control_group": group})
    return docs


# ---------------------------------------------------------------- scoring


def _pairs(n):
    return n * (n - 1) // 2


def pairwise_f1(truth_labels, predicted_labels):
    """(precision, recall, f1) over unordered pairs of documents placed in the same cluster.

    Labels are aligned sequences (one truth and one predicted cluster label per document).
    Counts come from the contingency table: true positives are sum C(n_ij, 2) over
    (truth, predicted) cells, predicted pairs sum C(n_j, 2), truth pairs sum C(n_i, 2).
    With no predicted pairs precision is 1.0; with no truth pairs recall is 1.0.
    """
    truth_labels = list(truth_labels)
    predicted_labels = list(predicted_labels)
    if len(truth_labels) != len(predicted_labels):
        raise ValueError(f"{len(truth_labels)} truth labels but {len(predicted_labels)} predicted")
    tp = sum(_pairs(n) for n in Counter(zip(truth_labels, predicted_labels)).values())
    truth_pairs = sum(_pairs(n) for n in Counter(truth_labels).values())
    pred_pairs = sum(_pairs(n) for n in Counter(predicted_labels).values())
    precision = tp / pred_pairs if pred_pairs else 1.0
    recall = tp / truth_pairs if truth_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pair_counts(truth_labels, predicted_labels):
    """(true-positive pairs, truth pairs, predicted pairs) from the contingency table."""
    tp = sum(_pairs(n) for n in Counter(zip(truth_labels, predicted_labels)).values())
    return (tp, sum(_pairs(n) for n in Counter(truth_labels).values()),
            sum(_pairs(n) for n in Counter(predicted_labels).values()))


# ---------------------------------------------------------------- output


def write_jsonl_shards(docs, out_dir, n_shards):
    """Write `docs` as `n_shards` plain JSONL files holding only id and text.

    Documents are split into contiguous runs (their corpus order is already shuffled).
    Returns the list of paths written.
    """
    if n_shards < 1:
        raise ValueError("n_shards must be at least 1")
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    per = -(-len(docs) // n_shards) if docs else 0
    for s in range(n_shards):
        path = os.path.join(out_dir, f"shard-{s:05d}-of-{n_shards:05d}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for d in docs[s * per:(s + 1) * per]:
                f.write(json.dumps({"id": d["id"], "text": d["text"]}, ensure_ascii=False))
                f.write("\n")
        paths.append(path)
    return paths
