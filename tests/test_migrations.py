"""Schema migrations: a queue made by docq 0.1.0 (schema 1) upgrades in place with nothing
lost, ends with the same schema as a new queue, and then behaves as a new queue does.

``fixtures/schema1-queue.sqlite`` was written by that release (``fixtures/
make_schema1_queue.py`` says how): documents, items in every status, every kind of
attempt, a command's output, workers alive and stopped. On PostgreSQL the same rows go
into the schema that release created there (``fixtures/schema1.postgresql.sql``).
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clirunner import DATABASE, OK, Cli, zeros
from conftest import PG_SKIP, PG_URL, _pg_schema_url

from docq import migrations, schema
from docq.backends.sqlite import APPLICATION_ID
from docq.config import Settings
from docq.db import Database
from docq.errors import DatabaseError
from docq.queue import DocumentQueueService
from docq.schema import SCHEMA_VERSION

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEMA_1_QUEUE = FIXTURES / "schema1-queue.sqlite"
SCHEMA_1_POSTGRES = FIXTURES / "schema1.postgresql.sql"
ALL_VERSIONS = [migration.version for migration in migrations.MIGRATIONS]
OLD_TABLES = ("documents", "queue_items", "attempts", "item_outputs", "workers", "queue_counts")


def old_columns(table: str) -> list[str]:
    """The columns ``table`` had in schema 1 (later migrations add columns, never drop one)."""
    conn = sqlite3.connect(SCHEMA_1_QUEUE)
    try:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


def sqlite_rows(path: Path | str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the schema-1 tables, in their schema-1 columns."""
    conn = sqlite3.connect(path)
    try:
        rows = {}
        for table in OLD_TABLES:
            columns = ", ".join(old_columns(table))
            rows[table] = conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2").fetchall()
        return rows
    finally:
        conn.close()


