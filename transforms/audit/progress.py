"""Progress of the shard pass that a person can read: shards read of all the run's shards,
documents so far, the rate, and the time left.

Shards are spread over workers, so no worker knows how far the run is. On the local runner
every worker is on the driver's machine: each appends a line to a tally file as it reads
(a few bytes per batch of documents and per finished shard), and the driver sums the file and
prints one line for the run. On other runners each worker writes to its own log, so it prints
its own share, naming itself.
"""
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

EVERY_SECONDS = 5.0
POLL_SECONDS = 0.5
_PARTIAL, _DONE = "p", "d"


def format_duration(seconds):
    seconds = max(int(round(seconds)), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def run_line(shards, total, docs, seconds, pipeline_running=True):
    """One progress line for the whole run; the time left is extrapolated from the shards read.
    `pipeline_running` is False once the pipeline has finished, so nothing is left to do."""
    rate = docs / seconds if seconds > 0 else 0.0
    counts = f"{docs:,} documents, {rate:,.0f} docs/s"
    if shards < total:
        left = f", about {format_duration(seconds * (total - shards) / shards)} left to read" if shards else ""
        return f"[corpus-audit] shards {shards}/{total} read, {counts}{left}"
    return (f"[corpus-audit] shards {shards}/{total} read in {format_duration(seconds)}, {counts}"
            + ("; clustering and writing" if pipeline_running else ""))


def worker_line(worker, shards, total, docs, seconds):
    """One progress line of one worker, on runners where the driver cannot sum them."""
    rate = docs / seconds if seconds > 0 else 0.0
    return (f"[corpus-audit] worker {worker} read {shards} of the run's {total} shards, "
            f"{docs:,} documents, {rate:,.0f} docs/s")


def read_tally(path):
    """(shards finished, documents read) from a tally file. A shard read again (a retried
    bundle) counts once; a line still being written is left for the next read."""
    docs, done = {}, set()
    with open(path, encoding="ascii") as f:
        for line in f:
            parts = line.split()
            if not line.endswith("\n") or len(parts) != 3:
                continue
            kind, shard, n = parts[0], int(parts[1]), int(parts[2])
            docs[shard] = max(docs.get(shard, 0), n)
            if kind == _DONE:
                done.add(shard)
    return len(done), sum(docs.values())


class RunProgress:
    """Driver side, as a context manager around the pipeline: makes the tally file (`path`,
    handed to the workers) and prints the run's progress from it until the pipeline ends."""

    def __init__(self, total_shards, every_seconds=EVERY_SECONDS, poll_seconds=POLL_SECONDS):
        self.total = total_shards
        self.every = every_seconds
        self.poll = poll_seconds
        self.path = None
        self._printed = None  # shards of the last line printed
        self._stop = threading.Event()

    def __enter__(self):
        self._dir = tempfile.mkdtemp(prefix="corpus-audit-progress-")
        self.path = os.path.join(self._dir, "shards")
        open(self.path, "w").close()
        self.start = self.last = time.monotonic()
        self._thread = threading.Thread(target=self._watch, name="corpus-audit-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        self._thread.join()
        try:
            if exc_type is None:
                self.report(pipeline_running=False)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        return False

    def _watch(self):
        while not self._stop.wait(self.poll):
            self.report()

    def report(self, pipeline_running=True):
        """Print a line if the count changed and it is the first shard, the last one, or
        `every_seconds` since the last line."""
        shards, docs = read_tally(self.path)
        now = time.monotonic()
        if not shards or shards == self._printed:
            return
        if self._printed is None or shards >= self.total or now - self.last >= self.every:
            self._printed, self.last = shards, now
            print(run_line(shards, self.total, docs, now - self.start, pipeline_running), file=sys.stderr, flush=True)


class ShardTally:
    """Worker side: tells the driver what this worker has read (`tally_path` from RunProgress),
    or, without a tally file, prints this worker's own throttled line."""

    def __init__(self, total_shards, tally_path=None, every_seconds=EVERY_SECONDS):
        self.total = total_shards
        self.path = tally_path
        self.every = every_seconds
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.start = self.last = time.monotonic()
        self.shards = self.docs = 0

    def documents_read(self, shard_index, docs_in_shard, new_docs):
        """`docs_in_shard` documents of the shard are read so far, `new_docs` of them since the last call."""
        self.docs += new_docs
        if self.path:
            self._append(_PARTIAL, shard_index, docs_in_shard)
        else:
            self._print_own()

    def shard_done(self, shard_index, docs_in_shard):
        self.shards += 1
        if self.path:
            self._append(_DONE, shard_index, docs_in_shard)
        else:
            self._print_own(shard_finished=True)

    def _append(self, kind, shard_index, docs):
        # One small O_APPEND write per line, so lines of different workers never interleave.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError:  # not on the driver's machine after all: report this worker's own share
            self.path = None
            return self._print_own(shard_finished=kind == _DONE)
        try:
            os.write(fd, f"{kind} {shard_index} {docs}\n".encode("ascii"))
        finally:
            os.close(fd)

    def _print_own(self, shard_finished=False):
        now = time.monotonic()
        if (shard_finished and self.shards == 1) or now - self.last >= self.every:
            self.last = now
            print(worker_line(self.worker, self.shards, self.total, self.docs, now - self.start),
                  file=sys.stderr, flush=True)
