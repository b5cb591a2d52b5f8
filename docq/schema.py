"""Create, recognise, upgrade and version-check docq's schema on an open connection.

A database is accepted when it carries docq's mark (SQLite: ``PRAGMA application_id``;
PostgreSQL: the ``docq_meta`` table) with a schema version this docq knows. A new or
empty database gets today's schema, built from the SQLModel tables in `docq.models`; an
older one is brought up to date by the numbered migrations in `docq.migrations`, in
order, in one transaction, each recorded in ``docq_migrations``. Anything else (another
program's database, a newer docq's) is refused with `DatabaseError` and left untouched.

sqlalchemy and sqlmodel are only imported when a database is created.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from docq import migrations
from docq import queries as q
from docq.backends import Backend, SchemaMark, Tx
from docq.errors import DatabaseError

SCHEMA_VERSION = migrations.LATEST
"""The schema this docq writes; a database from a newer docq is refused."""

DOCQ_TABLES = (
    "documents",
    "queue_items",
    "attempts",
    "item_outputs",
    "workers",
    "queue_counts",
    "docq_migrations",
)
"""docq's tables besides ``docq_meta``: finding one without docq's mark means another
program's data."""

# Counters per (operation, status), so that stats never scan the finished history.
# SQLite serialises writers anyway, so triggers cost no concurrency there; PostgreSQL
# counts with a query instead (see `docq.queries.COUNTS`), where a counter row would
# serialise every worker.
COUNT_TRIGGERS = [
    q.sqlite_only(
        """CREATE TRIGGER trg_items_counted_insert AFTER INSERT ON queue_items BEGIN
        INSERT INTO queue_counts (operation, status, n) VALUES (NEW.operation, NEW.status, 1)
            ON CONFLICT (operation, status) DO UPDATE SET n = n + 1;
    END"""
    ),
    q.sqlite_only(
        """CREATE TRIGGER trg_items_counted_update AFTER UPDATE OF status ON queue_items
    WHEN OLD.status <> NEW.status BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE operation = OLD.operation AND status = OLD.status;
        INSERT INTO queue_counts (operation, status, n) VALUES (NEW.operation, NEW.status, 1)
            ON CONFLICT (operation, status) DO UPDATE SET n = n + 1;
    END"""
    ),
    q.sqlite_only(
        """CREATE TRIGGER trg_items_counted_delete AFTER DELETE ON queue_items BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE operation = OLD.operation AND status = OLD.status;
    END"""
    ),
]


class OutdatedSchema(DatabaseError):
    """The queue was made by an older docq and was not upgraded (``docq migrate`` does)."""

    def __init__(self, where: str, version: int) -> None:
        super().__init__(
            f"{where} has schema {version}; this docq needs {SCHEMA_VERSION}: "
            "run `docq migrate` to upgrade it"
        )
        self.where = where
        self.version = version


def ensure(
    conn: Any,
    backend: Backend,
    where: str,
    *,
    create: bool = True,
    upgrade: bool = True,
    clock: Callable[[], float] = time.time,
) -> int | None:
    """Check the schema of ``conn``'s database; create it if the database is new (and
    ``create``); upgrade it if it is older (and ``upgrade``), and put a docq database found
    in another journal mode back in docq's (also only with ``upgrade``: without it,
    nothing is changed). Returns the version it was upgraded from, or None. Raises
    `DatabaseError` if the database is not docq's, comes from a newer docq, or (without
    ``create``) holds no queue yet; `OutdatedSchema` if it is older and ``upgrade`` is False.
    """
    with backend.transaction(conn, clock, write=False) as tx:
        mark = backend.read_mark(tx, DOCQ_TABLES)
    _check(mark, where, create=create, upgrade=upgrade)
    upgraded_from = None
    if mark.version != SCHEMA_VERSION:
        if mark.empty:
            backend.prepare_new(conn)
        with backend.schema_lock(conn), backend.transaction(conn, clock, write=True) as tx:
            # Another process may have created or upgraded the schema meanwhile.
            mark = backend.read_mark(tx, DOCQ_TABLES)
            _check(mark, where, create=create, upgrade=upgrade)
            if mark.empty:
                _create(tx, backend, clock())
            elif mark.version < SCHEMA_VERSION:
                _upgrade(tx, backend, mark.version, clock())
                upgraded_from = mark.version
    if upgrade:
        backend.opened(conn)
    return upgraded_from


def _check(mark: SchemaMark, where: str, *, create: bool, upgrade: bool) -> None:
    if mark.refusal is not None:
        raise DatabaseError(f"{where} {mark.refusal}")
    if mark.version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{where} was made by a newer docq (schema {mark.version}; this docq knows {SCHEMA_VERSION}): "
            "upgrade docq to use it"
        )
    if mark.empty and not create:
        raise DatabaseError(f"no docq queue in {where} yet: `docq enqueue` creates it")
    if 0 < mark.version < SCHEMA_VERSION and not upgrade:
        raise OutdatedSchema(where, mark.version)


def _create(tx: Tx, backend: Backend, now: float) -> None:
    """Today's schema, in a new database, with every migration recorded as applied."""
    for statement in ddl(backend):
        tx.execute(statement)
    for sql in COUNT_TRIGGERS:
        tx.execute(sql)
    tx.execute(q.SET_SCHEMA_VERSION, {"version": str(SCHEMA_VERSION)})
    tx.executemany(
        q.RECORD_MIGRATION,
        [{"version": m.version, "name": m.name, "now": now} for m in migrations.MIGRATIONS],
    )
    backend.write_mark(tx, SCHEMA_VERSION)


def _upgrade(tx: Tx, backend: Backend, version: int, now: float) -> None:
    """Apply the migrations after ``version`` in order, recording each."""
    for migration in migrations.after(version):
        assert migration.upgrade is not None
        migration.upgrade(tx)
        tx.execute(q.RECORD_MIGRATION, {"version": migration.version, "name": migration.name, "now": now})
        tx.execute(q.SET_SCHEMA_VERSION, {"version": str(migration.version)})
        backend.write_mark(tx, migration.version)


def ddl(backend: Backend) -> list[str]:
    """The statements that create docq's tables and indexes (triggers apart)."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    from docq import models

    dialect = backend.dialect()
    statements: list[str] = []
    for model in models.TABLES:
        table: Any = getattr(model, "__table__")  # noqa: B009 - set by SQLModel's metaclass
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return statements


def applied(tx: Tx) -> list[dict[str, Any]]:
    """The migrations recorded in the database, oldest first."""
    return tx.dicts(q.APPLIED_MIGRATIONS)
