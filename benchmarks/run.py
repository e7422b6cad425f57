"""The whole-audit benchmark: corpora of 10k, 100k and 1M documents through every stage.

    .venv/bin/python benchmarks/run.py                       # 10k and 100k, 1 and 2 workers
    .venv/bin/python benchmarks/run.py --sizes 1000000 --workers 2

For each size it builds a planted corpus from real sentences (benchmarks/planted.py: ~2.4 KB
documents, 30 % near-duplicates of eight edit kinds, negative controls sharing boilerplate),
an index of known model outputs (one per ten documents, disjoint sentences) and 1 % of the
crawl pasted from those outputs (half verbatim, half with five words changed), all as JSONL
shards. Then, each as a subprocess timed end to end with the peak RSS of its whole process
tree (psutil, sampled every 0.2 s, after waiting for a quiet machine):

  index    `corpus-audit index build` of the known outputs
  full     `corpus-audit audit` with every stage: dedup, known outputs, detectors, ensemble
  dedup    `corpus-audit audit --no-detectors` without an index: the part datatrove also does
  datatrove  datatrove 0.10's four MinHash stages on the same files (benchmarks/datatrove_minhash.py)

and prints docs/s, peak RSS, dedup quality (pairwise F1 against the planted truth), known-output
recall, the per-stage worker seconds from audit.json, the datatrove ratio and the 100k -> 1M
scaling. Results also go to WORKDIR/results.json. datatrove needs the `bench` extra.
"""
import argparse
import glob
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import planted  # noqa: E402

SENTENCES = os.path.join(PROJECT, "..", "shared", "data", "detect", "train.jsonl.gz")
MODELS = ["gpt-4", "gpt-3.5-turbo", "llama-2-70b-chat", "mistral-7b-instruct"]
DOCS_PER_SHARD = 12_500


# ---------------------------------------------------------------- corpus


