"""Schema 2: a table that records each migration applied, and when.

Before it, only the version number said what a queue had been through. The first schema
is recorded as applied at an unknown time (NULL).
"""

from __future__ import annotations

from docq.backends import Tx

NAME = "record every migration applied, in docq_migrations"

CREATE = """CREATE TABLE docq_migrations (
    version INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    applied_at FLOAT,
    PRIMARY KEY (version)
)"""

FIRST = (
    "INSERT INTO docq_migrations (version, name, applied_at) "
    "VALUES (1, 'the first schema: documents, queue items, attempts, outputs, workers', NULL)"
)


def upgrade(tx: Tx) -> None:
    """Create ``docq_migrations`` and record the first schema in it."""
    tx.execute(CREATE)
    tx.execute(FIRST)
