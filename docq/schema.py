"""Create, recognise and version-check docq's schema on an open DB-API connection.

A database is accepted when it carries docq's mark (SQLite: ``PRAGMA application_id``
and ``user_version``; PostgreSQL: the ``docq_meta`` table) with a schema version this
docq knows. A new or empty database gets the schema; anything else (another program's
database, a newer docq's) is refused with `DatabaseError` and left untouched.

The DDL comes from the SQLModel tables in `docq.models`; it is only built, and sqlmodel
only imported, when a database is created.
"""

from __future__ import annotations

from typing import Any

from docq.errors import DatabaseError

SCHEMA_VERSION = 1
"""Bumped whenever the tables change; a database from a newer docq is refused."""

APPLICATION_ID = 0x646F6371
"""SQLite ``PRAGMA application_id`` of a docq database (the bytes of ``docq``)."""

# Counters per (operation, status), so that stats never scan the finished history.
# SQLite serialises writers anyway, so triggers cost no concurrency there.
SQLITE_COUNT_TRIGGERS = [
    """CREATE TRIGGER trg_items_counted_insert AFTER INSERT ON queue_items BEGIN
        INSERT INTO queue_counts (operation, status, n) VALUES (NEW.operation, NEW.status, 1)
            ON CONFLICT (operation, status) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER trg_items_counted_update AFTER UPDATE OF status ON queue_items
    WHEN OLD.status <> NEW.status BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE operation = OLD.operation AND status = OLD.status;
        INSERT INTO queue_counts (operation, status, n) VALUES (NEW.operation, NEW.status, 1)
            ON CONFLICT (operation, status) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER trg_items_counted_delete AFTER DELETE ON queue_items BEGIN
        UPDATE queue_counts SET n = n - 1 WHERE operation = OLD.operation AND status = OLD.status;
    END""",
]

DOCQ_TABLES = ("documents", "queue_items", "attempts", "item_outputs", "workers", "queue_counts")

# Serialises concurrent creators of the schema on one PostgreSQL database.
_PG_CREATE_LOCK = 0x646F6371


def ensure(conn: Any, backend: str, where: str, *, create: bool = True) -> None:
    """Check the schema of ``conn``'s database, creating it if the database is new (and
    ``create``). Raises `DatabaseError` if the database is not docq's, comes from a newer
    docq, or (without ``create``) holds no queue yet.
    """
    if backend == "sqlite":
        _ensure_sqlite(conn, where, create)
    else:
        _ensure_postgres(conn, where, create)


def _no_queue(where: str) -> DatabaseError:
    return DatabaseError(f"no docq queue in {where} yet: `docq enqueue` creates it")


def _check_version(version: int, where: str) -> None:
    if version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{where} was made by a newer docq (schema {version}; this docq knows {SCHEMA_VERSION}): "
            "upgrade docq to use it"
        )
    if version < 1:
        raise DatabaseError(f"{where} has no docq schema version: not a docq database")


def _ensure_sqlite(conn: Any, where: str, create: bool) -> None:
    # One snapshot for both reads: a process creating the schema meanwhile must not make
    # a fresh docq file look like a foreign one. The first read also fails with "file is
    # not a database" on a file that isn't one.
    conn.execute("BEGIN")
    try:
        app_id, version = conn.execute("SELECT * FROM pragma_application_id, pragma_user_version").fetchone()
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        conn.execute("COMMIT")
    if app_id == APPLICATION_ID:
        _check_version(version, where)
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        return
    if app_id != 0 or has_tables:
        raise DatabaseError(
            f"{where} is not a docq database (it holds another program's data); left untouched"
        )
    if not create:
        raise _no_queue(where)
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only possible before the first table
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have created the schema while we waited for the lock.
        if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
            for statement in ddl("sqlite"):
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _ensure_postgres(conn: Any, where: str, create: bool) -> None:
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_CREATE_LOCK,))
            cur.execute(
                "SELECT to_regclass('docq_meta') IS NOT NULL, "
                "array_remove(ARRAY["
                + ", ".join(f"to_regclass('{t}')::text" for t in DOCQ_TABLES)
                + "], NULL)"
            )
            has_meta, foreign = cur.fetchone()
            if has_meta:
                cur.execute("SELECT value FROM docq_meta WHERE key = 'schema_version'")
                row = cur.fetchone()
                _check_version(int(row[0]) if row else 0, where)
            elif foreign:
                raise DatabaseError(
                    f"{where} holds tables named like docq's ({', '.join(foreign)}) that are not docq's; "
                    "left untouched (use another database or schema)"
                )
            elif not create:
                raise _no_queue(where)
            else:
                for statement in ddl("postgresql"):
                    cur.execute(statement)
                cur.execute(
                    "INSERT INTO docq_meta (key, value) VALUES ('schema_version', %s)", (str(SCHEMA_VERSION),)
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise


def ddl(backend: str) -> list[str]:
    """The statements that create docq's tables, indexes and (SQLite) triggers."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from docq import models

    dialect: Any = sqlite.dialect() if backend == "sqlite" else postgresql.dialect()  # type: ignore[no-untyped-call]
    statements: list[str] = []
    for model in (
        models.Document,
        models.QueueItem,
        models.Attempt,
        models.ItemOutput,
        models.Worker,
        models.QueueCount,
        models.Meta,
    ):
        table: Any = getattr(model, "__table__")  # noqa: B009 - set by SQLModel's metaclass
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: i.name):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    if backend == "sqlite":
        statements.extend(SQLITE_COUNT_TRIGGERS)
        statements.append(f"INSERT INTO docq_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}')")
    return statements
