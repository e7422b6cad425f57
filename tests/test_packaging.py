"""What Beam's --setup_file ships: the sdist of setup.py, installed on every worker. Build it,
build a wheel from it, and run a multi-process audit that imports only that wheel."""
import glob
import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

SOURCE_DIRS = {"transforms": "corpus_audit/transforms", "pipelines": "corpus_audit/pipelines",
               "schemas": "corpus_audit/schemas"}
DATA_DIRS = ("pipelines/sample_crawl", "transforms/detectors/default_model")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(dist)], cwd=ROOT, check=True,
                   capture_output=True)
    (sdist,) = glob.glob(str(dist / "corpus_audit-*.tar.gz")) or glob.glob(str(dist / "corpus-audit-*.tar.gz"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), sdist], check=True, capture_output=True, cwd=dist)
    (whl,) = glob.glob(str(dist / "corpus_audit-*.whl"))
    return whl


def test_the_wheel_built_from_the_sdist_holds_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for src, dst in SOURCE_DIRS.items():
        for path in glob.glob(os.path.join(ROOT, src, "**", "*"), recursive=True):
            rel = os.path.relpath(path, os.path.join(ROOT, src))
            needed = path.endswith(".py") or any(path.startswith(os.path.join(ROOT, d)) for d in DATA_DIRS)
            if os.path.isfile(path) and "__pycache__" not in rel and needed:
                assert f"{dst}/{rel}" in names, f"{src}/{rel} is not shipped to workers"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "corpus-audit = corpus_audit.pipelines.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_a_multi_process_audit_runs_from_the_wheel_alone(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    # The unpacked wheel comes first on the path of the driver and of every worker it starts.
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import corpus_audit.pipelines.cli as c; print(c.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))
    proc = subprocess.run([sys.executable, "-m", "corpus_audit.pipelines.cli", "demo", "--output", str(tmp_path / "out"),
                           "--run-id", "w", "--quiet", "--direct_running_mode=multi_processing",
                           "--direct_num_workers=2"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[corpus-audit] shards" not in proc.stderr and "[corpus-audit] worker" not in proc.stderr  # --quiet
    audit = json.loads((tmp_path / "out" / "w" / "audit.json").read_text())
    assert audit["documents_written"] == 291 and audit["synthetic"]["documents_scored"] == 289  # 2 pages not English
    assert str(site) in audit["inputs"][0]  # the sample crawl came from the wheel too
