"""The seen-pages index: format, manifest and parts.

Layout on any Beam filesystem:

    SEEN/seen.json                        manifest: format, version, MinHash parameters, parts
    SEEN/part-<run>-<attempt>-<n>.parquet one row per document an audit run wrote

Version 2 parts also hold each entry's probe keys (LSH band keys, exact-text key, URL key), so
a reader probes the crawl's Bloom filter without decoding signatures or hashing strings, in row
groups of PART_ROW_GROUP rows. Version-1 parts are still read (their keys are recomputed); a
run adds version-2 parts, and its commit marks the manifest version 2.

`seen.json` is the commit point, as `index.json` is for known outputs: a part it does not list
does not exist, parts are never rewritten, and a run is listed at most once (its parts record
its run id). A re-run of a run id with `--overwrite` replaces that run's parts at the run's
place in the list, so the index never holds a run twice.

Entry ids have bit 62 set (`1<<62 | part<<32 | row`): documents (`shard<<32 | row`) and
known-output entries (bit 63) share the LSH, signature and exact shuffles with them without
colliding.
"""
import hashlib
import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from corpus_audit.transforms.known.index import commit_json

FORMAT = "corpus-audit-seen-pages"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "seen.json"
PART_ROW_GROUP = 16_384  # bounds a reader's memory, and the signatures read to verify a few rows
SEEN_BIT = np.uint64(1 << 62)


class SeenIndexError(ValueError):
    """A corrupt, incompatible or damaged seen index: the audit stops with this message."""


def part_schema(num_perm, num_bands, run_id="", version=FORMAT_VERSION):
    fields = [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("text_hash", pa.string(), nullable=False),
        pa.field("signature", pa.list_(pa.uint32(), num_perm), nullable=False),
        pa.field("crawl_date", pa.timestamp("ms", tz="UTC")),
        pa.field("provenance", pa.string(), nullable=False),
        pa.field("synthetic_likelihood", pa.float32()),
        pa.field("first_seen_run", pa.string(), nullable=False),
        pa.field("first_seen_date", pa.date32(), nullable=False),
    ]
    if version >= 2:
        fields += [
            pa.field("band_keys", pa.list_(pa.uint64(), num_bands), nullable=False),  # zeros: too short
            pa.field("exact_key", pa.uint64(), nullable=False),
            pa.field("url_key", pa.uint64()),  # null: no URL
        ]
    return pa.schema(fields, metadata={"corpus_audit.kind": "seen_pages_part",
                                       "corpus_audit.seen_index_version": str(version),
                                       "corpus_audit.run_id": run_id})


PROBE_COLUMNS = {1: ["signature", "text_hash", "url"], 2: ["band_keys", "exact_key", "url_key"]}


def part_version(part):
    """A part record's format version; records without one were written by version 1."""
    return part.get("version", 1)


def readable(version):
    return type(version) is int and version in READABLE_VERSIONS


def probe_keys(hasher, signatures, text_hashes, urls, bands=None):
    """What a part's entries are probed with, from their signatures, text hashes and URLs:
    (band keys (n, bands), hashed mask, exact keys, URL keys, has-URL mask). All-zero
    signatures (too short to shingle) have no band keys; their rows are zeros, as stored.
    `bands` are the band keys when the caller has them already (the shard pass's); `hasher` is
    then unused and may be None."""
    from corpus_audit.transforms.dedup.minhash import exact_keys
    from corpus_audit.transforms.seen.core import url_keys

    signatures = np.asarray(signatures)
    hashed = signatures.any(axis=1)
    if bands is None:
        bands = np.zeros((len(signatures), hasher.config.num_bands), dtype=np.uint64)
        if hashed.any():
            bands[hashed] = hasher.band_keys(signatures[hashed])
    urls_, has_url = url_keys(urls)
    return bands, hashed, exact_keys(text_hashes), urls_, has_url


def probe_columns(keys):
    """probe_keys(...) as the version-2 part columns."""
    bands, _, exact, urls, has_url = keys
    return {"band_keys": pa.FixedSizeListArray.from_arrays(pa.array(bands.ravel(), pa.uint64()), bands.shape[1]),
            "exact_key": pa.array(exact, pa.uint64()),
            "url_key": pa.array(urls, pa.uint64(), mask=~has_url)}


