"""Benchmark contamination: which evaluation items occur in a crawl or in known model outputs.

The pure cores of `corpus-audit contamination`, usable without Beam:

- `read_benchmark_file` turns a JSONL(.gz/.zst) or Parquet file of evaluation items into
  `Item`s and `BadItem`s (every unusable line is kept with its reason, never dropped);
- `BenchmarkNgrams` holds the items' word n-gram hashes, sorted for lookups: it is small
  (tens of thousands of items), so the pipeline broadcasts it to every worker as a side
  input and the crawl's n-grams never have to be shuffled;
- `scan` matches one batch of crawl documents (or index entries) against it and returns an
  `Evidence`: which item n-grams were seen anywhere, and per item the document that shares
  the most of them. Evidence merges associatively and its size is bounded by the benchmark,
  not by the crawl, so it combines globally;
- `finalise` turns the merged evidence into per-item results and per-benchmark summaries.

Tokens and n-gram hashes are the audit's (`tokens.word_hashes`, `known.index.NgramSampler`):
words are letter/digit runs, lower-cased; an n-gram is a run of `ngram_size` words. Against
an index only the n-grams whose hash is 0 modulo `ngram_sample` exist, so items are sampled
by the same rule and containment is the share of the item's *sampled* n-grams found.
"""
import gzip
import io
import json
import posixpath
from dataclasses import dataclass, field, replace

import numpy as np

from corpus_audit.transforms.dedup.graph import sorted_unique
from corpus_audit.transforms.dedup.tokens import ngram_hashes, word_hashes
from corpus_audit.transforms.known.index import NgramConfig, NgramSampler

# An item whose text is `text`, or (common evaluation formats: MMLU, ARC, HellaSwag, GSM8K,
# SQuAD, TriviaQA, HumanEval, PIQA, BoolQ, WinoGrande, NLI sets, instruction sets) the
# concatenation of these fields, in this order, where present. Strings are used as they
# are, lists element by element, dicts by their "text" (ARC choices, SQuAD answers) or
# "value" (TriviaQA answer) key; numbers and booleans (answer indices, labels) are skipped.
TEXT_FIELD = "text"
PROMPT_FIELDS = ("context", "ctx", "passage", "premise", "hypothesis", "goal", "sentence",
                 "instruction", "prompt", "question", "query", "problem", "input")
ANSWER_FIELDS = ("choices", "options", "endings", "answer", "answers", "solution",
                 "canonical_solution", "target", "output", "completion")
ID_FIELDS = ("id", "item_id", "task_id", "question_id", "qid", "uid", "idx")
BENCHMARK_FIELD = "benchmark"

# Items with fewer n-grams (sampled n-grams against an index) are reported as too_short:
# with 3 n-grams a containment of 0.5 would rest on two hashes.
MIN_NGRAMS = 4
STATUS_CHECKED, STATUS_TOO_SHORT = "checked", "too_short"

_EXTENSIONS = (".gz", ".gzip", ".zst", ".zstd", ".jsonl", ".json", ".ndjson", ".parquet", ".pq")


class ContaminationError(ValueError):
    """Unusable benchmark input: no files, no items."""


@dataclass(frozen=True)
class NgramSpec:
    """How item and crawl n-grams are hashed. `sample` = 1 keeps every n-gram (audits)."""
    ngram_size: int = 8
    sample: int = 1
    seed: int = 42

    def sampler(self):
        return NgramSampler(NgramConfig(ngram_size=self.ngram_size, ngram_sample=self.sample, seed=self.seed))


@dataclass
class Item:
    benchmark: str
    item_id: str
    source: str           # "<file>:<line>" (1-based line, or Parquet row)
    fields: tuple         # the fields the text was built from
    text: str


@dataclass(frozen=True)
class BadItem:
    """reason: malformed_json | invalid_utf8 | not_an_object | missing_text | empty_text |
    bad_field_type | duplicate_id | unreadable_file."""
    benchmark: str
    source: str
    reason: str
    detail: str


def benchmark_name(path):
    """File name without its extensions: evals/mmlu.test.jsonl.gz → mmlu.test."""
    name = posixpath.basename(path)
    while True:
        root, ext = posixpath.splitext(name)
        if ext.lower() in _EXTENSIONS and root:
            name = root
        else:
            return name


