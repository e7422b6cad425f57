"""Parquet schemas of the audit's outputs (see `documents.py`)."""
from corpus_audit.schemas.documents import (  # noqa: F401
    DEAD_LETTER_SCHEMA,
    DOCUMENT_SCHEMA,
    SCHEMA_VERSION,
    STAGED_SCHEMA,
    TRAINING_SCHEMA,
    describe,
)
