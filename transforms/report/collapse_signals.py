"""Collapse signals of an audit run: lexical diversity, tail mass, similarity within domains.

Models trained on their own outputs lose the rare and the varied first. These numbers watch
for that in a crawl, audit after audit:

- `distinct_1`, `distinct_2`, `distinct_3`: distinct word n-grams / all word n-grams of the
  sample (n-grams do not cross documents). Lower = more repetitive text.
- `tail_mass`: share of the sample's word tokens (tokens with a letter) that are rare in
  English: `wordfreq.zipf_frequency(word, "en") < 3` (fewer than ~1 per million words), which
  includes words absent from wordfreq's list. Lower = thinner tails.
- `domain_similarity`: for the top domains by documents, the mean Jaccard similarity of the
  word 3-shingle sets over all pairs within a domain's sample, pooled over those domains
  (every within-domain pair weighs the same; a domain has at most `domain_sample` documents
  sampled, so no single large site dominates, and a site with two pages weighs one pair,
  not a whole domain). Higher = sites repeating themselves (templated generation).

Comparable across runs of any size, and deterministic. Every number is computed on a
bottom-k sample: the `sample_size` documents whose seeded xxh64 of `doc_id` is smallest
(ties: smallest `text_hash`), each truncated to its first `max_words` words, so the token
budget does not grow with the crawl, the same document is sampled in every run it appears
in, and neither row order nor file layout changes the result. Domain samples are the
`domain_sample` smallest hashes within each of the `top_domains` domains. The sample is
taken over all documents, duplicates included: repetition is part of what is measured.

Reading is streamed file by file through Beam's FileSystems (any Beam filesystem): two
passes over the small `domain` / `doc_id` / `text_hash` columns, then the `text` column of
only the row groups that hold sampled rows. Memory is bounded by the number of domains, the
sample, and one row group.
"""
import heapq
import re
from dataclasses import asdict, dataclass

import numpy as np

_WORD = re.compile(r"\w+(?:'\w+)*")
_HAS_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class CollapseConfig:
    sample_size: int = 2000      # K of the bottom-k document sample
    max_words: int = 256         # words kept from the start of each sampled text
    seed: int = 42               # seed of the doc_id hash
    rare_zipf: float = 3.0       # words below this Zipf frequency count as the tail
    language: str = "en"         # wordfreq list used for the tail
    top_domains: int = 10        # domains (by documents) whose inner similarity is measured
    domain_sample: int = 50      # documents sampled per domain for the pairwise Jaccard
    shingle_size: int = 3        # words per shingle for the Jaccard


def words(text, max_words=None):
    """Lower-cased word tokens (letter/digit runs, inner apostrophes kept), first max_words."""
    text = text.lower().replace("\u2019", "'")
    out = []
    for m in _WORD.finditer(text):
        out.append(m.group())
        if max_words is not None and len(out) >= max_words:
            break
    return out


def distinct_n(token_lists, n):
    """Distinct n-grams / n-grams, over documents (n-grams never cross documents)."""
    seen, total = set(), 0
    for toks in token_lists:
        grams = zip(*(toks[i:] for i in range(n)))
        for g in grams:
            seen.add(g)
            total += 1
    return (len(seen) / total) if total else None


def tail_mass(token_lists, rare_zipf=3.0, language="en"):
    """Share of letter-bearing tokens whose wordfreq Zipf frequency is below rare_zipf."""
    from wordfreq import zipf_frequency

    counts = {}
    for toks in token_lists:
        for t in toks:
            counts[t] = counts.get(t, 0) + 1
    rare = total = 0
    for word, c in counts.items():
        if not _HAS_LETTER.search(word):
            continue
        total += c
        if zipf_frequency(word, language) < rare_zipf:
            rare += c
    return (rare / total) if total else None


def shingles(toks, k):
    if len(toks) < k:
        return {tuple(toks)} if toks else set()
    return set(zip(*(toks[i:] for i in range(k))))


def pairwise_jaccard(sets):
    """(sum of Jaccard, pairs) over all unordered pairs of the non-empty sets."""
    sets = [s for s in sets if s]
    total, pairs = 0.0, 0
    for i in range(len(sets)):
        a = sets[i]
        for j in range(i + 1, len(sets)):
            b = sets[j]
            inter = len(a & b)
            total += inter / (len(a) + len(b) - inter)
            pairs += 1
    return total, pairs


def mean_pairwise_jaccard(sets):
    """Mean Jaccard over all unordered pairs of non-empty sets; None with fewer than 2."""
    total, pairs = pairwise_jaccard(sets)
    return (total / pairs) if pairs else None


def _open_parquet(path):
    import pyarrow.parquet as pq
    from apache_beam.io.filesystems import FileSystems

    return pq.ParquetFile(FileSystems.open(path))


def _hashes(doc_ids, seed):
    import xxhash

    h = xxhash.xxh64_intdigest
    return np.fromiter((h(d.encode("utf-8"), seed) for d in doc_ids), dtype=np.uint64, count=len(doc_ids))


