"""Progress lines of the shard pass: the run's shards read of all its shards, documents so far,
rate and time left, summed over workers by the driver on the local runner."""
import os
import re
import socket
import subprocess
import sys

from conftest import CLI

from corpus_audit.transforms.audit.progress import RunProgress, ShardTally, read_tally, run_line, worker_line

LINE = re.compile(r"^\[corpus-audit\] shards (\d+)/(\d+) read(?: in [^,]+)?, ([\d,]+) documents, [\d,]+ docs/s")


def test_a_run_line_says_shards_of_the_run_documents_rate_and_time_left():
    line = run_line(3, 12, 1500, 30.0)
    assert line == "[corpus-audit] shards 3/12 read, 1,500 documents, 50 docs/s, about 1 min 30 s left to read"
    assert run_line(12, 12, 6000, 125.0) == ("[corpus-audit] shards 12/12 read in 2 min 05 s, 6,000 documents, "
                                             "48 docs/s; clustering and writing")
    assert run_line(0, 12, 10, 2.0) == "[corpus-audit] shards 0/12 read, 10 documents, 5 docs/s"


def test_the_driver_sums_what_every_worker_has_read(tmp_path, capsys):
    with RunProgress(4, every_seconds=0, poll_seconds=3600) as progress:
        # Two workers in other processes, as with --direct_running_mode=multi_processing.
        code = ("import sys; from corpus_audit.transforms.audit.progress import ShardTally; "
                "t = ShardTally(4, sys.argv[1]); s = int(sys.argv[2]); "
                "t.documents_read(s, 1000, 1000); t.documents_read(s, 1500, 500); t.shard_done(s, 1500)")
        for shard in (0, 1):
            subprocess.run([sys.executable, "-c", code, progress.path, str(shard)], check=True)
        progress.report()
        mine = ShardTally(4, progress.path)
        mine.documents_read(2, 20, 20)
        mine.shard_done(2, 20)
        mine.shard_done(2, 20)  # a retried bundle reads the shard again; it counts once
        assert read_tally(progress.path) == (3, 3020)
        progress.report()
        path = progress.path
    assert not os.path.exists(path)
    lines = capsys.readouterr().err.splitlines()
    assert [LINE.match(x).groups() for x in lines] == [("2", "4", "3,000"), ("3", "4", "3,020")]
    assert "left to read" in lines[-1]


def test_without_a_tally_file_each_worker_names_itself(capsys):
    tally = ShardTally(7)
    tally.documents_read(5, 40, 40)
    tally.shard_done(5, 40)
    err = capsys.readouterr().err
    worker = f"{socket.gethostname()}:{os.getpid()}"
    assert err.startswith(f"[corpus-audit] worker {worker} read 1 of the run's 7 shards, 40 documents")
    assert worker_line("h:1", 2, 7, 90, 3.0) == "[corpus-audit] worker h:1 read 2 of the run's 7 shards, 90 documents, 30 docs/s"


def test_a_two_worker_run_prints_the_run_s_progress_not_each_worker_s(tmp_path):
    proc = subprocess.run(CLI + ["demo", "--output", str(tmp_path / "out"), "--run-id", "p",
                                 "--direct_running_mode=multi_processing", "--direct_num_workers=2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = [LINE.match(x).groups() for x in proc.stderr.splitlines() if LINE.match(x)]
    assert found, proc.stderr[-3000:]
    assert all(total == "7" for _, total, _ in found)  # the sample crawl's 7 shards, not one worker's
    assert [int(n) for n, _, _ in found] == sorted(int(n) for n, _, _ in found)
    assert found[-1] == ("7", "7", "291")  # every document of the run, read by both workers
    assert "done in this worker" not in proc.stderr
