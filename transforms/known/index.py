"""The index of known model outputs: format, parameters, and the per-output sketches.

Layout on any Beam filesystem:

    INDEX/index.json              manifest: format version, parameters, the parts in order
    INDEX/part-<run>-<n>.parquet  one row per known output (id, model, signature, n-grams)

`index.json` is the commit point: a part that it does not list does not exist, so an
interrupted build or append leaves the index as it was, and `add` never rewrites a part.
Every output gets a 64-bit entry id with the top bit set (`1<<63 | part<<32 | row`), so
entries and crawl documents can share one shuffle without colliding.

Each entry keeps its MinHash signature (near-copy similarity, same parameters as the
audit) and a sample of its word 8-gram hashes: those whose hash is 0 modulo
`ngram_sample`. Sampling by hash value, not position, means a document and an output sample
the same n-grams wherever a passage sits, so a shared passage shows up as shared samples.
"""
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from corpus_audit.transforms.dedup.graph import sorted_unique
from corpus_audit.transforms.dedup.tokens import ngram_hashes

FORMAT = "corpus-audit-known-outputs"
FORMAT_VERSION = 1
MANIFEST = "index.json"
ENTRY_BIT = np.uint64(1 << 63)


class KnownIndexError(ValueError):
    """A missing, corrupt or incompatible index: raised before any work starts."""


@dataclass(frozen=True)
class NgramConfig:
    ngram_size: int = 8
    ngram_sample: int = 8  # keep 1 in ngram_sample n-grams, chosen by hash value
    seed: int = 42

    def to_dict(self):
        return asdict(self)


class NgramSampler:
    """Sampled word n-gram hashes of a text, from the word hashes of `tokens.word_hashes`."""

    def __init__(self, config=NgramConfig()):
        self.config = config
        rng = np.random.Generator(np.random.PCG64(config.seed + 1))
        self._mult = rng.integers(0, 2**64, size=config.ngram_size, dtype=np.uint64) | np.uint64(1)

    def sample(self, word_hashes):
        """Sorted distinct sampled n-gram hashes."""
        grams = ngram_hashes(word_hashes, self._mult)
        return sorted_unique(grams[grams % np.uint64(self.config.ngram_sample) == 0])


def entry_ids(part_number, rows):
    return ENTRY_BIT | (np.uint64(part_number) << np.uint64(32)) | np.asarray(rows, dtype=np.uint64)


def is_entry(ids):
    return (np.asarray(ids, dtype=np.uint64) & ENTRY_BIT) != 0


def part_schema(num_perm):
    return pa.schema([
        pa.field("output_id", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("prompt", pa.string()),
        pa.field("created", pa.string()),
        pa.field("n_words", pa.int32(), nullable=False),
        pa.field("signature", pa.list_(pa.uint32(), num_perm), nullable=False),
        pa.field("ngrams", pa.list_(pa.uint64()), nullable=False),
    ], metadata={"corpus_audit.kind": "known_outputs_part", "corpus_audit.index_version": str(FORMAT_VERSION)})


def index_params(minhash_config, ngram_config):
    """The parameters an audit must share with the index to compare signatures."""
    m = minhash_config
    return {"shingle_size": m.shingle_size, "num_perm": m.num_perm, "num_bands": m.num_bands,
            "rows_per_band": m.rows_per_band, "seed": m.seed, **ngram_config.to_dict()}


def manifest_path(index_dir):
    return FileSystems.join(index_dir, MANIFEST)


def read_manifest(index_dir):
    """The manifest, checked: raises KnownIndexError with a clear message if unusable."""
    path = manifest_path(index_dir)
    if not FileSystems.exists(path):
        raise KnownIndexError(f"{index_dir} is not a known-outputs index (no {MANIFEST}); "
                          "build one with `corpus-audit index build`")
    try:
        with FileSystems.open(path) as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise KnownIndexError(f"{path} is corrupt: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise KnownIndexError(f"{path} is not a corpus-audit known-outputs manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise KnownIndexError(f"{path} has index format version {manifest.get('version')}; this "
                          f"corpus-audit reads version {FORMAT_VERSION}: rebuild the index")
    return manifest


def check_compatible(manifest, params, index_dir):
    theirs = manifest.get("params", {})
    diff = {k: (theirs.get(k), v) for k, v in params.items() if theirs.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: index {a!r} vs audit {b!r}" for k, (a, b) in sorted(diff.items()))
        raise KnownIndexError(f"the index in {index_dir} was built with other parameters ({detail}); "
                          "rebuild it or run the audit with the index's parameters")


def check_parts(manifest, index_dir):
    """Every listed part exists and has the listed number of rows (reads footers only)."""
    import pyarrow.parquet as pq

    if not manifest.get("parts") or manifest.get("entries", 0) == 0:
        raise KnownIndexError(f"the index in {index_dir} is empty: add outputs with `corpus-audit index add`")
    for part in manifest["parts"]:
        path = FileSystems.join(index_dir, part["file"])
        try:
            with FileSystems.open(path) as f:
                rows = pq.ParquetFile(f).metadata.num_rows
        except Exception as exc:
            raise KnownIndexError(f"index part {path} is missing or corrupt: {type(exc).__name__}: {exc}") from exc
        if rows != part["entries"]:
            raise KnownIndexError(f"index part {path} has {rows} rows, the manifest says {part['entries']}")


def write_manifest(index_dir, manifest):
    """index.json is the commit of a build/add."""
    commit_json(index_dir, MANIFEST, manifest)


def commit_json(folder, name, obj):
    """Write folder/name through a temporary file and a rename, so a reader sees the old
    manifest or the new one, never half of one."""
    path = FileSystems.join(folder, name)
    tmp = FileSystems.join(folder, f"_{name}.tmp")
    with FileSystems.create(tmp) as f:
        f.write((json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def new_manifest(params):
    return {"format": FORMAT, "version": FORMAT_VERSION, "params": params, "parts": [], "entries": 0}


def add_parts(manifest, parts):
    """Append part records (file, entries, models, inputs) in a stable order."""
    for part in sorted(parts, key=lambda p: p["file"]):
        if part["entries"]:
            manifest["parts"].append({**part, "added": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    manifest["entries"] = sum(p["entries"] for p in manifest["parts"])
    return manifest


def models_of(manifest):
    totals = {}
    for part in manifest["parts"]:
        for model, n in part.get("models", {}).items():
            totals[model] = totals.get(model, 0) + n
    return dict(sorted(totals.items()))
