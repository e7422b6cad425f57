"""Build tests/data/detect-sample.jsonl.gz: the detection rows the test suite reads.

The tests must run from a bare clone, so the rows they need live in the repository. Only the
MIT-licensed sources of the development set are sampled (baoguangsheng/fast-detect-gpt and
Weixin-Liang/ChatGPT-Detector-Bias); M4 (licence unclear) and the extra file (training and
evaluation only) are never copied. Selection is by sha1 of the group, so a rebuild from the same
input gives the same bytes.

    python scripts/make_test_data.py --data ../shared/data/detect/train.jsonl.gz
"""
import argparse
import gzip
import hashlib
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "detect-sample.jsonl.gz")
MIT_SOURCES = ("baoguangsheng/fast-detect-gpt", "Weixin-Liang/ChatGPT-Detector-Bias")
# Shares of fast-detect-gpt groups kept whole: groups with API-model (chat, davinci) texts, and
# groups with base-model texts only.
API_SHARE, BASE_MODEL_SHARE = 0.5, 0.15


def _rank(group):
    return int(hashlib.sha1(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def select(rows):
    rows = [r for r in rows if r["source"] in MIT_SOURCES]
    api_groups = {r["group"] for r in rows if r["source"] == MIT_SOURCES[0]
                  and r["generator"] in ("gpt-3.5-turbo", "gpt-4", "davinci")}
    keep = []
    for r in rows:
        share = API_SHARE if r["group"] in api_groups else BASE_MODEL_SHARE
        if r["source"] == MIT_SOURCES[1] or _rank(r["group"]) < share:
            keep.append(r)
    return keep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the development set's train.jsonl.gz")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    with gzip.open(args.data, "rt", encoding="utf-8") as f:
        rows = select([json.loads(line) for line in f])
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    print(f"{len(rows)} rows -> {args.out} ({os.path.getsize(args.out):,} bytes)")


if __name__ == "__main__":
    main()
