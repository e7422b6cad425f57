"""Versioned Parquet schemas for `documents-*.parquet` and `dead_letters-*.parquet`.

Columns come in groups, one per stage that fills them. A later stage (known-output
similarity, detectors, ensemble) adds its own group and bumps SCHEMA_VERSION; readers
check the version stored in the file metadata instead of guessing from column names.
"""
import pyarrow as pa

SCHEMA_VERSION = "5"

_TS = pa.timestamp("ms", tz="UTC")

# (name, type, nullable, description)
SOURCE_COLUMNS = [
    ("doc_id", pa.string(), False,
     "Stable, unique id: the input's `id` if given, else the WARC-Record-ID, else `<shard name>#<position>`; "
     "a record whose id an earlier record (shard path order, then record order) already has becomes "
     "`<id>~dup<k>`."),
    ("url", pa.string(), True, "Target URI of the capture (WARC/WET) or the input's `url` field."),
    ("domain", pa.string(), True, "Lower-cased host of `url` without a leading `www.`."),
    ("crawl_date", _TS, True, "WARC-Date of the capture or the input's `crawl_date` (UTC)."),
    ("source_shard", pa.string(), False, "Path of the shard the document was read from."),
    ("source_format", pa.string(), False, "warc | wet | jsonl | parquet."),
    ("record_position", pa.int64(), False,
     "Byte offset of the WARC record, or 0-based line (JSONL) / row (Parquet) number."),
    ("content_type", pa.string(), True, "HTTP Content-Type of a WARC response (without parameters)."),
    ("html_generator", pa.string(), True, "Content of the page's <meta name=\"generator\">, if any."),
    ("text", pa.string(), False, "Extracted main text (HTML boilerplate removed for WARC responses)."),
    ("text_hash", pa.string(), False,
     "xxh3-128 (hex) of the normalised text (lower-cased, whitespace collapsed): equal texts, equal hash."),
    ("n_chars", pa.int32(), False, "Characters in `text`."),
    ("n_words", pa.int32(), False,
     "Words in `text` as the MinHash tokenizer sees them (letter/digit runs; punctuation splits)."),
    ("metadata", pa.string(), True, "Other input fields as a JSON object (JSONL/Parquet input)."),
]

LANGUAGE_COLUMNS = [
    ("language", pa.string(), True,
     "Language by fastText's lid.176 model on the whitespace-collapsed text's first 150 characters (500 "
     "where it is less sure than 0.9): ISO 639-1 code (lid.176's ISO 639-2/3 code for a language without "
     "one, e.g. `als`); null when the first 500 have no letter. Detectors are trained on English: documents in other "
     "languages get no detector scores and no synthetic_likelihood."),
    ("language_score", pa.float32(), True, "The model's probability for `language`; null with it."),
]

DEDUP_COLUMNS = [
    ("cluster_id", pa.string(), False,
     "doc_id of the cluster's representative; a document alone in its cluster is its own cluster."),
    ("cluster_size", pa.int32(), False, "Documents in the near-duplicate cluster (1 = unique)."),
    ("is_representative", pa.bool_(), False,
     "Exactly one per cluster: the most words, ties broken by the smallest doc_id."),
    ("exact_dup", pa.bool_(), False, "Another document in the audit has the same `text_hash`."),
    ("too_short", pa.bool_(), False,
     "Too few word shingles for MinHash: clustered by exact text only."),
]

KNOWN_OUTPUT_COLUMNS = [
    ("known_similarity", pa.float32(), True,
     "Best estimated Jaccard with a known model output (verified on the MinHash signature; "
     "candidates below 0.4 count as 0); null when the audit had no known-output index."),
    ("known_containment", pa.float32(), True,
     "Share of the document's sampled word 8-grams that occur in known outputs; null without an index."),
    ("known_match_id", pa.string(), True,
     "Id of the known output the document copies (near copy first, else the output it shares "
     "most n-grams with), or null when it matches none."),
    ("known_match_model", pa.string(), True, "Model that produced `known_match_id`."),
    ("known_match_kind", pa.string(), True,
     "near_copy (known_similarity ≥ --similarity-threshold) | contains (the named output alone "
     "supplies ≥ --containment-threshold of the document's sampled n-grams) | null."),
]

SEEN_COLUMNS = [
    ("first_seen_run", pa.string(), True,
     "Run id of the earliest capture of this text or a near copy in the seen-pages index (--seen-index), "
     "earliest by (date, run id); this run's id for text never seen before; null without a seen index."),
    ("first_seen_date", pa.date32(), True,
     "Date of that earliest capture: its crawl_date, else the date of its run (--run-date); null without a "
     "seen index."),
    ("seen_before", pa.string(), True,
     "exact (an earlier run held the same text_hash) | near (a near copy: estimated Jaccard ≥ "
     "--similarity-threshold) | null (new text, or no seen index)."),
    ("url_seen_before", pa.bool_(), True,
     "An earlier run captured this URL; null without a URL or without a seen index."),
    ("text_changed_since", pa.bool_(), True,
     "The URL's latest earlier capture had another text_hash; null unless url_seen_before."),
]

