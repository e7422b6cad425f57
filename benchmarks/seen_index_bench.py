"""What a seen-pages index costs an audit: the same crawl with and without a large index.

    .venv/bin/python benchmarks/seen_index_bench.py --size 100000 --entries 1000000

Builds the planted corpus of benchmarks/run.py (with a URL and crawl date per document), seeds
the index with a real audit of the first quarter of the shards (so a quarter of the crawl is
seen before, exactly or as near copies), pads it with filler entries (random signatures, text
hashes and URLs, as an index of other crawls would hold) up to --entries, then times
`audit --no-detectors` without the index (dedup only) and with it. Reports seconds, docs/s,
peak RSS, index bytes per entry, the wall seconds of each pipeline stage (stage_times.py) and
the seen-index cost against the dedup stage. `--index-version 1` builds the index as
corpus-audit wrote it before format version 2 (no stored probe keys), to time that reader.
"""
import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import planted  # noqa: E402
import run as bench  # noqa: E402

FILLER_PART = 100_000


def add_urls(crawl_dir):
    """Give every document a URL and a crawl date (the planted shards hold id and text only)."""
    for path in sorted(glob.glob(os.path.join(crawl_dir, "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                h = int(hashlib.sha1(r["id"].encode()).hexdigest()[:8], 16)
                r["url"] = f"https://site{h % 997}.example/{r['id']}"
                r["crawl_date"] = f"2025-{1 + h % 12:02d}-15"
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_filler(idx, entries, version, seed=0):
    """Filler parts of random entries, listed in the manifest as run `filler`, written as the
    audit writes its parts (format `version`)."""
    from corpus_audit.transforms.dedup.minhash import MinHasher
    from corpus_audit.transforms.seen import index as si

    rng = np.random.default_rng(seed)
    config = bench_minhash()
    num_perm, hasher = config.num_perm, MinHasher(config)
    manifest = si.open_index(idx, si.index_params(config))
    parts = []
    for k, start in enumerate(range(0, entries, FILLER_PART)):
        n = min(FILLER_PART, entries - start)
        sigs = rng.integers(0, 2**32, size=(n, num_perm), dtype=np.uint32)
        hashes = [f"{x:032x}" for x in rng.integers(0, 2**63, size=n, dtype=np.int64)]
        urls = [f"https://other{i % 5000}.example/p/{start + i}" for i in range(n)]
        keys = si.probe_columns(si.probe_keys(hasher, sigs, hashes, urls)) if version >= 2 else {}
        table = pa.table({
            "doc_id": pa.array([f"filler-{start + i}" for i in range(n)]),
            "url": pa.array(urls),
            "text_hash": pa.array(hashes),
            "signature": pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel(), pa.uint32()), num_perm),
            "crawl_date": pa.array(np.full(n, np.datetime64("2024-01-01", "ms")), pa.timestamp("ms", tz="UTC")),
            "provenance": pa.array(["unknown"] * n),
            "synthetic_likelihood": pa.array(rng.random(n).astype(np.float32)),
            "first_seen_run": pa.array(["filler"] * n),
            "first_seen_date": pa.array(np.full(n, np.datetime64("2024-01-01", "D")), pa.date32()),
            **keys,
        }, schema=si.part_schema(num_perm, config.num_bands, "filler", version=version))
        name = f"part-filler-{k:05d}.parquet"
        parts.append({"file": name, **write_part(os.path.join(idx, name), table, version), "entries": n,
                      "first_seen_runs": ["filler"]})
    manifest, _ = si.with_run(manifest, "filler", "2024-01-01", parts)
    if version == 1:
        manifest["version"] = 1
    si.write_manifest(idx, manifest)
    return manifest


def write_part(path, table, version):
    """Write a part as the audit writes it; its record's size, sha256 and version."""
    from corpus_audit.transforms.seen import index as si

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", **({"row_group_size": si.PART_ROW_GROUP} if version >= 2 else {}))
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data)
    record = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {**record, "version": version} if version >= 2 else record


def as_version_1(idx):
    """Rewrite the seeded parts as version 1 wrote them: no probe-key columns, one row group."""
    from corpus_audit.transforms.seen import index as si

    path = os.path.join(idx, "seen.json")
    manifest = json.load(open(path))
    config = bench_minhash()
    for part in manifest["parts"]:
        old = si.part_schema(config.num_perm, config.num_bands, part["run_id"], version=1)
        table = pq.read_table(os.path.join(idx, part["file"])).select(old.names).cast(old)
        part.pop("version", None)
        part.update(write_part(os.path.join(idx, part["file"]), table, 1))
    si.write_manifest(idx, {**manifest, "version": 1})


def stage_split(stages, shard_stage_seconds, workers):
    """Wall seconds of a run by part of the pipeline: the shard pass (reading, language,
    shingles, signatures, staging: one fused stage), the dedup joins (NearDuplicateClusters),
    the seen-index stages (parts read, crawl-key filter, seen joins), the write and the rest.
    `dedup` adds the shard pass's shingle and signature worker-seconds over the workers."""
    split = {"shard_pass": 0.0, "dedup_joins": 0.0, "seen_index": 0.0, "write": 0.0, "other": 0.0}
    for name, sec in stages.items():
        first = name.lstrip("(").split(")")[0]  # the transform a fused stage reads from
        if "ReadAndStageShard" in name:
            split["shard_pass"] += sec
        elif "JoinAnnotationsByShard" in first or "CollectSeenParts" in first or "WriteSeenParts" in first:
            split["write"] += sec
        elif "NearDuplicateClusters" in first:
            split["dedup_joins"] += sec
        elif "Seen" in first or "CrawlKey" in first:
            split["seen_index"] += sec
        else:
            split["other"] += sec
    shingles = sum(shard_stage_seconds.get(k, 0.0) for k in ("tokenize_and_shingle", "signatures_and_keys"))
    split["dedup"] = split["dedup_joins"] + shingles / workers
    return split