def sqlite_schema(path: Path | str) -> list[tuple[str, str, str]]:
    """Every table, index and trigger, with its SQL written without whitespace (the same
    statement, however it was laid out)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()
    return [(kind, name, re.sub(r"\s+", "", sql or "")) for kind, name, sql in rows]


@pytest.fixture
def old_queue(tmp_path: Path) -> Path:
    """A copy of the schema-1 queue."""
    path = tmp_path / "old.db"
    shutil.copyfile(SCHEMA_1_QUEUE, path)
    return path


# --- SQLite ----------------------------------------------------------------------------


def test_the_fixture_is_a_schema_1_queue_with_every_state() -> None:
    conn = sqlite3.connect(SCHEMA_1_QUEUE)
    try:
        assert conn.execute("SELECT * FROM pragma_application_id, pragma_user_version").fetchone() == (
            APPLICATION_ID,
            1,
        )
        statuses = {row[0] for row in conn.execute("SELECT DISTINCT status FROM queue_items")}
        outcomes = {row[0] for row in conn.execute("SELECT DISTINCT outcome FROM attempts")}
        retrying = conn.execute("SELECT count(*) FROM queue_items WHERE status = 'pending' AND attempts > 0")
        assert retrying.fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM item_outputs").fetchone()[0] >= 1
        assert conn.execute("SELECT count(*) FROM workers WHERE stopped_at IS NULL").fetchone()[0] >= 1
    finally:
        conn.close()
    assert statuses == {"pending", "in_progress", "completed", "failed", "cancelled"}
    assert outcomes == {"completed", "failed", "abandoned", "released", "cancelled"}


def test_a_schema_1_queue_upgrades_in_place_with_nothing_lost(old_queue: Path) -> None:
    before = sqlite_rows(old_queue)

    result = Cli(str(old_queue)).ok("stats", "--json")

    assert result.stderr == f"docq: upgraded the queue at {old_queue} from schema 1 to {SCHEMA_VERSION}\n"
    assert sqlite_rows(old_queue) == before
    conn = sqlite3.connect(old_queue)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("SELECT value FROM docq_meta").fetchall() == [(str(SCHEMA_VERSION),)]
        recorded = conn.execute("SELECT version, applied_at IS NULL FROM docq_migrations ORDER BY version")
        assert recorded.fetchall() == [(1, 1), *((m.version, 0) for m in migrations.MIGRATIONS[1:])]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_an_upgraded_queue_has_the_schema_of_a_new_one(old_queue: Path, tmp_path: Path) -> None:
    Database(str(old_queue)).close()
    new = tmp_path / "new.db"
    Database(str(new)).close()
    assert sqlite_schema(old_queue) == sqlite_schema(new)


def test_an_upgraded_queue_behaves_as_a_new_one(old_queue: Path, tmp_path: Path, sample_docs: Path) -> None:
    cli = Cli(str(old_queue))
    stats = cli.json("stats")
    assert {key: stats[key] for key in ("pending", "in_progress", "completed", "failed", "cancelled")} == {
        "pending": 2,
        "in_progress": 1,
        "completed": 6,
        "failed": 1,
        "cancelled": 2,
    }
    assert (stats["retrying"], stats["by_operation"]["wc"]) == (1, zeros(completed=1, cancelled=1))

    listed = cli.json("list", "--status", "failed")
    assert [(row["id"], row["path"]) for row in listed] == [(5, "/srv/docs/broken.pdf")]
    alpha = cli.document(1)
    assert [(item["id"], item["operation"], item["status"]) for item in alpha["queue_items"]] == [
        (1, "process", "completed"),
        (6, "wc", "completed"),
        (7, "reprocess", "completed"),
    ]
    assert alpha["text"] and alpha["metadata"]["title"] == "Alpha report"
    assert cli.item(6)["output"]["text"].startswith("32 ")
    theta = cli.item(10)
    assert (theta["status"], theta["worker"]) == ("in_progress", "vm:200:live")
    assert [entry["outcome"] for entry in theta["history"]] == ["abandoned"]

    assert cli.json("retry", "5")["changes"][0]["action"] == "retried"
    assert cli.json("cancel", "11")["changes"][0]["action"] == "cancelled"
    cli.ok("enqueue", str(sample_docs / "notes.md"))
    # notes.md completes; broken.pdf (and, once the fixture's leases and backoffs have run
    # out in wall-clock time, zeta and theta) are not in /srv/docs here: retried later.
    summary = cli.json("work")
    assert (summary["completed"], summary["failed"]) == (1, 0) and summary["retried"] >= 1
    assert cli.document(str(sample_docs / "notes.md"))["status"] == "processed"
    doctor = cli("doctor")
    assert doctor.exit_code == OK, doctor.output
    assert f"schema: docq schema {SCHEMA_VERSION}, up to date" in doctor.stdout
    assert "counters: stats counters match the items" in doctor.stdout


def test_migrate_dry_run_and_doctor_change_nothing(old_queue: Path) -> None:
    before = old_queue.read_bytes()
    cli = Cli(str(old_queue))

    planned = cli.json("migrate", "--dry-run")
    doctor = cli("doctor")

    assert planned == {
        "database": str(old_queue),
        "from": 1,
        "to": SCHEMA_VERSION,
        "dry_run": True,
        "migrations": [{"version": m.version, "name": m.name} for m in migrations.MIGRATIONS[1:]],
    }
    assert "warn  schema: schema 1; this docq upgrades it" in doctor.stdout
    assert old_queue.read_bytes() == before


def test_migrate_upgrades_and_says_so_once(old_queue: Path) -> None:
    cli = Cli(str(old_queue))
    first = cli.ok("migrate")
    again = cli.json("migrate")
    assert first.stdout.startswith(f"Upgraded the queue at {old_queue} from schema 1 to {SCHEMA_VERSION}:")
    latest = {"from": SCHEMA_VERSION, "to": SCHEMA_VERSION}
    assert again == {"database": str(old_queue), **latest, "dry_run": False, "migrations": []}


def test_migrate_on_a_missing_queue_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "missing.db"
    result = Cli(str(target))("migrate")
    assert result.exit_code == DATABASE and "no docq queue" in result.stderr
    assert not target.exists()


def test_a_failed_upgrade_leaves_the_queue_as_it_was(old_queue: Path) -> None:
    conn = sqlite3.connect(old_queue)
    conn.execute("CREATE TABLE docq_migrations (something TEXT)")  # in the migration's way
    conn.commit()
    conn.close()
    before = sqlite_rows(old_queue)

    result = Cli(str(old_queue))("stats")

    assert result.exit_code == DATABASE, result.output
    assert result.stderr.count("\n") == 1 and "docq_migrations already exists" in result.stderr
    assert sqlite_rows(old_queue) == before
    conn = sqlite3.connect(old_queue)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    conn.close()


def test_a_queue_from_a_newer_docq_is_refused_untouched(old_queue: Path) -> None:
    conn = sqlite3.connect(old_queue)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    before = old_queue.read_bytes()
    for args in (["stats"], ["migrate"], ["enqueue", str(old_queue)]):
        result = Cli(str(old_queue))(*args)
        assert result.exit_code == DATABASE and "made by a newer docq" in result.stderr
    assert old_queue.read_bytes() == before


def _open_at_once(target: str, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(timeout=30)
        DocumentQueueService(target, settings=Settings(db=target, lock_timeout=30)).close()
        results.put("ok")
    except BaseException as error:  # reported to the parent
        results.put(f"{type(error).__name__}: {error}")


def _upgrade_at_once(target: str, contenders: int = 4) -> list[str]:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(contenders), context.Queue()
    processes = [
        context.Process(target=_open_at_once, args=(target, barrier, results)) for _ in range(contenders)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    return outcomes


def test_processes_opening_an_old_queue_at_once_upgrade_it_once(old_queue: Path) -> None:
    assert _upgrade_at_once(str(old_queue)) == ["ok"] * 4
    conn = sqlite3.connect(old_queue)
    assert [row[0] for row in conn.execute("SELECT version FROM docq_migrations")] == ALL_VERSIONS
    conn.close()


# --- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture
def old_pg_queue() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL schema made by docq 0.1.0, holding the fixture's rows; the URL of it,
    and an admin connection whose search_path is that schema."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    import psycopg

    name = f"docq_old_{uuid.uuid4().hex[:12]}"
    admin_url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    admin = psycopg.connect(admin_url, autocommit=True)
    admin.execute(f"CREATE SCHEMA {name}")
    admin.execute(f"SET search_path TO {name}")
    try:
        admin.execute(SCHEMA_1_POSTGRES.read_text(encoding="utf-8"))
        source = sqlite3.connect(SCHEMA_1_QUEUE)
        for table in OLD_TABLES:
            cursor = source.execute(f"SELECT * FROM {table}")
            columns = [column[0] for column in cursor.description]
            stored = [c for c in columns if not (table == "queue_items" and c == "lane")]  # computed
            for row in cursor.fetchall():
                values = dict(zip(columns, row, strict=True))
                if "cancel_requested" in values:
                    values["cancel_requested"] = bool(values["cancel_requested"])
                marks = ", ".join(f"%({c})s" for c in stored)
                admin.execute(f"INSERT INTO {table} ({', '.join(stored)}) VALUES ({marks})", values)
        source.close()
        for table in ("documents", "queue_items", "attempts"):
            admin.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        yield _pg_schema_url(PG_URL, name), admin
    finally:
        admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        admin.close()


def pg_rows(admin: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the schema-1 tables, in their schema-1 columns."""
    rows = {}
    for table in OLD_TABLES[:-1]:
        columns = ", ".join(old_columns(table))
        rows[table] = admin.execute(f"SELECT {columns} FROM {table} ORDER BY 1, 2").fetchall()
    return rows


