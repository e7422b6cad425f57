"""Rebuild pipelines/sample_crawl/ (the demo's bundled crawl) from ../shared/data.

Only MIT-licensed sources of the detection set are used (fast-detect-gpt and
ChatGPT-Detector-Bias); the real WARC files are Apache-2.0 (warcio, Common Crawl whirlwind).
Deterministic: the same data gives byte-identical shards.
"""
import gzip
import hashlib
import html
import json
import os
import random
import shutil
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "pipelines", "sample_crawl")
REAL_WARCS = ["whirlwind.warc.gz", "whirlwind.warc.wet.gz", "example.warc.gz",
              "example-iana.org-chunked.warc", "example-wget-bad-target-uri.warc.gz"]
SITES = ["news.example.org", "blog.example.net", "forum.example.com", "essays.example.edu",
         "wiki.example.org", "health.example.com"]
BOILERPLATE = ("Subscribe to our newsletter for the latest stories, offers and updates delivered "
               "straight to your inbox every week. We respect your privacy and you can unsubscribe "
               "at any time. Read our terms of service and cookie policy for more details.")


def pick_texts(rng, n):
    rows = [json.loads(line) for line in gzip.open(os.path.join(DATA, "detect", "train.jsonl.gz"), "rt")]
    rows = [r for r in rows if r["license"].startswith("MIT") and r["label"] in ("human", "machine")
            and 80 <= len(" ".join(r["text"].split()).split()) <= 600]
    seen, chosen = set(), []
    rng.shuffle(rows)
    for r in rows:  # one text per group: groups hold cut-to-length copies of one article
        if r["group"] not in seen:
            seen.add(r["group"])
            chosen.append(r)
        if len(chosen) == n:
            break
    return sorted(chosen, key=lambda r: r["id"])


def near_duplicate(rng, text, kind):
    words = " ".join(text.split()).split(" ")
    if kind == "repost":
        return " ".join(words)
    if kind == "boilerplate":
        return " ".join(words) + " " + BOILERPLATE
    if kind == "edits":
        for i in rng.sample(range(len(words)), max(1, len(words) // 40)):
            words[i] = rng.choice(["very", "quite", "really", "new", "old", "big"])
        return " ".join(words)
    return " ".join(words[: int(len(words) * 0.85)])  # truncated


def html_page(title, text, generator=None):
    gen = f'<meta name="generator" content="{html.escape(generator)}">' if generator else ""
    paras = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n") if p.strip())
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>{gen}"
            f"</head><body><nav><a href=\"/\">Home</a> <a href=\"/about\">About</a> "
            f"<a href=\"/contact\">Contact</a></nav><main><article><h1>{html.escape(title)}</h1>{paras}"
            f"</article></main><footer>Copyright example site. All rights reserved.</footer></body></html>")


def warc_record(url, date, body, record_id):
    http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n"
            f"WARC-Date: {date}\r\nWARC-Target-URI: {url}\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n")
    return gzip.compress(head.encode() + http + b"\r\n\r\n", mtime=0)


def main():
    rng = random.Random(20240518)
    texts = pick_texts(rng, 280)
    texts, unseen = texts[:240], texts[240:]
    docs = []  # (id, text, site, planted-from or None)
    for r in texts:
        docs.append((r["id"], r["text"], rng.choice(SITES), None))
    # Known model outputs: half of the crawl's machine texts, plus outputs the crawl lacks;
    # a few human pages get a passage pasted from a known output.
    machine = [r for r in texts if r["label"] == "machine"]
    known = sorted(rng.sample(machine, len(machine) // 2) + [r for r in unseen if r["label"] == "machine"],
                   key=lambda r: r["id"])
    humans = [r for r in texts if r["label"] == "human"]
    pasted = []
    for i, (host, src) in enumerate(zip(rng.sample(humans, 6), rng.sample(known, 6))):
        host_words, block = host["text"].split(), " ".join(src["text"].split())
        text = " ".join(host_words[: len(host_words) // 2]) + " " + block + " " + " ".join(
            host_words[len(host_words) // 2:])
        doc_id = f"{host['id'][:12]}-pasted-{i}"
        pasted.append((doc_id, src["id"]))
        docs.append((doc_id, text, rng.choice(SITES), None))
    for i, r in enumerate(rng.sample(texts, 40)):
        kind = ["repost", "boilerplate", "edits", "truncated"][i % 4]
        docs.append((f"{r['id'][:12]}-{kind}", near_duplicate(rng, r["text"], kind), rng.choice(SITES), r["id"]))
    rng.shuffle(docs)
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):  # everything but the hand-written README is generated here
        path = os.path.join(OUT, name)
        if name != "README.md":
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    half = len(docs) // 2
    with open(os.path.join(OUT, "sample-crawl-00000.warc.gz"), "wb") as f:
        for n, (doc_id, text, site, _) in enumerate(docs[:half]):
            date = f"2024-0{1 + n % 9}-{10 + n % 18:02d}T12:00:00Z"
            gen = "WordPress 6.4.2" if n % 7 == 0 else None
            body = html_page(f"Article {doc_id[:8]}", text, gen).encode("utf-8")
            rid = uuid.uuid5(uuid.NAMESPACE_URL, doc_id)
            f.write(warc_record(f"https://{site}/{doc_id}", date, body, rid))
    lines = [json.dumps({"id": d, "text": t, "url": f"https://{s}/{d}",
                         "crawl_date": f"2023-{1 + i % 12:02d}-15", "source": "sample"})
             for i, (d, t, s, _) in enumerate(docs[half:])]
    lines.insert(10, '{"id": "broken-line", "text": "this line was cut off')  # malformed JSON
    lines.insert(20, json.dumps({"id": "empty-doc", "text": "   "}))  # whitespace only
    with open(os.path.join(OUT, "sample-crawl-00001.jsonl.gz"), "wb") as f:
        f.write(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    for name in REAL_WARCS:
        shutil.copyfile(os.path.join(DATA, "warc", name), os.path.join(OUT, name))
    planted = sorted((d, src) for d, _, _, src in docs if src)
    with open(os.path.join(OUT, "planted.json"), "w") as f:
        json.dump({"near_duplicates": planted,
                   "pasted_outputs": sorted(pasted)}, f, indent=0)
    os.makedirs(os.path.join(OUT, "known_outputs"))
    lines = [json.dumps({"id": r["id"], "text": r["text"], "model": r["generator"]}) for r in known]
    with open(os.path.join(OUT, "known_outputs", "sample-model-outputs.jsonl.gz"), "wb") as f:
        f.write(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    print(f"{len(docs)} documents ({len(planted)} planted near-duplicates, {len(pasted)} pasted outputs), "
          f"{len(known)} known outputs in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