def _strings(value, field_name):
    """The strings inside a field value; raises TypeError on a type an item cannot hold."""
    if value is None or isinstance(value, (bool, int, float)):
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out += _strings(v, field_name)
        return out
    if isinstance(value, dict):
        for key in ("text", "value"):
            if key in value:
                return _strings(value[key], field_name)
        out = []
        for key in sorted(value):
            out += _strings(value[key], field_name)
        return out
    raise TypeError(f"field {field_name!r} holds a {type(value).__name__}")


def item_text(record):
    """(text, fields used) of one evaluation record; raises ValueError(reason, detail)."""
    if TEXT_FIELD in record and record[TEXT_FIELD] is not None:
        value = record[TEXT_FIELD]
        if not isinstance(value, str):
            raise ValueError("bad_field_type", f"`text` is a {type(value).__name__}, not a string")
        if not value.strip():
            raise ValueError("empty_text", "`text` is empty")
        return value, (TEXT_FIELD,)
    parts, used, present = [], [], False
    for name in PROMPT_FIELDS + ANSWER_FIELDS:
        if name not in record or record[name] is None:
            continue
        present = True
        try:
            strings = _strings(record[name], name)
        except TypeError as exc:
            raise ValueError("bad_field_type", str(exc)) from None
        if strings:
            parts += strings
            used.append(name)
    if not parts:
        if present:
            raise ValueError("empty_text", "the text fields are empty")
        raise ValueError("missing_text", f"no `text` and none of {', '.join(PROMPT_FIELDS + ANSWER_FIELDS)}")
    return "\n".join(parts), tuple(used)


def _item_id(record, default):
    for name in ID_FIELDS:
        value = record.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    return default


def parse_record(record, file_benchmark, source, default_id):
    """Item or BadItem for one decoded record."""
    if not isinstance(record, dict):
        return BadItem(file_benchmark, source, "not_an_object", f"a JSON {type(record).__name__}, not an object")
    bench = record.get(BENCHMARK_FIELD)
    bench = bench.strip() if isinstance(bench, str) and bench.strip() else file_benchmark
    try:
        text, used = item_text(record)
    except ValueError as exc:
        reason, detail = exc.args
        return BadItem(bench, source, reason, detail)
    return Item(bench, _item_id(record, default_id), source, used, text)


def _open(path):
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    lower = path.lower()
    if lower.endswith((".gz", ".gzip")):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if lower.endswith((".zst", ".zstd")):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return raw


def _is_parquet(path):
    return path.lower().endswith((".parquet", ".pq"))


def read_benchmark_file(path):
    """Items and bad items of one file, in file order. Blank JSONL lines are skipped."""
    bench, name = benchmark_name(path), posixpath.basename(path)
    out = []
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            with _open(path) as f:
                row = 0
                for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
                    for record in batch.to_pylist():
                        row += 1
                        out.append(parse_record(record, bench, f"{name}:{row}", f"{bench}:{row}"))
            return out
        with _open(path) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                source = f"{name}:{line_no}"
                try:
                    record = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    out.append(BadItem(bench, source, "invalid_utf8", str(exc)[:200]))
                    continue
                except ValueError as exc:
                    out.append(BadItem(bench, source, "malformed_json", str(exc)[:200]))
                    continue
                out.append(parse_record(record, bench, source, f"{bench}:{line_no}"))
    except (OSError, EOFError, ValueError) as exc:  # truncated gzip, unreadable Parquet
        out.append(BadItem(bench, name, "unreadable_file", f"{type(exc).__name__}: {exc}"[:300]))
    return out


def load_benchmarks(paths, spec, minhash_config=None):
    """Read and hash the benchmark files: a BenchmarkNgrams that also carries the items
    (without their texts) and the bad items, i.e. everything the report needs."""
    items, bad = read_benchmarks(paths)
    bench = BenchmarkNgrams(items, spec, minhash_config)
    bench.items = [replace(it, text=None) for it in items]
    bench.bad = bad
    return bench


def read_benchmarks(paths):
    """(items, bad items) of all files, in path order; a repeated (benchmark, id) is bad."""
    items, bad, seen = [], [], set()
    for path in paths:
        for x in read_benchmark_file(path):
            if isinstance(x, BadItem):
                bad.append(x)
            elif (x.benchmark, x.item_id) in seen:
                bad.append(BadItem(x.benchmark, x.source, "duplicate_id",
                                   f"item id {x.item_id!r} already seen in benchmark {x.benchmark!r}"))
            else:
                seen.add((x.benchmark, x.item_id))
                items.append(x)
    return items, bad