def build(workdir, size, seed, sentences):
    """Crawl shards, known outputs and the truth; returns (truth rows, copies: doc id -> output id)."""
    crawl_dir, out_dir = os.path.join(workdir, "crawl"), os.path.join(workdir, "outputs")
    for d in (crawl_dir, out_dir):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    n_copies = max(10, size // 100)
    docs = planted.build_corpus(sentences[::2], size - n_copies, seed)
    outputs = planted.build_corpus(sentences[1::2], max(1000, size // 10), seed + 1, dup_share=0.0,
                                   control_share=0.0)
    rng = random.Random(seed)
    with gzip.open(os.path.join(out_dir, "outputs.jsonl.gz"), "wt", compresslevel=1) as f:
        for i, o in enumerate(outputs):
            f.write(json.dumps({"id": f"out-{o['id']}", "text": o["text"], "model": MODELS[i % len(MODELS)]}) + "\n")
    copies = {}
    for j, o in enumerate(rng.sample(outputs, n_copies)):
        words = o["text"].split(" ")
        if j % 2:
            for k in rng.sample(range(len(words)), 5):
                words[k] = "edited"
        docs.append({"id": f"copy-{j:07d}", "text": " ".join(words), "cluster": f"copy-{j:07d}", "kind": "copy",
                     "control_group": None})
        copies[f"copy-{j:07d}"] = f"out-{o['id']}"
    del outputs
    rng.shuffle(docs)
    planted.write_jsonl_shards(docs, crawl_dir, max(8, -(-size // DOCS_PER_SHARD)))
    truth = [{k: d[k] for k in ("id", "cluster", "kind", "control_group")} for d in docs]
    return truth, copies


# ---------------------------------------------------------------- measuring


def busy_cpu_seconds(psutil):
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def wait_for_quiet(psutil, max_wait=300, threshold=25.0, quiet_seconds=3):
    """Wait until the machine is quiet: other jobs would skew the timings."""
    t0, quiet = time.monotonic(), 0
    while time.monotonic() - t0 < max_wait and quiet < quiet_seconds:
        quiet = quiet + 1 if psutil.cpu_percent(interval=1.0) < threshold else 0
    return time.monotonic() - t0


def tree_rss(psutil, proc, cpu_seen):
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            with p.oneshot():
                total += p.memory_info().rss
                c = p.cpu_times()
                cpu_seen[p.pid] = max(cpu_seen.get(p.pid, 0.0), c.user + c.system)
        except psutil.Error:
            pass
    return total


def measure(cmd, log_prefix, pool=None):
    """Run cmd; wall seconds, peak RSS of its process tree, its CPU seconds, other load.
    `pool` (a worker pool's psutil.Process) is sampled too, as the run's worker side."""
    import psutil

    waited = wait_for_quiet(psutil)
    with open(log_prefix + ".stdout", "w") as out, open(log_prefix + ".stderr", "w") as err:
        busy0, t0 = busy_cpu_seconds(psutil), time.monotonic()
        proc = psutil.Popen(cmd, stdout=out, stderr=err)
        peak, worker_peak, both_peak, cpu_seen = 0, 0, 0, {}
        timeline, next_sample = [], 0.0
        while True:
            driver = tree_rss(psutil, proc, cpu_seen)
            side = tree_rss(psutil, pool, cpu_seen) if pool else 0
            peak, worker_peak, both_peak = max(peak, driver), max(worker_peak, side), max(both_peak, driver + side)
            if time.monotonic() - t0 >= next_sample:  # the memory timeline, once a second
                try:
                    alone = proc.memory_info().rss
                except psutil.Error:
                    alone = 0
                timeline.append((round(time.monotonic() - t0, 1), driver + side, alone))
                next_sample += 1.0
            try:
                code = proc.wait(timeout=0.2)
                break
            except psutil.TimeoutExpired:
                pass
        seconds = time.monotonic() - t0
        busy = busy_cpu_seconds(psutil) - busy0
    with open(log_prefix + ".rss.tsv", "w") as f:
        f.write("seconds\ttree_rss_mb\tdriver_process_rss_mb\n"
                + "".join(f"{t}\t{rss / 2**20:.0f}\t{alone / 2**20:.0f}\n" for t, rss, alone in timeline))
    ours = sum(cpu_seen.values())
    row = {"exit_code": code, "seconds": seconds, "peak_rss_mb": both_peak / 2**20, "cpu_seconds": ours,
           "other_cpu_cores": max(0.0, busy - ours) / seconds, "waited_for_quiet": waited}
    if pool:
        row.update(driver_peak_rss_mb=peak / 2**20, worker_peak_rss_mb=worker_peak / 2**20)
    if code != 0:
        with open(log_prefix + ".stderr", errors="replace") as f:
            row["error"] = "".join(f.readlines()[-25:])
        print(f"  FAILED (exit {code}):\n{row['error']}", flush=True)
    return row


def code_state():
    head = subprocess.run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", PROJECT, "status", "--porcelain", "--", "transforms", "pipelines",
                            "schemas", "setup.py"], capture_output=True, text=True).stdout.split("\n")
    return {"head": head, "dirty": sorted(x[3:] for x in dirty if x.strip())}


# ---------------------------------------------------------------- scoring


def dedup_quality(truth, pred):
    ids = [t["id"] for t in truth]
    labels = [pred.get(i, ("missing", i)) for i in ids]
    p, r, f1 = planted.pairwise_f1([t["cluster"] for t in truth], labels)
    sizes = Counter(labels)
    label_of = dict(zip(ids, labels))
    kinds = {}
    for t in truth:
        if t["kind"] not in ("base", "control", "copy"):
            found, total = kinds.get(t["kind"], (0, 0))
            kinds[t["kind"]] = (found + (label_of[t["id"]] == label_of[t["cluster"]]), total + 1)
    return {"precision": p, "recall": r, "f1": f1, "recall_by_kind": {k: v[0] / v[1] for k, v in sorted(kinds.items())},
            "controls_clustered": sum(1 for t in truth if t["kind"] == "control" and sizes[pred.get(t["id"])] > 1),
            "missing": sum(1 for i in ids if i not in pred)}


def read_run(out):
    import pyarrow.dataset as ds

    run = os.path.join(out, "bench")
    with open(os.path.join(run, "audit.json")) as f:
        audit = json.load(f)
    files = sorted(glob.glob(os.path.join(run, "documents-*.parquet")))
    table = ds.dataset(files).to_table(columns=["doc_id", "cluster_id", "known_match_id", "known_match_kind"])
    return audit, table


# ---------------------------------------------------------------- systems


def corpus_audit(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "corpus-audit")
    return [exe if os.path.exists(exe) else "corpus-audit", *map(str, args)]


def worker_flags(workers):
    return [] if workers == 1 else ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


def start_worker_pool(log_prefix):
    """`corpus-audit worker-pool` on a free port: (process, address)."""
    import psutil

    err = open(log_prefix + ".stderr", "w")
    proc = psutil.Popen(corpus_audit("worker-pool", "--port", 0), stdout=subprocess.PIPE, stderr=err, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise SystemExit(f"the worker pool did not start; see {log_prefix}.stderr")
    return proc, line.split("listening on ")[1].split(";")[0]


def portable_flags(address):
    """Beam's portable job API (embedded job server) with SDK workers from an external pool:
    the protocol Flink and Spark speak to Python. The embedded job server runs one worker."""
    return ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
            f"--environment_config={address}"]


def run_audit(workdir, size, workers, full, truth, copies, pool=None):
    label = f"{'full' if full else 'dedup'}-{'portable' if pool else f'w{workers}'}"
    out = os.path.join(workdir, label)
    cmd = corpus_audit("audit", "--input", os.path.join(workdir, "crawl", "*.jsonl"), "--output", out,
                       "--run-id", "bench", "--overwrite", "--quiet", "--partitions", max(8, 4 * workers))
    cmd += portable_flags(pool[1]) if pool else worker_flags(workers)
    cmd += ["--known-outputs", os.path.join(workdir, "index")] if full else ["--no-detectors"]
    print(f"  {label}: {' '.join(cmd[1:4])} …", flush=True)
    system = ("full audit" if full else "dedup only") + (" (portable)" if pool else "")
    row = {"size": size, "system": system, "workers": workers, "runner": label.split("-")[1],
           "code": code_state(), **measure(cmd, out, pool=pool[0] if pool else None)}
    if row["exit_code"] != 0:
        return row
    audit, table = read_run(out)
    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(out, "bench", "*.parquet"))):
        with open(path, "rb") as f:
            digest.update(os.path.basename(path).encode() + f.read())
    row["parquet_sha256"] = digest.hexdigest()
    ids, clusters = table.column("doc_id").to_pylist(), table.column("cluster_id").to_pylist()
    row.update(dedup_quality(truth, dict(zip(ids, clusters))))
    row["stage_seconds"] = audit.get("stage_seconds", {})
    row["audit_seconds"] = audit["seconds"]
    if full:
        named = dict(zip(ids, table.column("known_match_id").to_pylist()))
        row["known_found"] = sum(named.get(d) == o for d, o in copies.items())
        row["known_copies"] = len(copies)
        row["known_false"] = sum(1 for d, k in zip(ids, table.column("known_match_kind").to_pylist())
                                 if k and d not in copies)
        row["synthetic"] = audit.get("synthetic")
    return row


def run_datatrove(workdir, size, workers, truth):
    import pyarrow.parquet as pq

    w = os.path.join(workdir, f"datatrove-w{workers}")
    cmd = [sys.executable, os.path.join(HERE, "datatrove_minhash.py"), "--input", os.path.join(workdir, "crawl"),
           "--workdir", w, "--workers", str(workers)]
    print(f"  datatrove-w{workers} …", flush=True)
    row = {"size": size, "system": "datatrove", "workers": workers, **measure(cmd, w)}
    if row["exit_code"] != 0:
        return row
    pred = {}
    for sub in ("output", "removed"):
        for path in sorted(glob.glob(os.path.join(w, sub, "*.parquet"))):
            tab = pq.read_table(path, columns=["id", "metadata"])
            for doc_id, meta in zip(tab.column("id").to_pylist(), tab.column("metadata").to_pylist()):
                cid = (meta or {}).get("minhash_cluster_id", -1)
                pred[doc_id] = ("single", doc_id) if cid is None or cid < 0 else ("cluster", cid)
    row.update(dedup_quality(truth, pred))
    return row


# ---------------------------------------------------------------- report


def print_report(rows, index_rows):
    print()
    print(f"machine: {os.cpu_count()} CPUs; {platform_line()}")
    head = (f"{'docs':>9} {'system':<22} {'w':>2} {'seconds':>8} {'docs/s':>7} {'peak RSS MB':>11} {'F1':>7} "
            f"{'known found':>11} {'false':>5} {'vs datatrove':>12} {'other CPU':>9}")
    print(head)
    print("-" * len(head))
    dt = {(r["size"], r["workers"]): r["seconds"] for r in rows if r["system"] == "datatrove" and not r["exit_code"]}
    for r in rows:
        if r["exit_code"]:
            print(f"{r['size']:>9,} {r['system']:<22} {r['workers']:>2} FAILED")
            continue
        ratio = dt.get((r["size"], r["workers"]))
        ratio = f"{ratio / r['seconds']:.1f}x" if ratio and r["system"] == "dedup only" else ""
        known = f"{r['known_found']:,}/{r['known_copies']:,}" if "known_found" in r else ""
        print(f"{r['size']:>9,} {r['system']:<22} {r['workers']:>2} {r['seconds']:>8.1f} "
              f"{r['size'] / r['seconds']:>7,.0f} {r['peak_rss_mb']:>11,.0f} {r['f1']:>7.4f} {known:>11} "
              f"{r.get('known_false', ''):>5} {ratio:>12} {r['other_cpu_cores']:>9.2f}")
    for r in index_rows:
        print(f"index build {r['outputs']:,} outputs: {r['seconds']:.1f} s "
              f"({r['outputs'] / r['seconds']:,.0f} outputs/s), peak RSS {r['peak_rss_mb']:,.0f} MB")
    first = {}
    for r in rows:
        if r["system"].startswith("full audit") and not r["exit_code"]:
            ref = first.setdefault(r["size"], r)
            if ref is not r:
                same = "byte-identical to" if r["parquet_sha256"] == ref["parquet_sha256"] else "DIFFERENT from"
                print(f"{r['size']:>9,} {r['system']} w{r['workers']}: Parquet {same} {ref['system']} "
                      f"w{ref['workers']}")
    for r in rows:
        if "worker_peak_rss_mb" in r and not r["exit_code"]:
            print(f"{r['size']:>9,} {r['system']}: driver peak RSS {r['driver_peak_rss_mb']:,.0f} MB, worker pool "
                  f"(pool and its SDK worker) {r['worker_peak_rss_mb']:,.0f} MB")
    full = [r for r in rows if r["system"] == "full audit" and not r["exit_code"]]
    if full:
        stages = sorted({k for r in full for k in r["stage_seconds"]})
        print()
        print("worker seconds per stage (summed over workers; 'shuffles+clustering' = the rest of "
              "wall x workers)")
        print(f"{'docs':>9} {'w':>2} " + " ".join(f"{s:>20}" for s in stages) + f" {'shuffles+clustering':>20}")
        for r in full:
            rest = r["seconds"] * r["workers"] - sum(r["stage_seconds"].values())
            print(f"{r['size']:>9,} {r['workers']:>2} " + " ".join(
                f"{r['stage_seconds'].get(s, 0):>20.1f}" for s in stages) + f" {rest:>20.1f}")
    print()
    print("dedup recall per planted edit kind (copies placed in their base's cluster), negative controls clustered")
    for r in rows:
        if not r["exit_code"]:
            worst = min(r["recall_by_kind"].items(), key=lambda kv: kv[1])
            print(f"{r['size']:>9,} {r['system']:<22} w{r['workers']}: lowest {worst[0]} {worst[1]:.4f}, "
                  f"precision {r['precision']:.4f}, recall {r['recall']:.4f}, "
                  f"controls clustered {r['controls_clustered']}")
    by = {(r["size"], r["system"], r["workers"]): r["seconds"] for r in rows if not r["exit_code"]}
    for (size, system, workers), seconds in sorted(by.items()):
        small = by.get((size // 10, system, workers))
        if small:
            print(f"scaling {system} w{workers}: {size // 10:,} -> {size:,} documents took "
                  f"{seconds / small:.1f}x the time")


def platform_line():
    import platform

    return f"{platform.processor() or platform.machine()}, Python {platform.python_version()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated corpus sizes (default %(default)s)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default %(default)s)")
    ap.add_argument("--datatrove-max", type=int, default=100_000,
                    help="run datatrove only up to this size (it takes ~15x longer; default %(default)s)")
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--runner", choices=("local", "portable"), default="local",
                    help="portable: also run the full audit through Beam's portable job API with an external "
                         "worker pool (`corpus-audit worker-pool`), beside the local runners")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=os.path.join(PROJECT, "bench-out", "run"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    t = time.monotonic()
    sentences = planted.load_sentences(SENTENCES)
    print(f"{len(sentences):,} distinct real sentences loaded in {time.monotonic() - t:.1f} s", flush=True)
    rows, index_rows = [], []
    for size in sizes:
        workdir = os.path.join(args.workdir, str(size))
        os.makedirs(workdir, exist_ok=True)
        t = time.monotonic()
        truth, copies = build(workdir, size, args.seed, sentences)
        mib = sum(os.path.getsize(p) for p in glob.glob(os.path.join(workdir, "crawl", "*.jsonl"))) / 2**20
        print(f"{size:,} documents ({mib:,.0f} MiB JSONL, {len(copies):,} known-output copies) built in "
              f"{time.monotonic() - t:.0f} s", flush=True)
        idx = os.path.join(workdir, "index")
        shutil.rmtree(idx, ignore_errors=True)
        m = measure(corpus_audit("index", "build", "--input", os.path.join(workdir, "outputs", "*.jsonl.gz"),
                                 "--index", idx, "--quiet"), os.path.join(workdir, "index"))
        index_rows.append({"size": size, "outputs": max(1000, size // 10), **m})
        for w in workers:
            rows.append(run_audit(workdir, size, w, True, truth, copies))
        if args.runner == "portable":
            pool = start_worker_pool(os.path.join(workdir, "worker-pool"))
            try:
                rows.append(run_audit(workdir, size, 1, True, truth, copies, pool=pool))
            finally:
                pool[0].terminate()
                pool[0].wait(30)
        if not args.skip_datatrove and size <= args.datatrove_max:
            for w in workers:
                rows.append(run_audit(workdir, size, w, False, truth, copies))
                rows.append(run_datatrove(workdir, size, w, truth))
        with open(os.path.join(args.workdir, "results.json"), "w") as f:
            json.dump({"rows": rows, "index": index_rows}, f, indent=2, default=str)
    print_report(rows, index_rows)
    sys.exit(0 if all(r["exit_code"] == 0 for r in rows + index_rows) else 1)


if __name__ == "__main__":
    main()
