"""Tell-tale phrases of chat models → a low-weight score.

Each category is one case-insensitive regular expression over normalised text; a text's
feature for a category is log(1 + number of matches). The score is
sigmoid(intercept + Σ weight_k · feature_k) with the hand-set, documented weights below
(log-odds per unit of log(1 + count)); only the intercept is fitted (the log-odds of "machine"
among training texts with no phrase at all), so the rules transfer to sources the training data
never saw. The ensemble decides how much this score counts.

| category | examples | weight |
|---|---|---|
| refusal | "I'm sorry, but I can't", "I cannot provide", "I don't have personal opinions" | 4.0 |
| ai_self | "as an AI language model", "as an AI", "I am an AI" | 4.0 |
| chat_open | text starts "Sure, here's", "Certainly!", "Of course!", "Great question", "Hi there!" | 3.0 |
| chat_close | "I hope this helps", "Let me know if", "feel free to", "happy to help" | 3.0 |
| important_note | "it's important to note/remember", "it is worth noting", "it is essential to" | 1.5 |
| conclusion | "In conclusion,", "In summary,", "Overall,", "Ultimately,", "To sum up" | 0.25 |
| markdown | "**bold**", "### heading", "1. **Item**" | 1.0 |
| connective | "Additionally,", "Furthermore,", "Moreover,", "In addition," | 0.175 |
| buzzword | delve, tapestry, testament, intricate, multifaceted, pivotal, showcasing, "plays a crucial role", "in today's fast-paced world", "navigate the complexities" | 0.6 |
| scaffold | sentences opening "Firstly,", "Secondly,", "Lastly,", "In this essay", "Not only … but also" | 0.125 |
| register | comprehensive, crucial, enhance, foster, leverage, robust, streamline, "a wide range of", "shed light on", "paving the way", "strike a balance" | 0.4 |

The three essay-scaffolding categories (conclusion, connective, scaffold) count a quarter of
their first weights (1.0, 0.7, 0.5) since model 1.7.0. They are how essay writing is taught: of
the development data's human argumentative essays by language learners (essayforum), 48 % use a
conclusion phrase ("In conclusion,", "Overall,") and 54 % a connective, against 2 % of all human
texts for each, so at full weight this family put learners' essays among the most machine-like
human texts, the people a filter must not remove first. Retrained and measured leave-one-source-out (EVALUATION.md), the
quarter weights lowered those essays at likelihood >= 0.5 from 34 % to 21 % (fast stack) and
from 26 % to 19 % with the LM; the fast stack's pooled AUROC / TPR at 1 % FPR went 0.590 / 11.7 %
-> 0.592 / 13.0 %, its 2023 chat AUROC 0.843 -> 0.836. At weight 0, a replay on the other
families' held-out scores lost more on 2023 chat (fast-stack AUROC 0.825 -> 0.796 there).
"""
from __future__ import annotations

import re

import numpy as np

from .base import Detector, logit, sigmoid