class BenchmarkNgrams:
    """Sorted (n-gram hash, item) pairs of the items that have enough n-grams: the side input.

    Also the items' MinHash band keys and signatures when a MinHash config is given (near
    copies against an index, whose entries carry signatures)."""

    def __init__(self, items, spec, minhash_config=None):
        self.spec = spec
        sampler = spec.sampler()
        words = [word_hashes(it.text, spec.seed) for it in items]
        grams = [sampler.sample(w) for w in words]
        self.n_words = np.array([len(w) for w in words], dtype=np.int64)
        self.totals = np.array([len(g) for g in grams], dtype=np.int64)
        self.checked = self.totals >= MIN_NGRAMS
        use = [g if ok else g[:0] for g, ok in zip(grams, self.checked)]
        owners = np.repeat(np.arange(len(items), dtype=np.int64), [len(g) for g in use])
        hashes = np.concatenate(use) if use else np.empty(0, dtype=np.uint64)
        order = np.lexsort((owners, hashes))
        self.hashes, self.owners = hashes[order], owners[order]
        self.unique = sorted_unique(self.hashes)
        # A bitmap of the top hash bits (>= 16 bits per n-gram, so ~6 % false positives):
        # most crawl n-grams are rejected by one lookup before the binary search.
        self.filter_bits = max(20, int(np.ceil(np.log2(max(len(self.unique), 1) * 16))))
        self.filter = np.zeros(1 << (self.filter_bits - 3), dtype=np.uint8)
        slot = self.unique >> np.uint64(64 - self.filter_bits)
        np.bitwise_or.at(self.filter, (slot >> np.uint64(3)).astype(np.int64),
                         (np.uint8(1) << (slot & np.uint64(7)).astype(np.uint8)))
        self.grams = use
        self.items, self.bad = items, []
        self.minhash_config = minhash_config
        self.band_keys = self.band_items = self.signatures = None
        if minhash_config is not None:
            self._add_signatures(items, minhash_config)

    def _add_signatures(self, items, cfg):
        from corpus_audit.transforms.dedup.minhash import MinHasher

        hasher = MinHasher(cfg)
        shingles = [hasher.shingles(it.text) for it in items]
        has = np.flatnonzero([len(s) >= cfg.min_shingles for s in shingles])
        self.signatures = np.zeros((len(items), cfg.num_perm), dtype=np.uint32)
        if len(has):
            self.signatures[has] = hasher.signatures([shingles[i] for i in has])
            keys = hasher.band_keys(self.signatures[has]).ravel()
            owners = np.repeat(has.astype(np.int64), cfg.num_bands)
            order = np.lexsort((owners, keys))
            self.band_keys, self.band_items = keys[order], owners[order]
        else:
            self.band_keys = np.empty(0, dtype=np.uint64)
            self.band_items = np.empty(0, dtype=np.int64)

    def __len__(self):
        return len(self.totals)


@dataclass
class Evidence:
    """What a set of crawl documents (or index entries) says about the benchmark items.

    found: sorted distinct item n-gram hashes seen in any document.
    best: item → (shared n-grams, ref) of the document sharing the most; ties go to the
          smallest ref, so the result does not depend on processing order.
    matching: item → number of documents that alone supply >= threshold of the item.
    near: item → (estimated Jaccard, ref) of the most similar index entry.
    ref: (doc_id, url, domain) for an audit, (output_id, model) for an index.
    """
    found: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))
    best: dict = field(default_factory=dict)
    matching: dict = field(default_factory=dict)
    near: dict = field(default_factory=dict)
    scanned: int = 0

    def merge(self, other):
        self.found = np.union1d(self.found, other.found)
        for item, cand in other.best.items():
            cur = self.best.get(item)
            if cur is None or _better(cand, cur):
                self.best[item] = cand
        for item, n in other.matching.items():
            self.matching[item] = self.matching.get(item, 0) + n
        for item, cand in other.near.items():
            cur = self.near.get(item)
            if cur is None or _better(cand, cur):
                self.near[item] = cand
        self.scanned += other.scanned
        return self


def _ref_key(ref):
    return tuple("" if x is None else str(x) for x in ref)


def _better(a, b):
    """a beats b: higher score, then smaller ref."""
    return a[0] > b[0] or (a[0] == b[0] and _ref_key(a[1]) < _ref_key(b[1]))