def read_probe_keys(table, version, hasher):
    """probe_keys of a part's rows (a table or record batch): read from version-2 columns,
    recomputed for version 1."""
    column = lambda name: _array(table.column(name))  # noqa: E731
    if version == 1:
        sigs = column("signature").flatten().to_numpy().reshape(table.num_rows, hasher.config.num_perm)
        return probe_keys(hasher, sigs, column("text_hash").to_pylist(), column("url").to_pylist())
    url = column("url_key")
    keys = column("band_keys").flatten().to_numpy().reshape(table.num_rows, hasher.config.num_bands)
    # 25 zero keys are a too-short text's; a hashed text has them with probability 2^-1600
    return (keys, keys.any(axis=1), column("exact_key").to_numpy(),
            np.asarray(url.fill_null(0).to_numpy(), dtype=np.uint64), url.is_valid().to_numpy(zero_copy_only=False))


def _array(column):
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def index_params(minhash_config):
    """What an audit must share with the index to compare its signatures and band keys."""
    m = minhash_config
    return {"shingle_size": m.shingle_size, "num_perm": m.num_perm, "num_bands": m.num_bands,
            "rows_per_band": m.rows_per_band, "seed": m.seed}


def entry_ids(part_number, rows):
    return SEEN_BIT | (np.uint64(part_number) << np.uint64(32)) | np.asarray(rows, dtype=np.uint64)


def is_seen_entry(ids):
    """Seen entries have bit 62 and not bit 63 (known-output entries)."""
    ids = np.asarray(ids, dtype=np.uint64)
    return (ids >> np.uint64(62)) == np.uint64(1)


def manifest_path(index_dir):
    return FileSystems.join(index_dir, MANIFEST)


def new_manifest(params):
    return {"format": FORMAT, "version": FORMAT_VERSION, "params": params, "parts": [], "entries": 0}


