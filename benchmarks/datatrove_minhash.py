"""Run datatrove 0.10's four MinHash dedup stages on a folder of JSONL shards.

Invoked by run.py as a subprocess (so its wall time and the RSS of its whole
process tree can be measured the same way as `corpus-audit`):

    python benchmarks/datatrove_minhash.py --input DIR --workdir W --workers N

Stages (default MinhashConfig: 5-grams, 14 buckets x 8 hashes, 64-bit xxhash):
  1. JsonlReader -> MinhashDedupSignature           tasks = workers = N
  2. MinhashDedupBuckets                             tasks = num_buckets (14), workers = N
  3. MinhashDedupCluster(save_cluster_id=True)       tasks = 1 (datatrove requires it)
  4. JsonlReader -> MinhashDedupFilter(load_cluster_ids=True) -> ParquetWriter (zstd)
                                                     tasks = workers = N
The filter writes kept documents to W/output and removed ones (exclusion_writer) to
W/removed, both with `minhash_cluster_id` in their metadata (-1: in no cluster).
Word tokenizer: datatrove's assignment for English, SpaCyTokenizer("en") = spacy.blank("en"),
a rule-based tokenizer shipped inside spacy (no model download).
"""
import argparse
import os
import shutil
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True, help="folder of *.jsonl shards")
    ap.add_argument("--workdir", required=True, help="scratch folder (emptied first)")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.typeshelper import Languages

    w = args.workdir
    if os.path.exists(w):
        shutil.rmtree(w)
    os.makedirs(w)
    cfg = MinhashConfig()
    n = args.workers

    def reader():
        return JsonlReader(args.input, glob_pattern="*.jsonl", compression=None)

    times = {}
    t0 = time.monotonic()
    LocalPipelineExecutor(
        pipeline=[reader(), MinhashDedupSignature(output_folder=f"{w}/signatures", config=cfg,
                                                  language=Languages.english)],
        tasks=n, workers=n, logging_dir=f"{w}/logs/signatures",
    ).run()
    times["signatures"] = time.monotonic() - t0
    t = time.monotonic()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(input_folder=f"{w}/signatures", output_folder=f"{w}/buckets",
                                      config=cfg)],
        tasks=cfg.num_buckets, workers=n, logging_dir=f"{w}/logs/buckets",
    ).run()
    times["buckets"] = time.monotonic() - t
    t = time.monotonic()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(input_folder=f"{w}/buckets", output_folder=f"{w}/remove_ids",
                                      config=cfg, save_cluster_id=True)],
        tasks=1, logging_dir=f"{w}/logs/clusters",
    ).run()
    times["clusters"] = time.monotonic() - t
    t = time.monotonic()
    LocalPipelineExecutor(
        pipeline=[reader(),
                  MinhashDedupFilter(input_folder=f"{w}/remove_ids", load_cluster_ids=True,
                                     exclusion_writer=ParquetWriter(f"{w}/removed", compression="zstd")),
                  ParquetWriter(f"{w}/output", compression="zstd")],
        tasks=n, workers=n, logging_dir=f"{w}/logs/filter",
    ).run()
    times["filter"] = time.monotonic() - t
    times["total"] = time.monotonic() - t0
    print("STAGE_SECONDS " + " ".join(f"{k}={v:.2f}" for k, v in times.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