def doc_ngrams(texts, spec, sampler=None):
    """(hashes, owner row) of every (sampled) n-gram of each text; the crawl side of `scan`."""
    sampler = sampler or spec.sampler()
    mult = sampler._mult
    chunks, owners = [], []
    for row, text in enumerate(texts):
        g = ngram_hashes(word_hashes(text or "", spec.seed), mult)
        if spec.sample > 1:
            g = g[g % np.uint64(spec.sample) == 0]
        chunks.append(g)
        owners.append(np.full(len(g), row, dtype=np.int64))
    if not chunks:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    return np.concatenate(chunks), np.concatenate(owners)


def scan(bench, hashes, owners, refs, threshold):
    """Evidence from one batch: `hashes`/`owners` are the batch's n-gram hashes and the row
    (index into `refs`) each belongs to."""
    ev = Evidence(scanned=len(refs))
    if len(hashes) == 0 or len(bench.unique) == 0:
        return ev
    slot = hashes >> np.uint64(64 - bench.filter_bits)
    maybe = np.flatnonzero(bench.filter[(slot >> np.uint64(3)).astype(np.int64)]
                           & (np.uint8(1) << (slot & np.uint64(7)).astype(np.uint8)))
    pos = np.minimum(np.searchsorted(bench.unique, hashes[maybe]), len(bench.unique) - 1)
    hit = maybe[bench.unique[pos] == hashes[maybe]]
    if len(hit) == 0:
        return ev
    # Distinct (row, hash) hits, so a phrase repeated in a page counts once.
    rows, grams = owners[hit], hashes[hit]
    order = np.lexsort((grams, rows))
    rows, grams = rows[order], grams[order]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (grams[1:] != grams[:-1])]
    rows, grams = rows[first], grams[first]
    ev.found = sorted_unique(grams)
    lo = np.searchsorted(bench.hashes, grams, side="left")
    hi = np.searchsorted(bench.hashes, grams, side="right")
    n = hi - lo
    item_rows = np.repeat(rows, n)
    starts = np.repeat(lo - np.r_[0, np.cumsum(n)[:-1]], n)
    items = bench.owners[starts + np.arange(n.sum())]
    # One uint64 key per (item, row): items and rows of a batch both fit in 32 bits.
    keys, counts = np.unique((items.astype(np.uint64) << np.uint64(32)) | item_rows.astype(np.uint64),
                             return_counts=True)
    it, rw = (keys >> np.uint64(32)).astype(np.int64), (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    share = counts / bench.totals[it]
    for i in np.flatnonzero(share >= threshold):
        ev.matching[int(it[i])] = ev.matching.get(int(it[i]), 0) + 1
    # Best row per item: most shared, then smallest ref (a Python loop over the ties only).
    starts = np.flatnonzero(np.r_[True, it[1:] != it[:-1]])  # `it` is sorted by np.unique
    top = np.maximum.reduceat(counts, starts)
    top_of = np.repeat(top, np.diff(np.r_[starts, len(it)]))
    for j in np.flatnonzero(counts == top_of):
        cand = (int(counts[j]), refs[int(rw[j])])
        cur = ev.best.get(int(it[j]))
        if cur is None or _better(cand, cur):
            ev.best[int(it[j])] = cand
    return ev


def near_copies(bench, signatures, refs, band_keys_of):
    """Evidence of near copies: index entries sharing an LSH band with an item, verified on
    the whole signature. `band_keys_of(signatures)` is MinHasher.band_keys."""
    ev = Evidence()
    if bench.band_keys is None or len(bench.band_keys) == 0 or len(signatures) == 0:
        return ev
    hashed = np.flatnonzero(signatures.any(axis=1))
    if len(hashed) == 0:
        return ev
    keys = band_keys_of(signatures[hashed]).ravel()
    rows = np.repeat(hashed, bench.minhash_config.num_bands)
    lo = np.searchsorted(bench.band_keys, keys, side="left")
    hi = np.searchsorted(bench.band_keys, keys, side="right")
    n = hi - lo
    if n.sum() == 0:
        return ev
    cand_rows = np.repeat(rows, n)
    starts = np.repeat(lo - np.r_[0, np.cumsum(n)[:-1]], n)
    cand_items = bench.band_items[starts + np.arange(n.sum())]
    pairs = np.unique(np.stack([cand_items, cand_rows], axis=1), axis=0)
    sims = (bench.signatures[pairs[:, 0]] == signatures[pairs[:, 1]]).mean(axis=1)
    for (item, row), sim in zip(pairs.tolist(), sims.tolist()):
        cand = (round(float(sim), 4), refs[row])
        cur = ev.near.get(item)
        if cur is None or _better(cand, cur):
            ev.near[item] = cand
    return ev


def containment(bench, found):
    """Share of each item's n-grams that occur in `found` (0 for too-short items)."""
    found = np.asarray(found, dtype=np.uint64)
    if len(found) == 0 or len(bench.hashes) == 0:
        return np.zeros(len(bench))
    pos = np.minimum(np.searchsorted(found, bench.hashes), len(found) - 1)
    seen = np.bincount(bench.owners[found[pos] == bench.hashes], minlength=len(bench))
    return np.divide(seen, bench.totals, out=np.zeros(len(bench)), where=bench.checked)


def finalise(items, bad, bench, ev, threshold, kind, similarity_threshold=0.5, top=5):
    """(per-item results, per-benchmark summaries), both in a deterministic order.

    kind: "audit" (refs are doc_id, url, domain) or "index" (output_id, model)."""
    share = containment(bench, ev.found)
    results = []
    for i, it in enumerate(items):
        checked = bool(bench.checked[i])
        c = round(float(share[i]), 4) if checked else None
        r = {"benchmark": it.benchmark, "item_id": it.item_id, "source": it.source,
             "fields": list(it.fields), "n_words": int(bench.n_words[i]),
             "status": STATUS_CHECKED if checked else STATUS_TOO_SHORT,
             "ngrams": int(bench.totals[i]), "containment": c,
             "contaminated": bool(checked and share[i] >= threshold), "match": None}
        best = ev.best.get(i)
        if checked and best:
            shared, ref = best
            m = ({"doc_id": ref[0], "url": ref[1], "domain": ref[2]} if kind == "audit"
                 else {"output_id": ref[0], "model": ref[1]})
            m.update(shared_ngrams=shared, share=round(shared / int(bench.totals[i]), 4))
            r["match"] = m
            r["documents_matching" if kind == "audit" else "outputs_matching"] = ev.matching.get(i, 0)
        if kind == "index":
            near = ev.near.get(i)
            r["similarity"] = near[0] if near else None
            r["near_copy"] = ({"output_id": near[1][0], "model": near[1][1]}
                              if near and near[0] >= similarity_threshold else None)
        results.append(r)
    return results, summarise(results, bad, kind, top)


def summarise(results, bad, kind, top=5):
    by = {}
    for r in results:
        by.setdefault(r["benchmark"], []).append(r)
    for b in bad:
        by.setdefault(b.benchmark, [])
    summaries = {}
    label = "top_domains" if kind == "audit" else "top_models"
    for name in sorted(by):
        rs = by[name]
        checked = [r for r in rs if r["status"] == STATUS_CHECKED]
        hit = [r for r in checked if r["contaminated"]]
        names = {}
        for r in hit:
            if r["match"]:
                key = r["match"]["domain" if kind == "audit" else "model"] or "(none)"
                names[key] = names.get(key, 0) + 1
        reasons = {}
        for b in bad:
            if b.benchmark == name:
                reasons[b.reason] = reasons.get(b.reason, 0) + 1
        s = {"items": len(rs), "checked": len(checked),
             "too_short": len(rs) - len(checked),
             "bad_items": sum(reasons.values()), "bad_items_by_reason": dict(sorted(reasons.items())),
             "contaminated": len(hit),
             "share": round(len(hit) / len(checked), 4) if checked else None,
             "mean_containment": round(sum(r["containment"] for r in checked) / len(checked), 4) if checked else None,
             label: [[k, v] for k, v in sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]}
        if kind == "index":
            s["near_copies"] = sum(1 for r in rs if r.get("near_copy"))
        summaries[name] = s
    return summaries


def format_table(summaries, kind):
    """The per-benchmark table printed to stdout."""
    label = "top domains" if kind == "audit" else "top models"
    key = "top_domains" if kind == "audit" else "top_models"
    near = kind == "index"
    rows = [("benchmark", "items", "checked", "too_short", "bad", "contaminated", "share")
            + (("near_copies",) if near else ()) + (label,)]
    for name, s in summaries.items():
        tops = ", ".join(f"{k} {v}" for k, v in s[key]) or "-"
        rows.append((name, str(s["items"]), str(s["checked"]), str(s["too_short"]), str(s["bad_items"]),
                     str(s["contaminated"]), "-" if s["share"] is None else f"{s['share']:.1%}")
                    + ((str(s["near_copies"]),) if near else ()) + (tops,))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[c].rjust(widths[c]) for c in range(1, len(widths))]
        lines.append("  ".join(cells + [r[-1]]).rstrip())
    return "\n".join(lines)
