"""Hostile documents: does one pathological page cost bounded time and memory?

Each case is one shard holding one hostile document (or, for `tiny-records-100k`, many tiny
ones); each is audited alone by the real command in its own process, and the script prints
the wall time, the peak RSS of that process and what became of the document:

    python benchmarks/hostile_docs.py [--cases a,b] [--work DIR] [--extra '--no-detectors']

Cases (sizes are bytes of the record as stored):
- repeated-word-1mb: 1 MB of one word repeated (JSONL), a degenerate text for hashing, the
  detectors and MinHash (one distinct shingle);
- tiny-lines-100k: one document of 100,000 lines of one or two characters (JSONL);
- line-50mb-jsonl: a single 50 MB JSON line; with the default --max-doc-bytes (10 MB) it must
  become a `too_large` dead letter read in bounded memory;
- response-50mb-warc: a 50 MB HTTP response in a WARC: `too_large` from its Content-Length;
- nested-html-100k: a WARC response of 100,000 nested <div>s around real text;
- html-10mb: a 9.9 MB HTML page of real paragraphs (just under the 10 MB limit);
- tiny-records-100k: 100,000 one-word JSONL records (per-record overhead, not one document).
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fuzz_corpus  # noqa: E402

MB = 1_000_000
# Measures the audit's own process: a fresh wrapper per case, so RUSAGE_CHILDREN is that case's.
_WRAPPER = ("import resource, subprocess, sys, json; p = subprocess.run(sys.argv[1:], "
            "capture_output=True, text=True); print(json.dumps({'rc': p.returncode, "
            "'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
            "'stderr': p.stderr[-3000:]}))")


def _texts(n=200):
    return fuzz_corpus.load_texts(n=n, max_words=400)


def _warc_response(path, body, uri, content_type="text/html; charset=utf-8"):
    import random

    rng = random.Random(0)
    record = fuzz_corpus.warc_record(rng, "response", fuzz_corpus.http_block(body, content_type), uri)
    with open(path, "wb") as f:
        f.write(fuzz_corpus.warcinfo(rng) + record)


def _jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def build_cases(work, names=None):
    """{case name: shard path}; every shard is written under `work`."""
    os.makedirs(work, exist_ok=True)
    texts = _texts()
    prose = " ".join(texts)
    builders = {
        "repeated-word-1mb": lambda p: _jsonl(p, [{"id": "repeated", "text": "word " * (MB // 5)}]),
        "tiny-lines-100k": lambda p: _jsonl(p, [{"id": "tiny-lines", "text": "\n".join(
            ("a", "bc", "d.", "e f")[i % 4] for i in range(100_000))}]),
        "line-50mb-jsonl": lambda p: _jsonl(p, [
            {"id": "giant", "text": (prose + " ") * (50 * MB // (len(prose) + 1) + 1)},
            {"id": "after-giant", "text": texts[0]}]),
        "response-50mb-warc": lambda p: _warc_response(
            p, fuzz_corpus.html_page("giant", [prose] * (50 * MB // len(prose) + 1)).encode(),
            "https://hostile.example/giant"),
        "nested-html-100k": lambda p: _warc_response(
            p, ("<html><body>" + "<div>" * 100_000 + "<p>" + texts[1] + "</p>" + "</div>" * 100_000
                + "</body></html>").encode(), "https://hostile.example/nested"),
        "html-10mb": lambda p: _warc_response(
            p, _page_of_size(texts, int(9.9 * MB)), "https://hostile.example/big"),
        "tiny-records-100k": lambda p: _jsonl(p, ({"id": f"t{i}", "text": f"w{i % 97}"}
                                                  for i in range(100_000))),
    }
    ext = {"response-50mb-warc": ".warc", "nested-html-100k": ".warc.gz", "html-10mb": ".warc"}
    paths = {}
    for name in names or builders:
        path = os.path.join(work, name + ext.get(name, ".jsonl"))
        if not os.path.exists(path):
            builders[name](path)
            if path.endswith(".gz"):
                data = open(path, "rb").read()
                with open(path, "wb") as f:
                    f.write(gzip.compress(data, mtime=0))
        paths[name] = path
    return paths


def _page_of_size(texts, size):
    """An HTML page of real paragraphs with navigation and a footer, `size` bytes or just under."""
    head = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>big</title></head><body>"
            "<nav><a href='/'>Home</a></nav><main>")
    tail = "</main><footer>(c) example</footer></body></html>"
    parts, total, i = [head], len(head) + len(tail), 0
    while True:
        para = f"<p>{texts[i % len(texts)]}</p>\n"
        if total + len(para.encode()) > size:
            break
        parts.append(para)
        total += len(para.encode())
        i += 1
    parts.append(tail)
    return "".join(parts).encode()


def audit_command(inputs, output, extra=()):
    args = [sys.executable, "-m", "corpus_audit.pipelines.cli", "audit"]
    for path in inputs:
        args += ["--input", path]
    return args + ["--output", output, "--run-id", "r", "--quiet", *extra]


def outcomes(run_dir):
    """{shard file name: [(kind, detail)]}: 'document' with its characters, or the dead
    letter's reason and detail."""
    import glob

    import pyarrow.parquet as pq

    found = {}
    for f in sorted(glob.glob(os.path.join(run_dir, "documents-*.parquet"))):
        for r in pq.read_table(f, columns=["source_shard", "n_chars", "n_words"]).to_pylist():
            found.setdefault(os.path.basename(r["source_shard"]), []).append(
                ("document", f"{r['n_chars']:,} chars, {r['n_words']:,} words"))
    for f in glob.glob(os.path.join(run_dir, "dead_letters-*.parquet")):
        for r in pq.read_table(f, columns=["source_shard", "reason", "detail"]).to_pylist():
            found.setdefault(os.path.basename(r["source_shard"]), []).append((r["reason"], r["detail"]))
    return found


def run_case(path, work, extra=()):
    """(seconds, peak RSS in MB, outcome list) of one audit of `path` alone."""
    out = tempfile.mkdtemp(dir=work, prefix="out-")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *audit_command([path], out, extra)],
                          capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["rc"] != 0:
        return seconds, info["maxrss_kb"] / 1024, [("crash", info["stderr"][-500:])]
    return seconds, info["maxrss_kb"] / 1024, outcomes(os.path.join(out, "r")).get(os.path.basename(path), [])


def summarise(outcome):
    if not outcome:
        return "nothing"
    kinds = {}
    for kind, detail in outcome:
        kinds.setdefault(kind, []).append(detail)
    parts = []
    for kind, details in kinds.items():
        if len(details) == 1:
            parts.append(f"{kind} ({details[0][:70]})")
        else:
            parts.append(f"{len(details):,} × {kind}")
    return "; ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--work", default=None, help="directory for the shards and outputs")
    ap.add_argument("--extra", default="", help="more audit options, e.g. '--no-detectors'")
    args = ap.parse_args(argv)
    work = args.work or tempfile.mkdtemp(prefix="hostile-")
    names = args.cases.split(",") if args.cases else None
    paths = build_cases(work, names)
    print(f"{'case':22s} {'input MB':>9s} {'seconds':>8s} {'peak RSS MB':>12s}  outcome")
    for name, path in paths.items():
        seconds, rss, outcome = run_case(path, work, args.extra.split())
        print(f"{name:22s} {os.path.getsize(path) / MB:9.1f} {seconds:8.1f} {rss:12.0f}  {summarise(outcome)}",
              flush=True)


if __name__ == "__main__":
    main()
