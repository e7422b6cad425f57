"""Provenance decision table: per-document signals → (`provenance`, `provenance_reason`).

Rules are tried top to bottom; the first that applies decides. `p` is the calibrated
synthetic likelihood (ensemble output, hard evidence already applied).

| # | condition | provenance | reason |
|---|---|---|---|
| 1 | empty text or n_words < 50 | unknown | `too_short` |
| 2 | `language` is not `en` (detectors are trained on English) | unknown | `language:<code>` (`language:und` when null) |
| 3 | known_match_kind == 'near_copy' | synthetic | `known_output_copy` |
| 4 | html generator meta tag names an AI writer / AI site builder (GENERATOR_PATTERNS) | synthetic | `generator_meta_tag` |
| 5 | domain in the user's deny set (suffix match) | synthetic | `domain_denylist` |
| 6 | domain in the user's allow set (suffix match) | human | `domain_allowlist` |
| 7 | known_match_kind == 'contains' or known_containment ≥ 0.3 | human_edited | `partial_known_output` |
| 8 | first crawled before 2022-11-30 (ChatGPT release) and p < 0.8 | human | `crawled_before_chatgpt` |
| 9 | the text or a near copy is in the seen-pages index with a first capture before the seen cut-off (default 2022-11-30) and p < 0.8 | human | `seen_before_cutoff` |
| 10 | the URL's latest earlier capture had other text, labelled human, this text first seen on or after the cut-off and p ≥ 0.8 | human_edited | `rewritten_human_page` |
| 11 | the same with an earlier capture not labelled human | synthetic | `rewritten_page_high` |
| 12 | p ≥ 0.8 (`high`) | synthetic | `detector_high` |
| 13 | p ≤ 0.01 (`low`) | human | `detector_low` |
| 14 | otherwise | unknown | `uncertain` |

Notes: short, non-English and empty documents never get a confident label, whatever the other
evidence (rules 1-2 come first; the caller keeps the raw signals). A pre-ChatGPT crawl date is
strong human evidence but not proof (GPT-2/3 spam existed), so a very high likelihood on an old
page falls through to `detector_high`; the seen-pages index remembers an old capture of the
same text or a near copy in the same way (rule 9), even when this capture has no date. A page
whose URL the index knows with other text, rewritten after the cut-off into text that scores
synthetic, was edited by a machine: `human_edited` when the earlier text was labelled human
(rule 10), else plain `synthetic` evidence (rule 11). Domain suffix match: 'example.com' matches
'example.com' and 'news.example.com', not 'badexample.com'.
"""
from __future__ import annotations

import datetime as _dt
import re

import numpy as np

from corpus_audit.transforms.language import ENGLISH, UNDETERMINED

HUMAN, HUMAN_EDITED, SYNTHETIC, UNKNOWN = "human", "human_edited", "synthetic", "unknown"
CHATGPT_RELEASE = _dt.datetime(2022, 11, 30)
MIN_WORDS = 50
# Chosen on leave-one-source-out likelihoods at the default prior (EVALUATION.md, "Provenance
# rules", per model; the README's table gives the shipped one's): p ≥ 0.8 has called at most
# 0.1 % of unseen human texts synthetic; p ≤ 0.1 would call more than half of the machine texts
# human, p ≤ 0.01 calls about 1 %, so a score alone rarely says "human".
HIGH, LOW = 0.8, 0.01
CONTAINMENT_MIN = 0.3

# <meta name="generator"> values that name text generators or AI site/content builders.
GENERATOR_PATTERNS = [
    r"\bchat ?gpt\b", r"\bgpt-?[234]", r"\bopenai\b", r"\bjasper\b", r"\bcopy\.ai\b", r"\bwritesonic\b",
    r"\brytr\b", r"\barticle ?forge\b", r"\bai ?writer\b", r"\bai content\b", r"\bwordhero\b",
    r"\bcontent ?at ?scale\b", r"\bkoala ?writer\b", r"\b10web ai\b", r"\bdurable\b", r"\bzyro ai\b",
    r"\bai[- ]generated\b", r"\bai (?:site|website) builder\b",
]
_GEN_RE = re.compile("|".join(GENERATOR_PATTERNS), re.I)


def _norm_domain(d):
    d = (d or "").strip().lower().rstrip(".")
    return d[4:] if d.startswith("www.") else d


def domain_matches(domain, domain_set) -> bool:
    """Suffix match on label boundaries: 'example.com' matches 'news.example.com'."""
    d = _norm_domain(domain)
    if not d or not domain_set:
        return False
    labels = d.split(".")
    return any(".".join(labels[i:]) in domain_set for i in range(len(labels)))


def generator_is_ai(value) -> bool:
    return bool(value) and bool(_GEN_RE.search(str(value)))


