"""`corpus-audit index build|add|info`: the index of known model outputs as a Beam pipeline."""
import json
import sys
import time
import uuid

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from corpus_audit.pipelines.local_runner import make_runner
from corpus_audit.schemas import DEAD_LETTER_SCHEMA
from corpus_audit.transforms.audit.shard_pass import PARQUET_COMPRESSION
from corpus_audit.transforms.audit.write_documents import dead_letter_sort_key
from corpus_audit.transforms.dedup.minhash import MinHasher
from corpus_audit.transforms.known import index as ki
from corpus_audit.transforms.read.readers import read_shard
from corpus_audit.transforms.read.records import dead_letter, is_dead_letter
from corpus_audit.transforms.read.shard_io import expand_inputs

BATCH = 1000


def output_row(row):
    """(model, prompt, created) of a known-output record, or a dead letter."""
    meta = json.loads(row["metadata"]) if row["metadata"] else {}
    model = meta.get("model")
    if not isinstance(model, str) or not model.strip():
        return None
    prompt, created = meta.get("prompt"), meta.get("created")
    return model.strip(), None if prompt is None else str(prompt), None if created is None else str(created)


class BuildIndexPart(beam.DoFn):
    """One input file of model outputs → one index part (signatures and n-gram samples)."""

    def __init__(self, index_dir, run, minhash_config, ngram_config, fmt=None):
        self.index_dir = index_dir
        self.run = run
        self.minhash_config = minhash_config
        self.ngram_config = ngram_config
        self.fmt = fmt

    def setup(self):
        self.hasher = MinHasher(self.minhash_config)
        self.sampler = ki.NgramSampler(self.ngram_config)
        self.schema = ki.part_schema(self.minhash_config.num_perm)

    def process(self, element):
        shard_index, path = element
        name = f"part-{self.run}-{shard_index:05d}.parquet"
        target = FileSystems.join(self.index_dir, name)
        sink = FileSystems.create(target)
        writer = pq.ParquetWriter(sink, self.schema, compression=PARQUET_COMPRESSION)
        models, entries, batch, dead = {}, 0, [], 0
        try:
            for row in read_shard(path, self.fmt, {}):
                if not is_dead_letter(row):
                    fields = output_row(row)
                    if fields is None:
                        row = dead_letter(path, row["source_format"], row["record_position"],
                                          "missing_model_field", "a known output needs a `model` field",
                                          record_id=row["doc_id"], raw=row["text"])
                if is_dead_letter(row):
                    dead += 1
                    yield beam.pvalue.TaggedOutput("dead", row)
                    continue
                model, prompt, created = fields
                models[model] = models.get(model, 0) + 1
                batch.append((row["doc_id"], model, prompt, created, row["text"]))
                if len(batch) >= BATCH:
                    writer.write_table(self._table(batch))
                    entries += len(batch)
                    batch = []
            if batch:
                writer.write_table(self._table(batch))
                entries += len(batch)
        finally:
            writer.close()
            sink.close()
        if entries == 0:
            FileSystems.delete([target])
        yield {"file": name, "entries": entries, "models": dict(sorted(models.items())),
               "input": path, "dead_letters": dead}

    def _table(self, batch):
        word_hashes = [self.hasher.word_hashes(text) for *_, text in batch]
        shingles = [self.hasher.shingles(None, wh) for wh in word_hashes]
        sigs = np.zeros((len(batch), self.minhash_config.num_perm), dtype=np.uint32)
        has = np.flatnonzero([len(s) > 0 for s in shingles])
        if len(has):
            sigs[has] = self.hasher.signatures([shingles[i] for i in has])
        ngrams = [self.sampler.sample(wh) for wh in word_hashes]
        cols = list(zip(*batch))
        return pa.table({
            "output_id": pa.array(cols[0], pa.string()),
            "model": pa.array(cols[1], pa.string()),
            "prompt": pa.array(cols[2], pa.string()),
            "created": pa.array(cols[3], pa.string()),
            "n_words": pa.array([len(wh) for wh in word_hashes], pa.int32()),
            "signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel(), pa.uint32()),
                                                           self.minhash_config.num_perm),
            "ngrams": pa.array([g.tolist() for g in ngrams], pa.list_(pa.uint64())),
        }, schema=self.schema)


def build_or_add(settings, beam_args, index_dir, append, progress=True, run_id=None):
    """Build (or append to) an index; returns (manifest, dead letters written). `run_id` (an
    audit's, for --update-index) is recorded in the new parts."""
    start = time.monotonic()
    params = ki.index_params(settings.minhash, settings.ngram)
    if append:
        manifest = ki.read_manifest(index_dir)
        ki.check_compatible(manifest, params, index_dir)
    else:
        if FileSystems.exists(ki.manifest_path(index_dir)) and not settings.overwrite:
            raise FileExistsError(f"{index_dir} already holds an index: use `index add`, or --overwrite")
        manifest = ki.new_manifest(params)
    shards = expand_inputs(settings.inputs)
    run = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
    if progress:
        print(f"[corpus-audit] indexing {len(shards)} file(s) into {index_dir}", file=sys.stderr)
    options = PipelineOptions(beam_args)
    parts_path = FileSystems.join(index_dir, f"_parts-{run}.json")
    dead_path = FileSystems.join(index_dir, f"dead_letters-{run}.parquet")
    with beam.Pipeline(runner=make_runner(options), options=options) as p:
        res = (p
               | "ListFiles" >> beam.Create(list(enumerate(shards)))
               | "SpreadFiles" >> beam.Reshuffle()
               | "BuildParts" >> beam.ParDo(BuildIndexPart(index_dir, run, settings.minhash, settings.ngram,
                                                           settings.format)).with_outputs("dead", main="parts"))
        (res.parts | "CollectParts" >> beam.combiners.ToList()
         | "WriteParts" >> beam.Map(_write_json, parts_path))
        (res.dead | "CollectDead" >> beam.combiners.ToList()
         | "WriteDead" >> beam.Map(_write_dead_letters, dead_path))
    with FileSystems.open(parts_path) as f:
        parts = json.loads(f.read().decode("utf-8"))
    FileSystems.delete([parts_path])
    dead = sum(p["dead_letters"] for p in parts)
    if run_id is not None:
        parts = [{**p, "run_id": run_id} for p in parts]
    if dead == 0 and FileSystems.exists(dead_path):
        FileSystems.delete([dead_path])
    ki.add_parts(manifest, parts)
    ki.write_manifest(index_dir, manifest)
    manifest["seconds"] = round(time.monotonic() - start, 3)
    return manifest, dead