def open_index(index_dir, params):
    """The manifest, checked against the audit's parameters; a new empty one when the index does
    not exist yet (it is created when the first run commits). Raises SeenIndexError."""
    path = manifest_path(index_dir)
    if not FileSystems.exists(path):
        if FileSystems.exists(FileSystems.join(index_dir, "index.json")):
            raise SeenIndexError(f"--seen-index {index_dir} is a known-outputs index, not a seen-pages index")
        return new_manifest(params)
    try:
        with FileSystems.open(path) as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise SeenIndexError(f"seen index {path} is corrupt: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SeenIndexError(f"{path} is not a corpus-audit seen-pages manifest")
    if not readable(manifest.get("version")):
        raise SeenIndexError(f"seen index {path} has format version {manifest.get('version')}; this corpus-audit "
                             f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    theirs = manifest.get("params") or {}
    diff = {k: (theirs.get(k), v) for k, v in params.items() if theirs.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: index {a!r} vs audit {b!r}" for k, (a, b) in sorted(diff.items()))
        raise SeenIndexError(f"the seen index in {index_dir} was built with other MinHash parameters ({detail})")
    if not isinstance(manifest.get("parts"), list) or any(
            not isinstance(p, dict) or not {"file", "entries", "run_id", "size", "sha256"} <= set(p)
            for p in manifest["parts"]):
        raise SeenIndexError(f"seen index {path} is corrupt: a part record lacks file, entries, run_id, size or sha256")
    return manifest


def parts_before_run(manifest, run_id):
    """The parts an audit of `run_id` reads: never the run's own, and for a re-run only those
    listed before it, so re-running a run sees the index as its first attempt did."""
    parts = manifest["parts"]
    own = [i for i, p in enumerate(parts) if p["run_id"] == run_id]
    return parts[:own[0]] if own else list(parts)


def check_parts(index_dir, parts, num_perm, num_bands):
    """Every part exists with the version, size, row count and schema its record states (file
    sizes and Parquet footers only; the readers check each part's sha256)."""
    import pyarrow.parquet as pq

    for part in parts:
        path = FileSystems.join(index_dir, part["file"])
        version = part_version(part)
        if not readable(version):
            raise SeenIndexError(f"seen index part {path} has format version {version}; this corpus-audit reads "
                                 f"versions {', '.join(map(str, READABLE_VERSIONS))}")
        found = FileSystems.match([path])[0].metadata_list if FileSystems.exists(path) else []
        if not found:
            raise SeenIndexError(f"seen index part {path} is missing")
        if found[0].size_in_bytes != part["size"]:
            raise SeenIndexError(f"seen index part {path} is {found[0].size_in_bytes} bytes, the manifest says "
                                 f"{part['size']} (truncated or replaced)")
        try:
            with FileSystems.open(path) as f:
                meta = pq.ParquetFile(f).metadata
                schema = meta.schema.to_arrow_schema()
        except Exception as exc:
            raise SeenIndexError(f"seen index part {path} is corrupt: {type(exc).__name__}: {exc}") from exc
        if meta.num_rows != part["entries"]:
            raise SeenIndexError(f"seen index part {path} has {meta.num_rows} rows, the manifest says {part['entries']}")
        if not schema.equals(part_schema(num_perm, num_bands, version=version), check_metadata=False):
            raise SeenIndexError(f"seen index part {path} has another schema than this corpus-audit writes")


def read_part_bytes(index_dir, part):
    """A part's bytes, checked against the manifest's size and sha256 (SeenIndexError if not)."""
    path = FileSystems.join(index_dir, part["file"])
    try:
        with FileSystems.open(path) as f:
            data = f.read()
    except Exception as exc:
        raise SeenIndexError(f"seen index part {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    if len(data) != part["size"] or hashlib.sha256(data).hexdigest() != part["sha256"]:
        raise SeenIndexError(f"seen index part {path} does not match its manifest record (size or sha256): "
                             "the index is damaged")
    return data


def runs_of(manifest, run_id):
    """Sorted run ids the index refers to, plus this run's: the ranks that break date ties."""
    runs = {run_id}
    for part in manifest["parts"]:
        runs.add(part["run_id"])
        runs.update(part.get("first_seen_runs", ()))
    return sorted(runs)


def write_manifest(index_dir, manifest):
    """seen.json is the commit."""
    commit_json(index_dir, MANIFEST, manifest)


def with_run(manifest, run_id, run_date, parts):
    """The manifest with `run_id`'s parts replaced by `parts` (at the run's place if it was
    listed, else at the end). Returns (new manifest, files no longer listed)."""
    added = datetime.now(timezone.utc).isoformat(timespec="seconds")
    new = [{**p, "run_id": run_id, "run_date": run_date, "added": added}
           for p in sorted(parts, key=lambda p: p["file"]) if p["entries"]]
    old = manifest["parts"]
    at = next((i for i, p in enumerate(old) if p["run_id"] == run_id), len(old))
    dropped = [p["file"] for p in old if p["run_id"] == run_id]
    kept = [p for p in old if p["run_id"] != run_id]
    out = {**manifest, "version": FORMAT_VERSION, "parts": kept[:at] + new + kept[at:]}
    out["entries"] = sum(p["entries"] for p in out["parts"])
    out["runs"] = len({p["run_id"] for p in out["parts"]})
    return out, dropped


def commit_run(index_dir, params, run_id, run_date, parts):
    """Add a committed audit run's parts to the index (created if missing); once per run id."""
    if not FileSystems.exists(index_dir):
        FileSystems.mkdirs(index_dir)
    current = open_index(index_dir, params)
    manifest, dropped = with_run(current, run_id, run_date, parts)
    write_manifest(index_dir, manifest)
    stale = [FileSystems.join(index_dir, f) for f in dropped if f not in {p["file"] for p in manifest["parts"]}]
    stale = [f for f in stale if FileSystems.exists(f)]
    if stale:
        FileSystems.delete(stale)
    return {"index": index_dir, "entries": manifest["entries"], "added": sum(p["entries"] for p in parts),
            "replaced": len(dropped) > 0, "runs": manifest["runs"]}