class _BottomK:
    """The k smallest (hash, tie, file, row) keys seen, by a bounded max-heap."""

    def __init__(self, k):
        self.k, self.heap = k, []  # entries: (-hash, negated tie, file, row) so heap[0] is the largest

    def threshold(self):
        return None if len(self.heap) < self.k else -self.heap[0][0]

    def offer(self, h, tie, file_idx, row):
        item = (-h, _Neg(tie), file_idx, row)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, item)
        elif item > self.heap[0]:
            heapq.heapreplace(self.heap, item)

    def rows(self):
        """(file, row) of the kept keys, smallest hash first."""
        return [(f, r) for _, _, f, r in sorted(self.heap, reverse=True)]


class _Neg:
    """Reverses the order of a string inside the max-heap tuples."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return self.v > other.v

    def __gt__(self, other):
        return self.v < other.v

    def __eq__(self, other):
        return self.v == other.v


def _offer_batch(bottom, hashes, ties, file_idx, rows):
    """Offer only the rows that can enter the sample (vectorised pre-filter on the threshold)."""
    t = bottom.threshold()
    idx = np.arange(len(hashes)) if t is None else np.flatnonzero(hashes <= np.uint64(t))
    if t is None and len(idx) > bottom.k:  # first batch: keep the k smallest plus ties at the edge
        kth = np.partition(hashes, bottom.k - 1)[bottom.k - 1]
        idx = np.flatnonzero(hashes <= kth)
    for i in idx:
        bottom.offer(int(hashes[i]), ties[i], file_idx, int(rows[i]))


def domain_counts(run):
    """{domain: documents} over the run (null domains left out)."""
    counts = {}
    for path in run.document_files:
        col = _open_parquet(path).read(columns=["domain"]).column("domain")
        for item in col.value_counts().to_pylist():
            if item["values"] is not None:
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    return counts


def top_domains(counts, n):
    """The n domains with most documents, ties by name."""
    return [d for d, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _sample_rows(run, config, domains):
    """Bottom-k selections: global, and per domain in `domains`."""
    overall = _BottomK(config.sample_size)
    per_domain = {d: _BottomK(config.domain_sample) for d in domains}
    wanted = set(domains)
    for file_idx, path in enumerate(run.document_files):
        pf = _open_parquet(path)
        start = 0
        for batch in pf.iter_batches(columns=["doc_id", "text_hash", "domain"], batch_size=65536):
            ids = batch.column("doc_id").to_pylist()
            ties = batch.column("text_hash").to_pylist()
            doms = np.array(batch.column("domain").to_pylist(), dtype=object)
            hashes = _hashes(ids, config.seed)
            rows = np.arange(start, start + len(ids))
            _offer_batch(overall, hashes, ties, file_idx, rows)
            for d in sorted(wanted.intersection(doms)):
                sel = np.flatnonzero(doms == d)
                _offer_batch(per_domain[d], hashes[sel], [ties[i] for i in sel], file_idx, rows[sel])
            start += len(ids)
    return overall.rows(), {d: b.rows() for d, b in per_domain.items()}


def _read_texts(run, keys, max_words):
    """{(file, row): first max_words tokens}, reading only the row groups holding those rows."""
    by_file = {}
    for f, r in keys:
        by_file.setdefault(f, set()).add(r)
    out = {}
    for f in sorted(by_file):
        pf = _open_parquet(run.document_files[f])
        wanted = sorted(by_file[f])
        start, w = 0, 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            local = []
            while w < len(wanted) and wanted[w] < start + n:
                local.append(wanted[w])
                w += 1
            if local:  # in small batches: a row group's text can be large
                at, i = start, 0
                for batch in pf.iter_batches(row_groups=[g], columns=["text"], batch_size=1024):
                    texts = batch.column(0)
                    while i < len(local) and local[i] < at + len(texts):
                        out[(f, local[i])] = words(texts[local[i] - at].as_py() or "", max_words)
                        i += 1
                    at += len(texts)
            start += n
    return out


def _round(x):
    return None if x is None else round(float(x), 6)


def collapse_signals(run, config=None):
    """Collapse signals of an AuditRun (or a run path) as a JSON-ready dict; see the module doc."""
    if isinstance(run, str):
        from corpus_audit.pipelines.runs import resolve_run

        run = resolve_run(run)
    config = config or CollapseConfig()
    counts = domain_counts(run)
    domains = top_domains(counts, config.top_domains)
    sample, domain_rows = _sample_rows(run, config, domains)
    keys = set(sample)
    for rows in domain_rows.values():
        keys.update(rows)
    tokens = _read_texts(run, keys, config.max_words)
    docs = [tokens[k] for k in sample]
    by_domain, pooled, pooled_pairs = {}, 0.0, 0
    for d in domains:
        sets = [shingles(tokens[k], config.shingle_size) for k in domain_rows[d]]
        total, pairs = pairwise_jaccard(sets)
        pooled, pooled_pairs = pooled + total, pooled_pairs + pairs
        by_domain[d] = {"documents": counts[d], "sampled": len(sets), "pairs": pairs,
                        "mean_jaccard": _round(total / pairs) if pairs else None}
    return {
        "sample_documents": len(docs),
        "sample_tokens": sum(len(t) for t in docs),
        "distinct_1": _round(distinct_n(docs, 1)),
        "distinct_2": _round(distinct_n(docs, 2)),
        "distinct_3": _round(distinct_n(docs, 3)),
        "tail_mass": _round(tail_mass(docs, config.rare_zipf, config.language)),
        "domain_similarity": _round(pooled / pooled_pairs) if pooled_pairs else None,
        "domain_similarity_by_domain": by_domain,
        "parameters": asdict(config),
    }