def _write_json(value, path):
    with FileSystems.create(path) as f:
        f.write(json.dumps(value).encode("utf-8"))


def _write_dead_letters(rows, path):
    if rows:
        with FileSystems.create(path) as f:
            pq.write_table(pa.Table.from_pylist(sorted(rows, key=dead_letter_sort_key), schema=DEAD_LETTER_SCHEMA),
                           f, compression=PARQUET_COMPRESSION)


def index_info(index_dir):
    manifest = ki.read_manifest(index_dir)
    size = 0
    for part in manifest["parts"]:
        size += FileSystems.match([FileSystems.join(index_dir, part["file"])])[0].metadata_list[0].size_in_bytes
    return {
        "index": index_dir,
        "format_version": manifest["version"],
        "entries": manifest["entries"],
        "models": ki.models_of(manifest),
        "parts": len(manifest["parts"]),
        "size_bytes": size,
        "bytes_per_entry": round(size / manifest["entries"], 1) if manifest["entries"] else None,
        "params": manifest["params"],
        "dead_letters": sum(p.get("dead_letters", 0) for p in manifest["parts"]),
    }


UPDATE_COLUMNS = ["doc_id", "text", "url", "crawl_date", "provenance", "is_representative", "known_match_kind",
                  "known_match_model"]
UNATTRIBUTED = "unattributed"


def export_synthetic(element, export_dir):
    """The synthetic-labelled documents of one audit file, as known-output records (id, text,
    model, created, url). One per near-duplicate cluster; near copies of outputs already known are
    left out. Returns the file written, or None."""
    index, path = element
    with FileSystems.open(path) as f:
        table = pq.read_table(f, columns=UPDATE_COLUMNS)
    known_copy = pc.fill_null(pc.equal(table["known_match_kind"], "near_copy"), False)
    rows = table.filter(pc.and_(pc.and_(pc.equal(table["provenance"], "synthetic"), table["is_representative"]),
                                pc.invert(known_copy)))
    if rows.num_rows == 0:
        return None
    created = [None if d is None else d.isoformat() for d in rows["crawl_date"].to_pylist()]
    model = [m or UNATTRIBUTED for m in rows["known_match_model"].to_pylist()]
    out = pa.table({"id": rows["doc_id"], "text": rows["text"], "url": rows["url"],
                    "model": pa.array(model, pa.string()), "created": pa.array(created, pa.string())})
    target = FileSystems.join(export_dir, f"synthetic-{index:05d}.parquet")
    with FileSystems.create(target) as sink:
        pq.write_table(out, sink, compression=PARQUET_COMPRESSION)
    return target


def add_run_to_index(run_dir, run_id, index_dir, settings, beam_args, progress=True):
    """`audit --update-index`: add a committed run's synthetic documents to an index (built if
    missing) so that the next audit names copies of them. A run is added once: its parts record
    the run id, and a second attempt (a retry, or a re-run with --overwrite, which commits again
    at another time) is a no-op."""
    from corpus_audit.pipelines.runs import open_run, remove_dir

    run = open_run(run_dir)
    export_dir = FileSystems.join(run_dir.rstrip("/"), "_index_update")
    exists = FileSystems.exists(ki.manifest_path(index_dir))
    if exists:
        manifest = ki.read_manifest(index_dir)
        ki.check_compatible(manifest, ki.index_params(settings.minhash, settings.ngram), index_dir)
        if any(p.get("run_id") == run_id for p in manifest["parts"]):
            return {"added": 0, "already_added": True, "index": index_dir}
    remove_dir(export_dir)
    FileSystems.mkdirs(export_dir)
    try:
        options = PipelineOptions(beam_args)
        listed = FileSystems.join(export_dir, "_files.json")
        with beam.Pipeline(runner=make_runner(options), options=options) as p:
            (p
             | "ListAuditFiles" >> beam.Create(list(enumerate(run.document_files)))
             | "SpreadFiles" >> beam.Reshuffle()
             | "ExportSynthetic" >> beam.Map(export_synthetic, export_dir)
             | "CollectExports" >> beam.combiners.ToList()
             | "WriteList" >> beam.Map(lambda files: _write_json(sorted(f for f in files if f), listed)))
        with FileSystems.open(listed) as f:
            files = json.loads(f.read().decode("utf-8"))
        if not files:
            return {"added": 0, "already_added": False, "index": index_dir}
        raw = type(settings)(**{**settings.__dict__, "inputs": files, "format": "parquet", "overwrite": False})
        before = manifest["entries"] if exists else 0
        manifest, _ = build_or_add(raw, beam_args, index_dir, append=exists, progress=progress, run_id=run_id)
        return {"added": manifest["entries"] - before, "already_added": False, "index": index_dir,
                "run_id": run_id}
    finally:
        # Parts keep their own copy of what they need; the export is only an input.
        remove_dir(export_dir)
