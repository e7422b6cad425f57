import os

from conftest import ROOT
from corpus_audit.schemas import DOCUMENT_SCHEMA, STAGED_SCHEMA, describe


def test_every_column_is_documented_and_the_readme_table_is_current():
    assert all(f.metadata and f.metadata[b"description"] for f in DOCUMENT_SCHEMA)
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    assert describe(DOCUMENT_SCHEMA) in readme, "README's column table is out of date: run corpus-audit schema"


def test_staged_columns_all_reach_the_output():
    names = DOCUMENT_SCHEMA.names
    assert all(n in names for n in STAGED_SCHEMA.names)
