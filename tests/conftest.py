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

# Short texts written for the tests, one per language (no corpus text).
LANGUAGE_SAMPLES = {
    "en": "We spent the afternoon repairing the old fence behind the barn, which had fallen over during the "
          "storm last week. My brother carried the new posts from the truck while I dug the holes, and by the "
          "time the sun went down we had finished most of the work. Afterwards we sat on the porch with a cup "
          "of tea and talked about the harvest, the price of seed and the neighbours who had moved away.",
    "de": "Am frühen Morgen fuhren wir mit dem Zug durch das Tal, und der Nebel lag noch schwer über den "
          "Wiesen. Meine Großmutter hatte uns belegte Brote eingepackt, die wir am Fenster aßen, während "
          "draußen die Dörfer vorbeizogen. In der kleinen Stadt am Fluss stiegen wir aus und gingen zu Fuß "
          "zum Marktplatz, wo schon die ersten Händler ihre Stände aufbauten. Später besuchten wir das alte "
          "Rathaus, dessen Turm man über eine enge Treppe besteigen konnte.",
    "ru": "Вчера вечером мы долго гуляли по набережной и разговаривали о том, куда поехать летом. Сестра "
          "хотела увидеть горы, а я мечтал о тихом озере, где можно ловить рыбу и читать книги. В конце концов "
          "мы решили отправиться на север, потому что там прохладнее и меньше туристов. Мама обещала испечь "
          "пирог с яблоками в дорогу, а отец уже начал проверять палатку и спальные мешки.",
    "zh": "今天早上我和朋友一起去公园散步，天气非常好，阳光温暖。我们在湖边看到很多人在钓鱼，还有孩子们在草地上放风筝。"
          "中午我们去附近的小饭馆吃了面条和饺子，味道很好，价格也不贵。下午我们去图书馆看书，我借了两本关于历史的书。",
    "id": "Setiap pagi sebelum berangkat ke sekolah, adik saya membantu ibu menyiapkan sarapan di dapur. Mereka "
          "memasak nasi goreng dengan telur dan sayuran yang dibeli kemarin di pasar dekat rumah. Ayah biasanya "
          "membaca koran sambil minum kopi di teras, lalu mengantar kami dengan sepeda motor. Di sekolah, kami "
          "belajar matematika, bahasa Inggris, dan sejarah, lalu bermain sepak bola bersama teman-teman.",
}


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
