"""Hostile documents (benchmarks/hostile_docs.py) complete in one audit of the real command.

The subprocess timeout is only a hang guard (the whole audit takes ~15 s here; before the
nesting-depth guard, 100,000 nested <div>s alone took minutes), not a performance assertion.
"""
import os
import re
import subprocess
import sys

from conftest import ROOT, read_audit

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import hostile_docs  # noqa: E402

CASES = ["repeated-word-1mb", "tiny-lines-100k", "line-50mb-jsonl", "response-50mb-warc",
         "nested-html-100k", "html-10mb"]
HANG_GUARD_SECONDS = 180


def test_hostile_documents_finish_with_a_document_or_a_reason(tmp_path):
    paths = hostile_docs.build_cases(str(tmp_path / "in"), CASES)
    out = tmp_path / "out"
    proc = subprocess.run(hostile_docs.audit_command(list(paths.values()), str(out)),
                          capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    audit = read_audit(out)
    assert audit["records_read"] == audit["documents_written"] + audit["dead_letters"] == 7
    found = hostile_docs.outcomes(str(out / "r"))
    by_case = {name: found[os.path.basename(path)] for name, path in paths.items()}

    assert by_case["repeated-word-1mb"] == [("document", "999,999 chars, 200,000 words")]
    assert [kind for kind, _ in by_case["tiny-lines-100k"]] == ["document"]
    # The default --max-doc-bytes is 10 MB: the 50 MB line is skipped without being held,
    # and the record after it is still read.
    line = sorted(by_case["line-50mb-jsonl"])
    assert [kind for kind, _ in line] == ["document", "too_large"]
    assert "10,000,000-byte limit" in line[1][1]
    (response,) = by_case["response-50mb-warc"]
    size = re.search(r"record of ([\d,]+) bytes is over --max-doc-bytes", response[1])
    assert response[0] == "too_large" and size and int(size.group(1).replace(",", "")) > 50_000_000, response
    (nested,) = by_case["nested-html-100k"]
    assert nested[0] == "document"
    (big,) = by_case["html-10mb"]
    assert big[0] == "document" and int(big[1].split(" chars")[0].replace(",", "")) > 9_000_000
