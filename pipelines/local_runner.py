"""The runner an audit runs on when --runner is not given, and a fix for Beam's local runner.

Beam's FnApiRunner sends each bundle's input to its workers through a stream that a timer
thread flushes every second (`TimeBasedBufferingClosableOutputStream`). The flush copies the
buffer, hands it to the send queue and then clears the buffer, while `write` takes no lock:
bytes written while the send queue is full (inputs of hundreds of MB, as in a 1M-document
audit on 2 workers) are cleared without being sent. Whole elements vanish and nothing fails.
`write` here takes the flush lock, so a write waits for a flush in progress.

The local runner also keeps every shuffle in the driver process, in buffers of a few MB to a
few hundred MB that come and go. glibc raises its mmap threshold each time such a buffer is
freed, so later ones come from the heap and stay in the process after they are freed.
`return_freed_memory` pins the threshold in the driver. Not in the workers: their detectors
allocate many arrays of that size, and there the page faults cost more than the memory saved.
Driver and workers keep at most two malloc arenas (`MALLOC_ARENA_MAX`, inherited by the worker
processes): each thread of Beam's thread pools otherwise gets its own, which holds on to what it
freed (150 MB less at the peak of a 100k-document audit, no slower).
"""
import ctypes
import os
import sys

from apache_beam.options.pipeline_options import StandardOptions

_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 20
_M_ARENA_MAX = -8
ARENA_MAX = 2


def make_runner(options):
    """Beam's in-process FnApiRunner unless --runner names another: no Prism download.
    Raises portable.EndpointError when a job server or worker pool named by the options does
    not answer."""
    from corpus_audit.pipelines.portable import check_endpoints

    check_endpoints(options)
    fix_data_stream_flush_race()
    if options.view_as(StandardOptions).runner:
        return None
    return_freed_memory()
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def fix_data_stream_flush_race():
    from apache_beam.runners.worker import data_plane

    stream = getattr(data_plane, "TimeBasedBufferingClosableOutputStream", None)
    if stream is None or getattr(stream, "_corpus_audit_locked_write", False):
        return
    unlocked_write = stream.write

    def write(self, b, nested=False):  # the signature of coders.stream.OutputStream.write
        with self._flush_lock:
            unlocked_write(self, b, nested)

    stream.write = write
    stream._corpus_audit_locked_write = True


def return_freed_memory():
    if not sys.platform.startswith("linux"):
        return
    os.environ.setdefault("MALLOC_ARENA_MAX", str(ARENA_MAX))  # for the worker processes
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        libc.mallopt(_M_ARENA_MAX, ARENA_MAX)
    except (OSError, AttributeError):  # not glibc
        pass
