"""Beam's portable path: a worker pool for `--environment_type=EXTERNAL`, and endpoint checks.

Flink, Spark and the embedded job server hand Python work to SDK workers that an external
pool starts. Beam's own pool (`worker_pool_main`) starts each worker as a bare `python` from
PATH, so a pool started from a virtual environment that is not first on PATH starts workers
without apache_beam, and the job waits for them for ever. `serve` puts this interpreter first
on PATH, so workers always run the interpreter (and packages) of the pool that starts them.
"""
import os
import signal
import socket
import sys
import tempfile
import threading

HELP = "serve a Beam worker pool for --environment_type=EXTERNAL, with this interpreter"

CONNECT_SECONDS = 5.0


class EndpointError(ValueError):
    """A runner endpoint that does not answer: a one-line message, exit code 2."""


def add_arguments(p):
    p.add_argument("--port", type=int, default=50000,
                   help="port to listen on (0 picks a free one; the address is printed)")


def _interpreter_first_on_path():
    """A folder whose `python` is this interpreter, put first on PATH for the pool's workers.
    Their stdout goes to stderr: the pool pipes it and never reads it, so a worker that
    printed 64 KB would block."""
    folder = tempfile.mkdtemp(prefix="corpus-audit-worker-python-")
    shim = os.path.join(folder, "python")
    with open(shim, "w") as f:
        f.write(f"#!/bin/sh\nexec '{sys.executable}' \"$@\" 1>&2\n")
    os.chmod(shim, 0o755)
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
    return folder


def serve(port, ready=None):
    """Serve until SIGTERM or SIGINT. `ready(address)` is called once the pool listens."""
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer

    from corpus_audit.pipelines.local_runner import ARENA_MAX, fix_data_stream_flush_race

    fix_data_stream_flush_race()
    os.environ.setdefault("MALLOC_ARENA_MAX", str(ARENA_MAX))  # as for the local runner's workers
    folder = _interpreter_first_on_path()
    address, server = BeamFnExternalWorkerPoolServicer.start(use_process=True, port=port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    (ready or print)(address)
    try:
        stop.wait()
    finally:
        server.stop(grace=None)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def run(args, beam_args):
    def ready(address):
        print(f"worker pool listening on {address}; workers run {sys.executable}. Use "
              f"--runner=PortableRunner --environment_type=EXTERNAL --environment_config={address} "
              "(and --job_endpoint=embed or a job server's address).", flush=True)

    serve(args.port, ready)
    return 0


def _reachable(address):
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=CONNECT_SECONDS):
            return True
    except (OSError, ValueError):
        return False


def check_endpoints(options):
    """Fail fast, in one line, on a job server or worker pool that does not answer, instead of
    a gRPC traceback after the runner's own time-out (or a job that waits for ever)."""
    from apache_beam.options.pipeline_options import PortableOptions

    portable = options.view_as(PortableOptions)
    job = portable.job_endpoint
    if job and job != "embed" and not _reachable(job):
        raise EndpointError(f"no job server answers at {job} (--job_endpoint)")
    if (portable.environment_type or "").upper() == "EXTERNAL":
        named = dict(o.split("=", 1) for o in (portable.environment_options or []) if "=" in o)
        pool = portable.environment_config or named.get("external_service_address")
        if not pool:
            raise EndpointError("--environment_type=EXTERNAL needs --environment_config=HOST:PORT of a worker "
                                "pool (start one with `corpus-audit worker-pool --port PORT`)")
        if not _reachable(pool):
            raise EndpointError(f"no worker pool answers at {pool} (--environment_config); start one with "
                                f"`corpus-audit worker-pool --port {pool.rpartition(':')[2]}`")
