"""docq's schema history: one numbered migration a change, applied in order.

A database records its schema version (SQLite: ``PRAGMA user_version``; both backends:
``docq_meta``) and, from schema 2 on, every migration applied (``docq_migrations``).
Opening an older queue applies the migrations after its version in one transaction (see
`docq.schema.ensure`); a new queue is created at `LATEST` directly, with every migration
recorded. Each migration's SQL is frozen in its own module: it describes the schema as it
was, so it never changes after release. Tests hold a queue upgraded from schema 1 against
a new one, table by table and index by index.

To change the schema: change `docq.models`, add ``vNNN_what.py`` here with ``upgrade(tx)``
that turns the previous schema into the new one on both backends, list it in
`MIGRATIONS`, and the tests check the two agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from docq.backends import Tx
from docq.migrations import v002_migration_log, v003_started


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history: what it is, and how to make it (None: the first
    schema, which is only ever created, never migrated to)."""

    version: int
    name: str
    upgrade: Callable[[Tx], None] | None


MIGRATIONS = (
    Migration(1, "the first schema: documents, queue items, attempts, outputs, workers", None),
    Migration(2, v002_migration_log.NAME, v002_migration_log.upgrade),
    Migration(3, v003_started.NAME, v003_started.upgrade),
)

LATEST = MIGRATIONS[-1].version
"""The schema version this docq writes."""


def after(version: int) -> Iterator[Migration]:
    """The migrations that bring a schema of ``version`` up to `LATEST`, in order."""
    for migration in MIGRATIONS:
        if migration.version > version:
            assert migration.upgrade is not None
            yield migration