def _to_datetime(x):
    if x is None:
        return None
    if isinstance(x, float) and np.isnan(x):
        return None
    if isinstance(x, np.datetime64):
        if np.isnat(x):
            return None
        x = x.astype("datetime64[us]").item()
    if isinstance(x, str):
        try:
            x = _dt.datetime.fromisoformat(x.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(x, _dt.datetime):
        return x.replace(tzinfo=None)
    if isinstance(x, _dt.date):
        return _dt.datetime(x.year, x.month, x.day)
    return None


def _col(x, n, fill):
    if x is None:
        return [fill] * n
    if np.isscalar(x) or isinstance(x, (str, _dt.date)):
        return [x] * n
    x = list(x)
    if len(x) != n:
        raise ValueError(f"signal has {len(x)} values for {n} documents")
    return x


def predates_cutoff(crawl_date, n, seen_before=None, first_seen_date=None, seen_cutoff=CHATGPT_RELEASE):
    """(crawled before ChatGPT's release, seen-pages index first capture before the seen
    cut-off): the two date evidences of human text, as boolean arrays of length n."""
    dates = [_to_datetime(d) for d in _col(crawl_date, n, None)]
    cutoff = _to_datetime(seen_cutoff)
    seen = np.array([s is not None for s in _col(seen_before, n, None)], dtype=bool)
    first = [_to_datetime(d) for d in _col(first_seen_date, n, None)]
    return (np.array([d is not None and d < CHATGPT_RELEASE for d in dates], dtype=bool),
            seen & np.array([d is not None and d < cutoff for d in first], dtype=bool))


def decide_provenance(synthetic_likelihood, known_match_kind=None, known_containment=None,
                      crawl_date=None, domain=None, allow_domains=(), deny_domains=(),
                      html_generator=None, n_words=None, language=None, high=HIGH, low=LOW,
                      seen_before=None, first_seen_date=None, text_changed_since=None, previous_human=None,
                      seen_cutoff=CHATGPT_RELEASE, predated=None):
    """Vectorised decision table (module docstring). Every signal is an array/list of length n,
    a scalar applied to all, or None (missing; n_words None counts as 0, and `language` None as
    English for every document, while a None inside the list is a text with no language).
    `language` holds the `language` column's codes. The seen-pages signals (seen_before,
    first_seen_date, text_changed_since, previous_human) are None without an index. Returns
    (provenance, reason) as object arrays. `predated` is predates_cutoff(...) of the same
    signals when the caller has it already."""
    p = np.asarray(synthetic_likelihood, dtype=np.float64).reshape(-1)
    n = len(p)
    p = np.where(np.isfinite(p), p, 0.5)
    kind = _col(known_match_kind, n, None)
    con = np.asarray([np.nan if c is None else float(c) for c in _col(known_containment, n, None)])
    doms = _col(domain, n, None)
    gens = _col(html_generator, n, None)
    nw = np.asarray([0 if w is None else w for w in _col(n_words, n, None)], dtype=np.float64) \
        if n_words is not None else np.full(n, np.inf)
    langs = _col(language, n, ENGLISH) if language is not None else [ENGLISH] * n
    eng = np.asarray([code == ENGLISH for code in langs], dtype=bool)
    allow = {_norm_domain(d) for d in (allow_domains or ())}
    deny = {_norm_domain(d) for d in (deny_domains or ())}

    has_con = np.isfinite(con)
    cutoff = _to_datetime(seen_cutoff)
    old_crawl, seen_old = predated or predates_cutoff(crawl_date, n, seen_before, first_seen_date, seen_cutoff)
    first = [_to_datetime(d) for d in _col(first_seen_date, n, None)]
    new_first = np.array([d is not None and d >= cutoff for d in first], dtype=bool)
    changed = np.array([bool(c) for c in _col(text_changed_since, n, None)], dtype=bool)
    was_human = np.array([bool(h) for h in _col(previous_human, n, None)], dtype=bool)
    rewritten = changed & new_first & (p >= high)
    conditions = [
        ~(nw >= MIN_WORDS),
        ~eng,
        np.array([k == "near_copy" for k in kind], dtype=bool),
        np.array([generator_is_ai(g) for g in gens], dtype=bool),
        np.array([bool(deny) and domain_matches(d, deny) for d in doms], dtype=bool),
        np.array([bool(allow) and domain_matches(d, allow) for d in doms], dtype=bool),
        np.array([k == "contains" for k in kind], dtype=bool) | (has_con & (np.where(has_con, con, 0) >= CONTAINMENT_MIN)),
        old_crawl & (p < high),
        seen_old & (p < high),
        rewritten & was_human,
        rewritten,
        p >= high,
        p <= low,
    ]
    outcomes = [(UNKNOWN, "too_short"), (UNKNOWN, "language"), (SYNTHETIC, "known_output_copy"),
                (SYNTHETIC, "generator_meta_tag"), (SYNTHETIC, "domain_denylist"), (HUMAN, "domain_allowlist"),
                (HUMAN_EDITED, "partial_known_output"), (HUMAN, "crawled_before_chatgpt"),
                (HUMAN, "seen_before_cutoff"), (HUMAN_EDITED, "rewritten_human_page"),
                (SYNTHETIC, "rewritten_page_high"), (SYNTHETIC, "detector_high"), (HUMAN, "detector_low")]
    rule = np.select(conditions, np.arange(len(conditions)), default=len(conditions)) if n else np.zeros(0, int)
    outcomes.append((UNKNOWN, "uncertain"))
    prov = np.array([o[0] for o in outcomes], dtype=object)[rule]
    reason = np.array([o[1] for o in outcomes], dtype=object)[rule]
    for i in np.flatnonzero(rule == 1):
        reason[i] = f"language:{langs[i] or UNDETERMINED}"
    return prov, reason