CATEGORIES = {
    "refusal": (4.0, r"\bI'?m sorry,? but (?:I|as)\b|\bI (?:cannot|can't|am unable to|am not able to) "
                r"(?:fulfill|provide|assist|help with|comply|create|generate|answer)|\bI don't have "
                r"(?:personal|access to|the ability)|\bI do not have (?:personal|access|the ability)|"
                r"\bmy (?:knowledge cutoff|training data)\b"),
    "ai_self": (4.0, r"\bas an? (?:AI|artificial intelligence)(?: language model| assistant| model)?\b|"
                r"\bI am an AI\b|\bI'm an AI\b|\bas a (?:large )?language model\b"),
    "chat_open": (3.0, r"^(?:Sure|Certainly|Absolutely|Of course|Great question|Hi there|Hello there|"
                  r"Okay|Alright)\b[!,.:]|^Here(?: i|')s (?:a|an|the|my|some)\b|^(?:Sure|Certainly)[!,.]? "
                  r"here(?: i|')s\b"),
    "chat_close": (3.0, r"\bI hope (?:this|that) helps\b|\bhope this helps\b|\blet me know if\b|"
                   r"\bfeel free to\b|\bhappy to help\b|\bif you have any (?:other |further |more )?questions\b"),
    "important_note": (1.5, r"\bit(?:'s| is) (?:important|worth|crucial|essential|vital) to "
                       r"(?:note|remember|consider|recognize|understand|mention)\b|\bit is worth noting\b|"
                       r"\bit(?:'s| is) essential to\b"),
    "conclusion": (0.25, r"\b(?:In conclusion|In summary|To summarize|To sum up|Overall|Ultimately|"
                   r"In essence)\s*,"),
    "markdown": (1.0, r"\*\*[^*]{1,80}\*\*|(?:^| )#{2,4} [A-Z]|\b\d\. \*\*"),
    "connective": (0.175, r"\b(?:Additionally|Furthermore|Moreover|In addition)\s*,"),
    "buzzword": (0.6, r"\b(?:delve[sd]?|delving|tapestry|testament to|intricate|multifaceted|pivotal|"
                 r"showcas(?:e|es|ed|ing)|underscor(?:e|es|ed|ing)|fostering|realm of|vibrant|"
                 r"seamless(?:ly)?|holistic|invaluable|embark(?:ed|ing)? on|nuanced|"
                 r"plays? an? (?:crucial|vital|significant|pivotal|key|important) role|"
                 r"in today's (?:fast-paced|digital|modern|rapidly)|navigat(?:e|ing) the complexities|"
                 r"a (?:deeper|better) understanding of|valuable insights?|ever-(?:changing|evolving))\b"),
    "scaffold": (0.125, r"(?:^|[.!?] )(?:Firstly|Secondly|Thirdly|Lastly)\s*,|\bIn this (?:essay|article|paper|post),? I\b|"
                 r"\bnot only [^.!?]{1,80}\bbut also\b"),
    "register": (0.4, r"\b(?:comprehensive|crucial|enhanc(?:e|es|ed|ing)|foster(?:s|ed)?|leverag(?:e|es|ed|ing)|"
                 r"robust|streamlin(?:e|es|ed|ing)|a wide (?:range|array|variety) of|sh(?:ed|eds|edding) light on|"
                 r"pav(?:e|es|ed|ing) the way|strik(?:e|es|ing) a balance)\b"),
}
NAMES = list(CATEGORIES)
WEIGHTS = np.array([CATEGORIES[k][0] for k in NAMES])
# The patterns run on the lower-cased text (same matches as re.I on ASCII text, and much faster);
# none of them uses an upper-case escape (\\S, \\W, \\B, \\D) that lower-casing would change.
_RES = [re.compile(CATEGORIES[k][1].lower(), re.M) for k in NAMES]
# Cheap gates: a category's regex runs only if one of its key words occurs in the text as a
# word (ASCII punctuation, the apostrophe included, splits words), and, where a phrase is given
# with the word, that phrase occurs too. Every match of a category's regex contains one of its
# gates; chat_open only looks at the text start, markdown gates on plain substrings.
GATES = {
    "refusal": ("sorry", "cannot", ("can", "can't"), "unable", ("able", "not able to"), ("don", "don't have"),
                ("not", "do not have"), ("knowledge", "my knowledge"), ("training", "my training")),
    "ai_self": ("ai", "artificial", ("model", "language model")),
    "chat_open": None,
    "chat_close": (("hope", "hope th"), ("know", "let me know"), ("free", "feel free"),
                   ("help", "happy to help"), "questions"),
    "important_note": (("important", "important to"), "worth", ("crucial", "crucial to"),
                       ("essential", "essential to"), ("vital", "vital to")),
    "conclusion": ("conclusion", "summary", "summarize", ("sum", "sum up"), "overall", "ultimately", "essence"),
    "markdown": ((None, "**"), (None, "##")),
    "connective": ("additionally", "furthermore", "moreover", ("addition", "in addition")),
    "buzzword": ("delve", "delves", "delved", "delving", "tapestry", "testament", "intricate", "multifaceted",
                 "pivotal", "showcase", "showcases", "showcased", "showcasing", "underscore", "underscores",
                 "underscored", "underscoring", "fostering", "realm", "vibrant", "seamless", "seamlessly",
                 "holistic", "invaluable", "embark", "embarked", "embarking", "nuanced", "role", ("today", "today's"),
                 "complexities", "understanding", "valuable", ("ever", "ever-")),
    "scaffold": ("firstly", "secondly", "thirdly", "lastly", ("essay", "in this essay"),
                 ("article", "in this article"), ("paper", "in this paper"), ("post", "in this post"),
                 ("also", "but also")),
    "register": ("comprehensive", "crucial", "enhance", "enhances", "enhanced", "enhancing", "foster", "fosters",
                 "fostered", "leverage", "leverages", "leveraged", "leveraging", "robust", "streamline",
                 "streamlines", "streamlined", "streamlining", ("wide", "a wide "), ("light", "light on"),
                 ("way", "the way"), ("balance", "a balance")),
}
_SPLIT_PUNCT = bytes(32 if chr(c) in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" else c for c in range(256))


def _gate(spec):
    """((key word as bytes or None, phrase or None), ...)"""
    if spec is None:
        return None
    pairs = [(g, None) if isinstance(g, str) else tuple(g) for g in spec]
    return tuple((None if w is None else w.encode(), ph) for w, ph in pairs)


_GATED = [(r, _gate(GATES[k])) for k, r in zip(NAMES, _RES)]


def phrase_counts(text: str, max_chars=8000) -> np.ndarray:
    t = text[:max_chars]
    low = t.lower()
    words = set(low.encode("utf-8").translate(_SPLIT_PUNCT).split())
    out = np.zeros(len(NAMES))
    for j, (r, gates) in enumerate(_GATED):
        if gates is None:
            out[j] = 1.0 if r.search(low[:200]) else 0.0
        elif any((w is None or w in words) and (ph is None or ph in low) for w, ph in gates):
            out[j] = len(r.findall(low))
    return out


class PhrasesDetector(Detector):
    name = "phrases"

    def __init__(self, max_chars=8000, intercept=0.0, weights=None):
        self.max_chars = int(max_chars)
        self.intercept = float(intercept)
        self.weights = WEIGHTS.copy() if weights is None else np.asarray(weights, dtype=np.float64)

    def featurize(self, texts):
        if not len(texts):
            return np.zeros((0, len(NAMES)))
        return np.log1p(np.vstack([phrase_counts(t, self.max_chars) for t in texts]))

    def fit(self, X, y, sample_weight=None, seed=0):
        y = np.asarray(y, dtype=np.float64)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        none = ~(np.asarray(X) > 0).any(axis=1)
        if none.any():
            self.intercept = float(logit(np.average(y[none], weights=w[none])))
        return self

    def predict(self, X):
        return sigmoid(self.intercept + np.asarray(X) @ self.weights)

    def get_state(self):
        return ({"max_chars": self.max_chars, "intercept": self.intercept, "categories": NAMES,
                 "patterns": {k: CATEGORIES[k][1] for k in NAMES}}, {"weights": self.weights})

    @classmethod
    def from_state(cls, params, arrays):
        if list(params["categories"]) != NAMES:
            raise ValueError("phrase categories of the saved model differ from this code")
        return cls(params["max_chars"], params["intercept"], arrays["weights"])
