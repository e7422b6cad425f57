"""Near-duplicate benchmark: corpus-audit vs datatrove 0.10 MinHash on a planted corpus.

    .venv/bin/python benchmarks/dedup_bench.py --docs 100000

Builds a planted corpus (benchmarks/planted.py) as plain JSONL shards, runs
`corpus-audit audit --no-detectors` (deduplication alone: in-process runner, then
multi_processing with 2 workers), the full audit with detectors (same two modes), and
datatrove's four MinHash stages (benchmarks/datatrove_minhash.py; 1 then 2 workers), each as
a subprocess timed end to end with the peak RSS of its whole process tree (psutil, sampled
every 0.2 s, RSS of the process plus all descendants summed). Clusters are scored with
pairwise precision/recall/F1 against the planted truth, recall per planted edit kind, and a
check that no negative-control group (unrelated pages sharing one boilerplate block) merged.
Everything lands in --workdir (default ./bench-out), including results.json.
"""

if __name__ == "__main__":
    import argparse
    import glob
    import json
    import os
    import shutil
    import subprocess
    import sys
    import time
    from collections import Counter, defaultdict

    import psutil
    import pyarrow.parquet as pq

    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, HERE)
    import planted  # noqa: E402

    DEFAULT_SENTENCES = "/work/shared/data/detect/train.jsonl.gz"

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000, help="documents in the corpus (default %(default)s)")
    ap.add_argument("--shards", type=int, default=8, help="JSONL shards (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="corpus seed (default %(default)s)")
    ap.add_argument("--workdir", default="bench-out", help="scratch and results folder (default %(default)s)")
    ap.add_argument("--sentences", default=DEFAULT_SENTENCES, help="JSONL(.gz) of texts for the sentence pool")
    ap.add_argument("--skip-datatrove", action="store_true", help="only run corpus-audit")
    ap.add_argument("--skip-full-audit", action="store_true",
                    help="only time deduplication (corpus-audit --no-detectors), not the whole audit")
    args = ap.parse_args()

    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    input_dir = os.path.join(workdir, "input")

    # ------------------------------------------------------------ corpus

    t = time.monotonic()
    sentences = planted.load_sentences(args.sentences)
    docs = planted.build_corpus(sentences, args.docs, args.seed)
    if os.path.isdir(input_dir):
        shutil.rmtree(input_dir)
    planted.write_jsonl_shards(docs, input_dir, args.shards)
    with open(os.path.join(workdir, "truth.jsonl"), "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({k: d[k] for k in ("id", "cluster", "kind", "control_group")}) + "\n")
    input_bytes = sum(os.path.getsize(p) for p in glob.glob(os.path.join(input_dir, "*.jsonl")))
    kinds = Counter(d["kind"] for d in docs)
    print(f"corpus: {len(docs):,} docs ({input_bytes / 2**20:.1f} MiB JSONL in {args.shards} shards) from "
          f"{len(sentences):,} distinct sentences, seed {args.seed}, built in {time.monotonic() - t:.1f} s",
          flush=True)
    print("  " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])), flush=True)

    ids = [d["id"] for d in docs]
    truth = [d["cluster"] for d in docs]

    # ------------------------------------------------------------ measuring

    def busy_cpu_seconds():
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def wait_for_quiet(max_wait=300, threshold=25.0, quiet_seconds=3):
        """Wait (up to max_wait s) until system CPU use stays under threshold % for a few seconds:
        other jobs on this machine (e.g. someone's test run) would skew the timings."""
        t0, quiet = time.monotonic(), 0
        while time.monotonic() - t0 < max_wait and quiet < quiet_seconds:
            quiet = quiet + 1 if psutil.cpu_percent(interval=1.0) < threshold else 0
        return time.monotonic() - t0

    def sample_tree(proc, cpu_seen):
        """Summed RSS of proc and all its descendants; records each one's CPU seconds."""
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

    def run_measured(cmd, log_prefix):
        """Run cmd; returns a dict with exit code, wall seconds, peak tree RSS (bytes), CPU
        seconds of the tree and of everything else on the machine meanwhile, stdout text."""
        waited = wait_for_quiet()
        with open(log_prefix + ".stdout", "w") as out, open(log_prefix + ".stderr", "w") as err:
            busy0 = busy_cpu_seconds()
            t0 = time.monotonic()
            proc = psutil.Popen(cmd, stdout=out, stderr=err)
            peak, cpu_seen = 0, {}
            while True:
                peak = max(peak, sample_tree(proc, cpu_seen))
                try:
                    code = proc.wait(timeout=0.2)
                    break
                except psutil.TimeoutExpired:
                    pass
            seconds = time.monotonic() - t0
            busy = busy_cpu_seconds() - busy0
        ours = sum(cpu_seen.values())
        with open(log_prefix + ".stdout") as f:
            stdout = f.read()
        return {"exit_code": code, "seconds": seconds, "peak_rss": peak, "cpu_seconds": ours,
                "other_cpu_cores": max(0.0, busy - ours) / seconds, "waited_for_quiet": waited,
                "stdout": stdout}

    PROJECT = os.path.dirname(HERE)

    def code_state():
        """git HEAD, changed files and a hash of the package sources, to pin what was measured."""
        import hashlib

        h = hashlib.sha256()
        for sub in ("transforms", "pipelines", "schemas"):
            for path in sorted(glob.glob(os.path.join(PROJECT, sub, "**", "*.py"), recursive=True)):
                h.update(path.encode())
                with open(path, "rb") as f:
                    h.update(f.read())
        try:
            head = subprocess.run(["git", "-C", PROJECT, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", PROJECT, "status", "--porcelain", "--", "transforms",
                                    "pipelines", "schemas", "setup.py"],
                                   capture_output=True, text=True).stdout.split("\n")
            dirty = sorted(x[3:] for x in dirty if x.strip())
        except OSError:
            head, dirty = None, []
        return {"head": head, "dirty": dirty, "sources_sha256": h.hexdigest()[:16]}

    def stderr_tail(log_prefix, lines=25):
        with open(log_prefix + ".stderr", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    # ------------------------------------------------------------ scoring

    def score(pred_by_id):
        """Quality figures for one run; pred_by_id maps doc id -> predicted cluster label."""
        missing = [i for i in ids if i not in pred_by_id]
        pred = [pred_by_id.get(i, ("missing", i)) for i in ids]
        p, r, f1 = planted.pairwise_f1(truth, pred)
        tp, truth_pairs, pred_pairs = planted.pair_counts(truth, pred)
        pred_of = dict(zip(ids, pred))
        per_kind = defaultdict(lambda: [0, 0])  # kind -> [found with base, total]
        for d in docs:
            if d["kind"] in ("base", "control"):
                continue
            per_kind[d["kind"]][1] += 1
            per_kind[d["kind"]][0] += pred_of[d["id"]] == pred_of[d["cluster"]]
        # Predicted clusters mixing documents of several truth clusters.
        members = defaultdict(set)
        for t_label, p_label in zip(truth, pred):
            members[p_label].add(t_label)
        mixed = [m for m in members.values() if len(m) > 1]
        # Negative controls: pairs of one group placed together; controls clustered with anything.
        pred_size = Counter(pred)
        groups = defaultdict(list)
        for d in docs:
            if d["kind"] == "control":
                groups[d["control_group"]].append(pred_of[d["id"]])
        control_merged_pairs = {g: sum(n * (n - 1) // 2 for n in Counter(v).values()) for g, v in groups.items()}
        controls_clustered = sum(pred_size[pred_of[d["id"]]] > 1 for d in docs if d["kind"] == "control")
        return {
            "precision": p, "recall": r, "f1": f1,
            "true_pairs_found": tp, "truth_pairs": truth_pairs, "predicted_pairs": pred_pairs,
            "false_pairs": pred_pairs - tp,
            "predicted_clusters_mixing_truth": len(mixed),
            "per_kind_recall": {k: (v[0] / v[1], v[0], v[1]) for k, v in sorted(per_kind.items())},
            "control_groups_merged": sum(1 for v in control_merged_pairs.values() if v),
            "control_groups": len(groups),
            "control_merged_pairs": sum(control_merged_pairs.values()),
            "control_docs_clustered": controls_clustered,
            "control_docs": sum(len(v) for v in groups.values()),
            "missing_docs": len(missing),
        }

    # ------------------------------------------------------------ systems

    exe_dir = os.path.dirname(sys.executable)
    corpus_audit = os.path.join(exe_dir, "corpus-audit")
    if not os.path.exists(corpus_audit):
        corpus_audit = shutil.which("corpus-audit") or corpus_audit

    def run_ours(workers, full=False):
        """Deduplication alone (--no-detectors), comparable with datatrove; or the full audit."""
        out = os.path.join(workdir, f"corpus-audit-{'full-' if full else ''}w{workers}")
        cmd = [corpus_audit, "audit", "--input", f"{input_dir}/*.jsonl", "--output", out,
               "--overwrite", "--quiet"] + ([] if full else ["--no-detectors"])
        if workers > 1:
            cmd += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
        print(f"running: {' '.join(cmd)}", flush=True)
        before = code_state()
        m = run_measured(cmd, out + ".log")
        after = code_state()
        code, seconds = m["exit_code"], m["seconds"]
        row = {"system": "full audit" if full else "corpus-audit", "workers": workers, "command": cmd,
               "code": before, **m}
        if before != after:
            row["code_after"] = after
            print(f"  WARNING: the package sources changed during this run ({before} -> {after})", flush=True)
        if code != 0:
            row["error"] = stderr_tail(out + ".log")
            print(f"  FAILED (exit {code}) after {seconds:.1f} s; stderr tail:\n{row['error']}", flush=True)
            return row
        pred = {}
        for path in sorted(glob.glob(os.path.join(out, "documents-*.parquet"))):
            tab = pq.read_table(path, columns=["doc_id", "cluster_id"])
            pred.update(zip(tab.column("doc_id").to_pylist(), tab.column("cluster_id").to_pylist()))
        with open(os.path.join(out, "audit.json")) as f:
            row["audit"] = json.load(f)
        row.update(score(pred))
        print(f"  {seconds:.1f} s, F1 {row['f1']:.4f} (waited {m['waited_for_quiet']:.0f} s for a quiet "
              f"machine; other processes used {m['other_cpu_cores']:.2f} cores meanwhile)", flush=True)
        return row

    def run_datatrove(workers):
        w = os.path.join(workdir, f"datatrove-w{workers}")
        cmd = [sys.executable, os.path.join(HERE, "datatrove_minhash.py"), "--input", input_dir,
               "--workdir", w, "--workers", str(workers)]
        print(f"running: {' '.join(cmd)}", flush=True)
        m = run_measured(cmd, w + ".log")
        code, seconds, stdout = m["exit_code"], m["seconds"], m["stdout"]
        row = {"system": "datatrove", "workers": workers, "command": cmd, **m}
        if code != 0:
            row["error"] = stderr_tail(w + ".log")
            print(f"  FAILED (exit {code}) after {seconds:.1f} s; stderr tail:\n{row['error']}", flush=True)
            return row
        for line in stdout.splitlines():
            if line.startswith("STAGE_SECONDS "):
                row["stages"] = {k: float(v) for k, v in (x.split("=") for x in line.split()[1:])}
        pred = {}
        for sub in ("output", "removed"):
            for path in sorted(glob.glob(os.path.join(w, sub, "*.parquet"))):
                tab = pq.read_table(path, columns=["id", "metadata"])
                for doc_id, meta in zip(tab.column("id").to_pylist(), tab.column("metadata").to_pylist()):
                    cid = (meta or {}).get("minhash_cluster_id", -1)
                    # Documents in no cluster (-1, or a rank with no .remove file) are their own cluster.
                    pred[doc_id] = ("single", doc_id) if cid is None or cid < 0 else ("cluster", cid)
        row.update(score(pred))
        print(f"  {seconds:.1f} s, F1 {row['f1']:.4f} (waited {m['waited_for_quiet']:.0f} s for a quiet "
              f"machine; other processes used {m['other_cpu_cores']:.2f} cores meanwhile)", flush=True)
        return row

    bench_start = time.monotonic()
    rows = [run_ours(1), run_ours(2)]
    if not args.skip_full_audit:
        rows += [run_ours(1, full=True), run_ours(2, full=True)]
    if not args.skip_datatrove:
        rows += [run_datatrove(1), run_datatrove(2)]
    bench_seconds = time.monotonic() - bench_start

    # ------------------------------------------------------------ report

    n = len(docs)
    for r in rows:
        r["docs_per_s"] = n / r["seconds"] if r.get("exit_code") == 0 else None
    dt_rate = {r["workers"]: r["docs_per_s"] for r in rows if r["system"] == "datatrove" and r["docs_per_s"]}
    ok = [r for r in rows if r.get("exit_code") == 0]

    print()
    print(f"## {n:,} documents, {args.shards} shards, seed {args.seed}; "
          f"{sum(kinds[k] for k in kinds if k not in ('base', 'control')):,} planted near-duplicates, "
          f"{kinds['control']:,} negative controls; {os.cpu_count()} CPUs")
    head = (f"{'system':<13} {'workers':>7} {'seconds':>8} {'docs/s':>8} {'peak RSS MB':>11} "
            f"{'precision':>9} {'recall':>7} {'F1':>7} {'ours/datatrove docs/s':>21} {'other CPU':>9}")
    print(head)
    print("-" * len(head))
    for r in sorted(rows, key=lambda r: (r["workers"], r["system"] != "corpus-audit")):
        if r.get("exit_code") != 0:
            print(f"{r['system']:<13} {r['workers']:>7} {r['seconds']:>8.1f}  FAILED (exit {r['exit_code']})")
            continue
        ratio = ""
        if r["system"] == "corpus-audit" and dt_rate.get(r["workers"]):
            ratio = f"{r['docs_per_s'] / dt_rate[r['workers']]:.2f}x"
        print(f"{r['system']:<13} {r['workers']:>7} {r['seconds']:>8.1f} {r['docs_per_s']:>8.0f} "
              f"{r['peak_rss'] / 2**20:>11.0f} {r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>7.4f} "
              f"{ratio:>21} {r['other_cpu_cores']:>9.2f}")

    print("(other CPU: average cores used by processes outside the measured tree during the run)")
    for r in ok:
        if r["system"] == "corpus-audit":
            c = r["code"]
            print(f"corpus-audit w{r['workers']} measured at git {c['head']}"
                  + (f" + uncommitted changes in {', '.join(c['dirty'])}" if c["dirty"] else "")
                  + f" (sources sha256 {c['sources_sha256']})"
                  + ("  ** sources changed during the run **" if "code_after" in r else ""))
    if ok:
        labels = [f"{'ours' if r['system'] == 'corpus-audit' else 'dt'}-w{r['workers']}" for r in ok]
        all_kinds = sorted({k for r in ok for k in r["per_kind_recall"]},
                           key=lambda k: (k.count("+"), k))
        print()
        print("recall per planted kind (share of copies placed in the cluster of their base document)")
        print(f"{'kind':<28} {'n':>6} " + " ".join(f"{x:>9}" for x in labels))
        for k in all_kinds:
            total = next(r["per_kind_recall"][k][2] for r in ok if k in r["per_kind_recall"])
            print(f"{k:<28} {total:>6} " + " ".join(
                f"{r['per_kind_recall'][k][0]:>9.4f}" if k in r["per_kind_recall"] else f"{'':>9}" for r in ok))
        print()
        print("errors")
        print(f"{'':<44}" + " ".join(f"{x:>9}" for x in labels))
        for key, name in (("false_pairs", "false pairs (predicted, not in truth)"),
                          ("predicted_clusters_mixing_truth", "predicted clusters mixing truth clusters"),
                          ("control_groups_merged", "negative-control groups merged"),
                          ("control_merged_pairs", "negative-control pairs merged"),
                          ("control_docs_clustered", "negative-control docs in any cluster"),
                          ("missing_docs", "documents missing from the output")):
            print(f"{name:<44}" + " ".join(f"{r[key]:>9,}" for r in ok))
        print(f"(truth pairs {ok[0]['truth_pairs']:,}; {ok[0]['control_groups']} negative-control groups "
              f"of {ok[0]['control_docs']:,} docs)")

        print()
        for r in ok:
            if r["system"] == "corpus-audit":
                a = r["audit"]
                print(f"audit.json w{r['workers']}: seconds {a['seconds']}, documents_per_second "
                      f"{a['documents_per_second']}, records_read {a['records_read']:,}, documents_written "
                      f"{a['documents_written']:,}, clusters {a['clusters']:,}, duplicates {a['duplicates']:,}, "
                      f"exact_dup_documents {a['exact_dup_documents']:,}, too_short {a['too_short_documents']:,}, "
                      f"hot_buckets {a['hot_buckets']}, dead_letters {a['dead_letters']}")
            elif r.get("stages"):
                print(f"datatrove w{r['workers']} stage seconds: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()))
    truth_dups = sum(kinds[k] for k in kinds if k not in ("base", "control"))
    print(f"(truth: {len(set(truth)):,} clusters, {truth_dups:,} duplicates beyond one per cluster; "
          f"benchmark runs took {bench_seconds:.0f} s)")

    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump({"docs": n, "shards": args.shards, "seed": args.seed, "kinds": kinds, "rows": rows},
                  f, indent=2, default=str)
    sys.exit(0 if len(ok) == len(rows) else 1)
