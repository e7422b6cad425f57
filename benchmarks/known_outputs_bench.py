"""Cost of matching against known model outputs: index build rate, index size per entry, and
audit throughput and peak memory with an index of N outputs against the same audit without
(detectors off in both, so the difference is the known-output stage next to deduplication).

    python benchmarks/known_outputs_bench.py --docs 100000 --outputs 100000

Outputs and crawl documents are built from real sentences (benchmarks/planted.py); 1 % of the
crawl are verbatim or lightly edited copies of outputs, so the report also shows recall.
Each run is a separate `corpus-audit` process; peak RSS is read from its resource usage
(single-worker runs keep all work in that process).
"""
import argparse
import gzip
import json
import os
import glob
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import planted  # noqa: E402

ROOT = os.path.dirname(HERE)
DETECT = os.path.join(ROOT, "..", "shared", "data", "detect", "train.jsonl.gz")
CLI = [os.path.join(ROOT, ".venv", "bin", "corpus-audit")]
MODELS = ["gpt-4", "gpt-3.5-turbo", "llama-2-70b-chat", "mistral-7b-instruct"]


def run(args):
    """Wall seconds and peak RSS (MiB) of one corpus-audit process (GNU time's %M)."""
    with tempfile.NamedTemporaryFile("r") as rss_file:
        start = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + CLI + args,
                              capture_output=True, text=True)
        seconds = time.monotonic() - start
        if proc.returncode != 0:
            raise SystemExit(f"failed: {' '.join(args)}\n{proc.stderr[-3000:]}")
        peak_kib = int(rss_file.read().strip().splitlines()[-1])
    return seconds, peak_kib / 1024


def build(workdir, n_docs, n_outputs, seed):
    sentences = planted.load_sentences(DETECT)
    # Disjoint sentence pools: otherwise unrelated documents share whole sentences by construction.
    crawl = planted.build_corpus(sentences[::2], n_docs, seed)
    outputs = planted.build_corpus(sentences[1::2], n_outputs, seed + 1, dup_share=0.0, control_share=0.0)
    rng = random.Random(seed)
    os.makedirs(os.path.join(workdir, "outputs"), exist_ok=True)
    with gzip.open(os.path.join(workdir, "outputs", "outputs.jsonl.gz"), "wt") as f:
        for i, o in enumerate(outputs):
            f.write(json.dumps({"id": f"out-{o['id']}", "text": o["text"], "model": MODELS[i % len(MODELS)]}) + "\n")
    copies = {}
    for j, o in enumerate(rng.sample(outputs, n_docs // 100)):
        words = o["text"].split(" ")
        if j % 2:
            for k in rng.sample(range(len(words)), 5):
                words[k] = "edited"
        crawl.append({"id": f"copy-{j}", "text": " ".join(words), "cluster": f"copy-{j}"})
        copies[f"copy-{j}"] = f"out-{o['id']}"
    planted.write_jsonl_shards(crawl, os.path.join(workdir, "crawl"), 8)
    return len(crawl), copies


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--outputs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench-out", "known"))
    args = ap.parse_args()
    w = args.workdir
    n_crawl, copies = build(w, args.docs, args.outputs, args.seed)
    idx = os.path.join(w, "idx")
    subprocess.run(["rm", "-rf", idx], check=True)
    t_index, rss_index = run(["index", "build", "--input", os.path.join(w, "outputs", "*.jsonl.gz"),
                              "--index", idx, "--quiet"])
    info = json.loads(subprocess.run(CLI + ["index", "info", "--index", idx], capture_output=True,
                                     text=True, check=True).stdout)
    crawl = os.path.join(w, "crawl", "*.jsonl")
    rows = []
    for label, extra in (("1 worker", []),
                         ("2 workers", ["--direct_running_mode=multi_processing", "--direct_num_workers=2"])):
        for with_index in (False, True):
            out = os.path.join(w, f"out-{label[0]}-{int(with_index)}")
            # Detectors off: this measures the known-output stage against deduplication alone.
            cmd = ["audit", "--input", crawl, "--output", out, "--overwrite", "--quiet", "--no-detectors"] + extra
            if with_index:
                cmd += ["--known-outputs", idx]
            seconds, rss = run(cmd)
            audit = json.load(open(os.path.join(out, "audit.json")))
            rows.append((label, with_index, seconds, n_crawl / seconds, rss, audit))
    import pyarrow.dataset as ds

    out = os.path.join(w, "out-1-1")
    table = ds.dataset(sorted(glob.glob(os.path.join(out, "documents-*.parquet")))).to_table(
        columns=["doc_id", "known_match_id", "known_match_kind"]).to_pylist()
    named = {r["doc_id"]: r["known_match_id"] for r in table}
    found = sum(named.get(d) == o for d, o in copies.items())
    false = sum(1 for r in table if r["known_match_kind"] and not r["doc_id"].startswith("copy-"))
    print(f"crawl {n_crawl:,} documents ({len(copies):,} copies of outputs); index {info['entries']:,} outputs")
    print(f"index build: {t_index:.1f} s, {info['entries'] / t_index:,.0f} outputs/s, peak RSS {rss_index:,.0f} MiB; "
          f"{info['size_bytes'] / 2**20:,.1f} MiB on disk = {info['bytes_per_entry']:,.0f} bytes per output")
    print(f"{'workers':<10} {'index':<6} {'seconds':>8} {'docs/s':>8} {'peak RSS MiB':>13} {'matched':>8}")
    for label, with_index, seconds, rate, rss, audit in rows:
        matched = (audit["known_outputs"] or {}).get("documents_matched", "-")
        print(f"{label:<10} {'yes' if with_index else 'no':<6} {seconds:8.1f} {rate:8,.0f} "
              f"{rss if label == '1 worker' else float('nan'):13,.0f} {matched!s:>8}")
    for label in ("1 worker", "2 workers"):
        a = next(r for r in rows if r[0] == label and not r[1])
        b = next(r for r in rows if r[0] == label and r[1])
        print(f"{label}: the index costs {b[2] - a[2]:.1f} s ({b[2] / a[2]:.2f}x the audit without it); "
              f"dedup-only audit {a[2]:.1f} s")
    a = next(r for r in rows if r[0] == "1 worker" and not r[1])
    b = next(r for r in rows if r[0] == "1 worker" and r[1])
    print(f"memory: +{b[4] - a[4]:,.0f} MiB peak RSS with the index = "
          f"{(b[4] - a[4]) * 2**20 / info['entries']:,.0f} bytes per indexed output (1 worker)")
    print(f"recall: {found}/{len(copies)} copies named correctly; {false} other documents matched")


if __name__ == "__main__":
    main()