def bench_minhash():
    from corpus_audit.transforms.dedup.minhash import MinHashConfig

    return MinHashConfig()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=100_000, help="crawl documents (default %(default)s)")
    ap.add_argument("--entries", type=int, default=1_000_000, help="seen-index entries (default %(default)s)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=os.path.join(bench.PROJECT, "bench-out", "seen"))
    ap.add_argument("--index-version", type=int, default=None, help="seen index format (default: current)")
    ap.add_argument("--reuse-crawl", action="store_true", help="keep the crawl built by an earlier run in --workdir")
    args = ap.parse_args()
    work = os.path.join(args.workdir, str(args.size))
    os.makedirs(work, exist_ok=True)
    crawl = os.path.join(work, "crawl")
    if not (args.reuse_crawl and glob.glob(os.path.join(crawl, "*.jsonl"))):
        bench.build(work, args.size, args.seed, planted.load_sentences(bench.SENTENCES))
        add_urls(crawl)
    shards = sorted(glob.glob(os.path.join(crawl, "*.jsonl")))
    seed_dir = os.path.join(work, "seed-crawl")
    shutil.rmtree(seed_dir, ignore_errors=True)
    os.makedirs(seed_dir)
    for s in shards[:max(1, len(shards) // 4)]:
        os.symlink(s, os.path.join(seed_dir, os.path.basename(s)))
    idx, out = os.path.join(work, "seen-index"), os.path.join(work, "out")
    shutil.rmtree(idx, ignore_errors=True)
    flags = ["--no-detectors", "--quiet", "--partitions", max(8, 4 * args.workers)] + bench.worker_flags(args.workers)
    seeded = bench.measure(bench.corpus_audit("audit", "--input", os.path.join(seed_dir, "*.jsonl"), "--output", out,
                                              "--run-id", "seed", "--overwrite", "--seen-index", idx, *flags),
                           os.path.join(work, "seed"))
    assert seeded["exit_code"] == 0, seeded
    from corpus_audit.transforms.seen.index import FORMAT_VERSION

    version = args.index_version or FORMAT_VERSION
    if version == 1:
        as_version_1(idx)
    real = json.load(open(os.path.join(idx, "seen.json")))["entries"]
    manifest = write_filler(idx, max(0, args.entries - real), version)
    index_bytes = sum(p["size"] for p in manifest["parts"])
    rows = {}
    for label, extra in (("without", []), ("with", ["--seen-index", idx])):
        times = os.path.join(work, f"{label}.stages.json")
        cmd = [sys.executable, os.path.join(HERE, "stage_times.py"), times, "audit", "--input",
               os.path.join(crawl, "*.jsonl"), "--output", out, "--run-id", f"bench-{label}", "--overwrite",
               *map(str, flags), *extra]
        load = os.getloadavg()
        row = bench.measure(cmd, os.path.join(work, label))
        row["load_average_before"] = [round(x, 2) for x in load]
        assert row["exit_code"] == 0, row
        audit = json.load(open(os.path.join(out, f"bench-{label}", "audit.json")))
        row.update({"docs_per_second": args.size / row["seconds"], "audit_seconds": audit["seconds"],
                    "stage_seconds": audit["stage_seconds"], "seen": audit.get("seen")})
        row["pipeline_seconds"] = stage_split(json.load(open(times)), audit["stage_seconds"], args.workers)
        rows[label] = row
    cost = rows["with"]["seconds"] - rows["without"]["seconds"]
    dedup = rows["without"]["pipeline_seconds"]["dedup"]
    result = {"size": args.size, "workers": args.workers, "index_version": version,
              "index_entries": manifest["entries"], "index_bytes": index_bytes,
              "bytes_per_entry": index_bytes / manifest["entries"], "seen_index_seconds": cost,
              "dedup_stage_seconds": dedup, "dedup_only_audit_seconds": rows["without"]["seconds"], **rows}
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(result, f, indent=2, default=str)
    for label, r in rows.items():
        print(f"{label:>8} index: {r['seconds']:.1f} s, {r['docs_per_second']:,.0f} docs/s, peak RSS "
              f"{r['peak_rss_mb']:,.0f} MB, {r['cpu_seconds']:.1f} CPU s, other load {r['other_cpu_cores']:.2f} "
              f"cores, load average before {' '.join(map(str, r['load_average_before']))}")
        print("          stages (wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["pipeline_seconds"].items()))
    seen = rows["with"]["seen"]
    print(f"index {manifest['entries']:,} entries, {index_bytes / 2**20:,.0f} MiB, "
          f"{result['bytes_per_entry']:.0f} bytes/entry; {seen['entries_shipped']:,} entries shipped into the "
          f"shuffles; seen exact {seen['exact']:,}, near {seen['near']:,}, new {seen['new']:,}, "
          f"URL changed {seen['url_changed']:,}")
    print(f"index format version {version}; seen-index cost {cost:.1f} s (with - without; its own stages "
          f"{rows['with']['pipeline_seconds']['seen_index']:.1f} s) vs the dedup stage {dedup:.1f} s "
          f"(whole dedup-only audit {rows['without']['seconds']:.1f} s); peak RSS "
          f"{rows['with']['peak_rss_mb'] - rows['without']['peak_rss_mb']:+,.0f} MB with the index")


if __name__ == "__main__":
    main()