def pg_schema(admin: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    columns = admin.execute(
        """SELECT table_name, column_name, data_type, is_nullable, column_default IS NOT NULL, is_generated
           FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2"""
    ).fetchall()
    indexes = admin.execute(
        """SELECT tablename, indexname, indexdef FROM pg_indexes
           WHERE schemaname = current_schema() ORDER BY 1, 2"""
    ).fetchall()
    return columns, [(table, name, definition.split(" USING ", 1)[1]) for table, name, definition in indexes]


def test_a_schema_1_postgresql_queue_upgrades_in_place(old_pg_queue: tuple[str, Any], pg_url: str) -> None:
    url, admin = old_pg_queue
    before = pg_rows(admin)

    result = Cli(url).ok("stats", "--json")

    assert f"from schema 1 to {SCHEMA_VERSION}" in result.stderr
    assert pg_rows(admin) == before
    assert admin.execute("SELECT value FROM docq_meta").fetchall() == [(str(SCHEMA_VERSION),)]
    assert [row[0] for row in admin.execute("SELECT version FROM docq_migrations ORDER BY 1")] == ALL_VERSIONS
    Database(pg_url).close()  # a new queue, in another schema
    import psycopg

    fresh = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert pg_schema(admin) == pg_schema(fresh)
    finally:
        fresh.close()
    cli = Cli(url)
    assert cli.json("retry", "5")["changes"][0]["action"] == "retried"
    assert cli.json("stats")["pending"] == 3


def test_processes_opening_an_old_postgresql_queue_at_once_upgrade_it_once(
    old_pg_queue: tuple[str, Any],
) -> None:
    url, admin = old_pg_queue
    assert _upgrade_at_once(url) == ["ok"] * 4
    assert [row[0] for row in admin.execute("SELECT version FROM docq_migrations ORDER BY 1")] == ALL_VERSIONS


def test_every_migration_is_listed_once_in_order() -> None:
    versions = [migration.version for migration in migrations.MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    assert migrations.LATEST == schema.SCHEMA_VERSION == versions[-1]
    assert all(migration.upgrade is not None for migration in migrations.MIGRATIONS[1:])


def test_opening_without_upgrade_reports_an_outdated_schema(old_queue: Path) -> None:
    outdated = f"has schema 1; this docq needs {SCHEMA_VERSION}: run `docq migrate`"
    with pytest.raises(DatabaseError, match=outdated):
        Database(str(old_queue), upgrade=False)


def test_work_on_an_old_queue_says_it_upgraded_it(old_queue: Path) -> None:
    result = Cli(str(old_queue))("work", "--max-items", "1")
    assert f"docq: upgraded the queue at {old_queue} from schema 1 to {SCHEMA_VERSION}" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["retry", "5", "--dry-run"],
        ["cancel", "11", "--dry-run"],
        ["reprocess", "1", "--dry-run"],
        ["purge", "--older-than", "0s", "--dry-run"],
    ],
)
def test_a_dry_run_on_an_old_queue_changes_nothing(old_queue: Path, args: list[str]) -> None:
    before = old_queue.read_bytes()
    result = Cli(str(old_queue))(*args)
    assert result.exit_code == DATABASE and "run `docq migrate`" in result.stderr, result.output
    assert old_queue.read_bytes() == before


def test_doctor_leaves_the_journal_mode_as_it_found_it(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    Database(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    before = path.read_bytes()
    Cli(str(path))("doctor")
    assert path.read_bytes() == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    conn.close()
