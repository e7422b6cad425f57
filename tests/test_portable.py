"""The portable path: Beam's job API with SDK workers in separate processes, started by an
external worker pool as Flink and Spark on Kubernetes start them, must give the same bytes as
the default runner, and its failures must be bounded and one line long."""
import glob
import json
import os
import subprocess
import time

import pytest

from conftest import CLI, run_cli, run_path

from corpus_audit.pipelines.cli import SAMPLE_KNOWN_OUTPUTS

JOB_SECONDS = 120  # each command; measured ~10 s. A worker that never starts is a hang, not a pass.


def _log_tail(path, n=4000):
    with open(path, errors="replace") as f:
        return f.read()[-n:]


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    """`corpus-audit worker-pool` on a free port, started from another directory with this
    interpreter's folder off PATH: workers must still find the package."""
    where = tmp_path_factory.mktemp("pool")
    log = where / "pool.log"
    env = dict(os.environ, PATH="/usr/bin:/bin")
    with open(log, "w") as err:
        proc = subprocess.Popen(CLI + ["worker-pool", "--port", "0"], stdout=subprocess.PIPE, stderr=err,
                                text=True, cwd=where, env=env)
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline and "listening on" not in line:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
    if "listening on" not in line:
        proc.kill()
        pytest.fail(f"the worker pool did not start:\n{_log_tail(log)}")
    address = line.split("listening on ")[1].split(";")[0]
    yield address, log
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the worker pool did not stop on SIGTERM:\n{_log_tail(log)}")


def _portable(pool, *args):
    address, log = pool
    cmd = CLI + [str(a) for a in args] + ["--runner=PortableRunner", "--job_endpoint=embed",
                                          "--environment_type=EXTERNAL", f"--environment_config={address}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JOB_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(map(str, args))} did not finish in {JOB_SECONDS} s on the portable runner; "
                    f"worker pool log:\n{_log_tail(log)}")
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\nworker pool log:\n{_log_tail(log)}"
    return proc


def _files(folder, pattern):
    return {os.path.basename(f): open(f, "rb").read() for f in sorted(glob.glob(os.path.join(folder, pattern)))}


def _part_bytes(index):
    """An index's parts in order; their names carry the build time."""
    return list(_files(index, "part-*.parquet").values())


def test_audit_filter_and_index_build_give_the_default_runners_bytes(worker_pool, tmp_path):
    local, portable = tmp_path / "local", tmp_path / "portable"
    for root, run in ((local, run_cli), (portable, lambda *a: _portable(worker_pool, *a))):
        # The demo audit builds its known-output index in a pipeline of its own first.
        run("demo", "--output", root / "audit", "--run-id", "r1", "--quiet")
        run("filter", "--audit", root / "audit" / "r1", "--output", root / "shards", "--shard-size", "50",
            "--drop-known-matches", "--quiet")
        run("index", "build", "--input", SAMPLE_KNOWN_OUTPUTS, "--index", root / "index", "--quiet")

    a, b = run_path(local / "audit"), run_path(portable / "audit")
    docs = _files(a, "*.parquet")
    assert any(n.startswith("documents-") for n in docs) and any(n.startswith("dead_letters-") for n in docs)
    assert _files(b, "*.parquet") == docs
    assert _part_bytes(os.path.join(a, "known_outputs_index")) == _part_bytes(os.path.join(b, "known_outputs_index"))
    audits = [json.loads(open(os.path.join(d, "audit.json")).read()) for d in (a, b)]
    assert audits[0]["shuffles"] == audits[1]["shuffles"] and audits[0]["shuffles"]["checked"]
    assert audits[0]["documents_written"] == audits[1]["documents_written"] > 0

    shards = _files(local / "shards", "*.parquet")
    assert len(shards) > 1 and _files(portable / "shards", "*.parquet") == shards
    manifests = [json.loads((r / "shards" / "manifest.json").read_text()) for r in (local, portable)]
    assert manifests[0]["shards"] == manifests[1]["shards"] and manifests[0]["counts"] == manifests[1]["counts"]

    parts = _part_bytes(local / "index")
    assert parts and _part_bytes(portable / "index") == parts


@pytest.mark.parametrize("option, says", [
    ("--environment_config=localhost:1", "no worker pool answers at localhost:1"),
    ("--job_endpoint=localhost:1", "no job server answers at localhost:1"),
])
def test_an_endpoint_that_does_not_answer_is_a_one_line_error(tmp_path, option, says):
    args = ["--runner=PortableRunner", "--environment_type=EXTERNAL", "--environment_config=localhost:1",
            "--job_endpoint=embed"]
    args = [a for a in args if a.split("=")[0] != option.split("=")[0]] + [option]
    started = time.monotonic()
    proc = run_cli("demo", "--output", tmp_path / "out", "--quiet", *args, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and says in proc.stderr, proc.stderr
    assert time.monotonic() - started < 60
    assert not os.path.exists(tmp_path / "out")  # nothing was touched

