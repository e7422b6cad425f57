import glob
import gzip
import json
import os
import subprocess
import sys

import pyarrow.dataset as ds
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Everything the tests read is in the repository: the real WARC/WET files of the sample crawl,
# the WAT of the same capture, and a sample of the MIT-licensed detection rows
# (scripts/make_test_data.py; tests/data/README.md).
DATA = os.path.join(ROOT, "tests", "data")
WARC_DIR = os.path.join(ROOT, "pipelines", "sample_crawl")
WAT = os.path.join(DATA, "whirlwind.warc.wat.gz")
DETECT = os.path.join(DATA, "detect-sample.jsonl.gz")
CLI = [sys.executable, "-m", "corpus_audit.pipelines.cli"]


def run_cli(*args, check=True):
    proc = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"corpus-audit {' '.join(map(str, args))} failed:\n{proc.stderr[-4000:]}")
    return proc


def run_path(out_dir):
    """The newest complete run under an audit --output root (or the run directory itself)."""
    from corpus_audit.pipelines.runs import resolve_run

    return resolve_run(str(out_dir)).path


def read_documents(out_dir, columns=None):
    files = sorted(glob.glob(os.path.join(run_path(out_dir), "documents-*.parquet")))
    return ds.dataset(files, format="parquet").to_table(columns=columns)


def read_audit(out_dir):
    with open(os.path.join(run_path(out_dir), "audit.json")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def real_texts():
    """Distinct real texts (one per group, MIT-licensed sources), whitespace normalised."""
    seen, texts = set(), []
    with gzip.open(DETECT, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r["license"].startswith("MIT") and r["group"] not in seen:
                words = r["text"].split()
                if 150 <= len(words) <= 600:
                    seen.add(r["group"])
                    texts.append(" ".join(words))
    return texts


def write_jsonl(path, rows):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
