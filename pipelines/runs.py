"""Audit runs on disk: OUTPUT/<run-id>/ committed by a `_SUCCESS` marker.

A run's files are written first and the marker last, so a run killed half-way never looks
complete: readers (`filter`, `report`, `history`) only accept directories with the marker, and
the marker lists every file with its size so a damaged run is caught too.
"""
import datetime
import json
import re

from apache_beam.io.filesystems import FileSystems

from corpus_audit.schemas import SCHEMA_VERSION

SUCCESS = "_SUCCESS"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class AuditError(ValueError):
    """An audit directory that cannot be used: incomplete, damaged, or of another schema."""


def default_run_id(now=None):
    return (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d")


def check_run_id(run_id):
    if not RUN_ID.match(run_id or ""):
        raise ValueError(f"--run-id {run_id!r}: use letters, digits, '.', '_' or '-' (not first)")
    return run_id


def join(*parts):
    return FileSystems.join(*parts)


def dir_entries(path):
    """What to delete to remove directory `path`: itself on a local disk or HDFS, its objects
    on an object store (which has prefixes, not directories)."""
    if FileSystems.exists(path):
        return [path]
    return [m.path for r in FileSystems.match([join(path, "*")]) for m in r.metadata_list]


def remove_dir(path):
    entries = dir_entries(path)
    if entries:
        FileSystems.delete(entries)


def read_json(path):
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def write_json(path, obj):
    """Write then rename, so a reader never sees half a file."""
    tmp = path + ".tmp"
    with FileSystems.create(tmp) as f:
        f.write((json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def _files(run_dir):
    found = {}
    for r in FileSystems.match([join(run_dir, "*")]):
        for m in r.metadata_list:
            name = m.path[len(run_dir.rstrip("/")) + 1:]
            if name != SUCCESS and "/" not in name and not name.startswith("_"):
                found[name] = m.size_in_bytes
    return found


def commit(run_dir, run_id):
    """Write the marker: the run is complete from this moment."""
    write_json(join(run_dir, SUCCESS), {
        "run_id": run_id,
        "schema_version": SCHEMA_VERSION,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "files": dict(sorted(_files(run_dir).items())),
    })


def is_complete(run_dir):
    return FileSystems.exists(join(run_dir, SUCCESS))


class AuditRun:
    """A committed audit run, checked before anything reads it."""

    def __init__(self, path, marker, summary):
        self.path = path
        self.marker = marker
        self.summary = summary
        self.run_id = marker["run_id"]
        self.finished_at = marker["finished_at"]
        self.document_files = [join(path, n) for n in sorted(marker["files"]) if n.startswith("documents-")]
        self.dead_letter_files = [join(path, n) for n in sorted(marker["files"]) if n.startswith("dead_letters-")]

    def __repr__(self):
        return f"AuditRun({self.path!r})"


def open_run(path):
    """The run in `path`; AuditError says why it cannot be used."""
    path = path.rstrip("/")
    marker_path = join(path, SUCCESS)
    if not FileSystems.exists(marker_path):
        started = FileSystems.match([join(path, "documents-*.parquet")])[0].metadata_list
        hint = " (interrupted or still running: re-run the audit)" if started else ""
        raise AuditError(f"{path}: no {SUCCESS} marker, not a complete audit run{hint}")
    marker = read_json(marker_path)
    if str(marker.get("schema_version")) != SCHEMA_VERSION:
        raise AuditError(f"{path}: written with schema version {marker.get('schema_version')}, this "
                         f"corpus-audit reads version {SCHEMA_VERSION}; re-run the audit")
    sizes = _files(path)
    for name, size in marker["files"].items():
        if sizes.get(name) != size:
            raise AuditError(f"{path}: {name} is {'missing' if name not in sizes else 'changed'} since the "
                             "run was committed")
    summary = read_json(join(path, "audit.json"))
    if str(summary.get("schema_version")) != SCHEMA_VERSION:
        raise AuditError(f"{path}: audit.json has schema version {summary.get('schema_version')}, "
                         f"expected {SCHEMA_VERSION}")
    return AuditRun(path, marker, summary)


def list_runs(root):
    """(complete runs oldest first, ids of run directories without a marker)."""
    root = root.rstrip("/")
    dirs = set()
    for pattern in ("*/audit.json", "*/documents-*.parquet", f"*/{SUCCESS}", "*/_staging/*"):
        for r in FileSystems.match([join(root, pattern)]):
            for m in r.metadata_list:
                dirs.add(m.path[len(root) + 1:].split("/", 1)[0])
    complete, incomplete = [], []
    for name in sorted(dirs):
        if is_complete(join(root, name)):
            complete.append(open_run(join(root, name)))
        else:
            incomplete.append(name)
    complete.sort(key=lambda r: (r.finished_at, r.run_id))
    return complete, incomplete


def resolve_run(path):
    """A run directory, or the newest complete run under a root of runs."""
    path = path.rstrip("/")
    if is_complete(path):
        return open_run(path)
    complete, incomplete = list_runs(path)
    if complete:
        return complete[-1]
    if incomplete:
        raise AuditError(f"{path}: no complete audit run; incomplete: {', '.join(incomplete)}")
    return open_run(path)  # raises with the plain "no marker" message