DETECTOR_NAMES = ("classifier", "stylometry", "wordfreq", "compression", "phrases")
DETECTOR_SCORE_COLUMNS = [
    ("det_classifier", pa.float32(), True, "Hashed word and character n-gram linear classifier: P(machine)."),
    ("det_stylometry", pa.float32(), True,
     "Stylometry (sentence-length spread, type-token ratio, punctuation and function words): P(machine)."),
    ("det_wordfreq", pa.float32(), True,
     "Word-frequency rank statistics (GLTR-style, offline frequency lists): P(machine)."),
    ("det_compression", pa.float32(), True,
     "Compression ratios and extra bytes against machine vs human reference text: P(machine)."),
    ("det_phrases", pa.float32(), True, "Tell-tale chat-model phrases (low weight): P(machine)."),
]
LM_COLUMNS = [
    ("lm_logprob", pa.float32(), True,
     "Language-model tier: mean log-probability of the first N tokens under the packaged small LM, "
     "their first quarter (at most 32) read as context only; null where the LM did not score the "
     "document (--lm-detector off, or outside its sample); a near-duplicate takes its cluster "
     "representative's values, which the LM scored once."),
    ("lm_entropy", pa.float32(), True, "Mean entropy of the LM's next-token distribution over the same tokens."),
    ("lm_curvature", pa.float32(), True,
     "Fast-DetectGPT analytic sampling discrepancy (scoring model = sampling model)."),
    ("lm_rank1", pa.float32(), True, "Share of tokens that are the LM's top-1 prediction."),
    ("lm_rank10", pa.float32(), True, "Share of tokens within the LM's top 10 predictions."),
    ("lm_logprob_std", pa.float32(), True, "Spread (standard deviation) of the token log-probabilities."),
    ("lm_gain", pa.float32(), True,
     "Mean of log p(token given its context) - log p-bar(token), p-bar the LM's next-token distribution "
     "averaged over the document's positions: how much the immediate context adds to the document's "
     "vocabulary."),
    ("lm_gain_prior", pa.float32(), True,
     "Mean of log p(token given its context) - log p(token given no text): the log-probability gained over "
     "what the LM expects before any text, so rare words of a domain do not read as human."),
    ("det_lm", pa.float32(), True, "The LM family's score from the statistics above: P(machine)."),
]
ENSEMBLE_COLUMNS = [
    ("synthetic_likelihood", pa.float32(), True,
     "Calibrated probability that the text is machine-written: weighted combination of the "
     "detector families' quantiles among human text (the LM's where it scored), calibrated, moved "
     "to the audit's --prior, then hard evidence (known-output copies) applied; null when the "
     "audit ran without detectors."),
    ("provenance", pa.string(), False, "human | human_edited | synthetic | unknown (decision table in the README)."),
    ("provenance_reason", pa.string(), False,
     "The rule that decided `provenance`, e.g. known_output_copy, crawled_before_chatgpt, too_short."),
    ("detector_version", pa.string(), True, "Version of the detector model that scored the document."),
]

DEAD_LETTER_COLUMNS = [
    ("source_shard", pa.string(), False, "Path of the shard."),
    ("source_format", pa.string(), False, "Format the shard was read as."),
    ("record_position", pa.int64(), False,
     "Byte offset (WARC), line (JSONL) or row (Parquet); -1 when the whole shard failed."),
    ("record_id", pa.string(), True, "WARC-Record-ID or input id, when known."),
    ("reason", pa.string(), False, "Short machine-readable reason, e.g. malformed_json, truncated_shard."),
    ("detail", pa.string(), False, "Human-readable explanation."),
    ("snippet", pa.string(), True, "Up to 200 characters of the offending input, for inspection."),
]


# Training shards written by `corpus-audit filter`: the text and what a trainer may want to
# weight or trace it by; everything else stays in the audit.
TRAINING_COLUMN_NAMES = ("doc_id", "text", "url", "domain", "language", "crawl_date", "synthetic_likelihood", "provenance",
                         "cluster_size", "source_shard", "record_position")


def _schema(columns, kind):
    fields = [
        pa.field(name, typ, nullable=nullable, metadata={"description": desc})
        for name, typ, nullable, desc in columns
    ]
    return pa.schema(fields, metadata={
        "corpus_audit.schema_version": SCHEMA_VERSION,
        "corpus_audit.kind": kind,
    })


STAGED_SCHEMA = _schema(SOURCE_COLUMNS + LANGUAGE_COLUMNS + [c for c in DEDUP_COLUMNS if c[0] == "too_short"]
                        + DETECTOR_SCORE_COLUMNS, "staged_documents")
DOCUMENT_SCHEMA = _schema(SOURCE_COLUMNS + LANGUAGE_COLUMNS + DEDUP_COLUMNS + KNOWN_OUTPUT_COLUMNS + SEEN_COLUMNS
                          + DETECTOR_SCORE_COLUMNS + LM_COLUMNS + ENSEMBLE_COLUMNS, "documents")
DEAD_LETTER_SCHEMA = _schema(DEAD_LETTER_COLUMNS, "dead_letters")
_BY_NAME = {c[0]: c for c in SOURCE_COLUMNS + LANGUAGE_COLUMNS + DEDUP_COLUMNS + KNOWN_OUTPUT_COLUMNS + SEEN_COLUMNS
            + DETECTOR_SCORE_COLUMNS
            + LM_COLUMNS + ENSEMBLE_COLUMNS}
TRAINING_SCHEMA = _schema([_BY_NAME[name] for name in TRAINING_COLUMN_NAMES], "training_shard")


def describe(schema=DOCUMENT_SCHEMA):
    """Markdown table of a schema's columns, used by the README and `corpus-audit schema`."""
    lines = ["| column | type | description |", "|---|---|---|"]
    for field in schema:
        desc = field.metadata[b"description"].decode()
        lines.append(f"| `{field.name}` | {field.type}{'' if field.nullable else ', required'} | {desc} |")
    return "\n".join(lines)
