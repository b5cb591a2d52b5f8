"""One route to the database: every read, ORM reads included, gets the lock budget and
the error translation; and a SQLAlchemy Engine or Session given to the library is used
as it is, never swapped for the user's default queue."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirunner import BUSY, Cli
from sqlalchemy import create_engine
from sqlmodel import Session, select

from docq import views
from docq.config import Settings, default_database_path
from docq.db import Database
from docq.enqueue import enqueue_paths
from docq.errors import DatabaseBusy, DatabaseError
from docq.export import export
from docq.models import Document, QueueItem
from docq.processing import FileFacts
from docq.queue import DocumentQueueService
from docq.states import ItemStatus
from docq.worker import process_document_queue


def a_file(path: str) -> FileFacts:
    return FileFacts(path, 10, "a" * 64, "text/plain")


@pytest.fixture
def queue_with_a_document(db_path: str) -> str:
    service = DocumentQueueService(db_path, settings=Settings(db=db_path))
    service.add_documents([a_file("/srv/docs/a.txt")])
    service.close()
    return db_path


@pytest.fixture
def exclusive_lock(queue_with_a_document: str) -> Iterator[str]:
    """Another connection holding the queue in SQLite's exclusive locking mode: in WAL
    mode that keeps every other connection from reading, not only from writing."""
    conn = sqlite3.connect(queue_with_a_document, isolation_level=None)
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE docq_meta SET value = value")
    conn.execute("COMMIT")  # in exclusive mode the lock stays until the connection closes
    yield queue_with_a_document
    conn.close()


# --- the lock budget and the error translation on every read ----------------------------


@pytest.mark.parametrize(
    "read",
    [
        lambda db: views.list_items(db, views.ItemFilter()),
        lambda db: views.show_document(db, "1"),
        lambda db: views.show_item(db, 1),
        lambda db: views.list_workers(db),
        lambda db: list(views.iter_documents(db, views.ItemFilter(limit=None))),
        lambda db: export(db, None),
        lambda db: db.read(lambda tx: tx.all("SELECT id FROM documents")),
    ],
    ids=["list_items", "show_document", "show_item", "list_workers", "iter_documents", "export", "read"],
)
def test_every_read_under_a_lock_is_busy_not_a_raw_driver_error(
    queue_with_a_document: str, read: object
) -> None:
    db = Database(queue_with_a_document, Settings(db=queue_with_a_document, lock_timeout=0.3))
    db.close()  # opened and checked; the next read connects again, under the lock
    conn = sqlite3.connect(queue_with_a_document, isolation_level=None)
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE docq_meta SET value = value")
    conn.execute("COMMIT")
    try:
        with pytest.raises(DatabaseBusy, match="database busy"):
            read(db)  # type: ignore[operator]
    finally:
        conn.close()
        db.close()


@pytest.mark.parametrize("args", [["list"], ["show", "1"], ["show", "--item", "1"], ["export"], ["workers"]])
def test_reading_commands_under_an_exclusive_lock_exit_6(exclusive_lock: str, args: list[str]) -> None:
    result = Cli(exclusive_lock)("--lock-timeout", "0.3s", *args)
    assert result.exit_code == BUSY, result.output
    assert result.stderr.startswith("docq: error: database busy: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output and "OperationalError" not in result.output


def test_orm_reads_of_a_file_that_is_not_a_database_say_so(queue_with_a_document: str) -> None:
    db = Database(queue_with_a_document, Settings(db=queue_with_a_document, lock_timeout=0.3))
    db.close()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(queue_with_a_document + suffix):
            os.remove(queue_with_a_document + suffix)
    Path(queue_with_a_document).write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(DatabaseError, match="not a docq database"):
        views.list_items(db, views.ItemFilter())


# --- an Engine or a Session is used as it is -------------------------------------------


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's data directory, where the default queue would go."""
    home = tmp_path / "data-home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    assert str(default_database_path()).startswith(str(home))
    return home


def test_an_in_memory_engine_gives_an_in_memory_queue(data_home: Path, sample_docs: Path) -> None:
    engine = create_engine("sqlite://")
    service = DocumentQueueService(engine)
    report = enqueue_paths(service, [str(sample_docs / "notes.md"), str(sample_docs / "page.html")])
    assert len(report.queued) == 2
    summary = process_document_queue(engine, settings=Settings(lock_timeout=10))
    assert (summary.processed, summary.completed) == (2, 2)
    stats = service.get_queue_stats()
    assert (stats.completed, stats.total) == (2, 2)
    assert views.show_document(service.db, str(sample_docs / "notes.md")).document.text
    assert "in memory" in service.db.target.display
    service.close()
    assert not data_home.exists() and not default_database_path().exists()


def test_a_session_passed_in_is_the_database_used(data_home: Path) -> None:
    engine = create_engine("sqlite://")
    with Session(engine) as session:
        service = DocumentQueueService(session)
        [queued] = service.add_documents([a_file("/srv/docs/a.txt")])
        item = service.get_item(queued.item_id)  # type: ignore[union-attr]
        assert item.status is ItemStatus.PENDING
        assert service.mark_in_progress(item)
        assert service.mark_completed(item, text="done", metadata={})
        seen = session.exec(select(QueueItem)).all()
        assert [(row.id, row.status) for row in seen] == [(queued.item_id, ItemStatus.COMPLETED)]  # type: ignore[union-attr]
        service.close()
    assert not data_home.exists()


def test_a_file_engine_opens_that_file(tmp_path: Path, data_home: Path) -> None:
    path = tmp_path / "engine.db"
    service = DocumentQueueService(create_engine(f"sqlite:///{path}"))
    service.add_documents([a_file("/srv/docs/a.txt")])
    service.close()
    assert path.exists() and not data_home.exists()
    again = DocumentQueueService(str(path))
    assert again.get_queue_stats().pending == 1
    again.close()


def test_a_postgresql_engine_opens_that_database(pg_url: str, data_home: Path) -> None:
    engine = create_engine(pg_url)
    service = DocumentQueueService(engine)
    service.add_documents([a_file("/srv/docs/a.txt")])
    assert service.get_queue_stats().pending == 1
    assert [row.item.id for row in views.list_items(service.db, views.ItemFilter())] == [1]
    service.close()
    engine.dispose()
    assert not data_home.exists()


def test_a_session_with_uncommitted_work_gets_one_clear_line(data_home: Path) -> None:
    engine = create_engine("sqlite://")
    DocumentQueueService(engine).close()  # the schema
    with Session(engine) as session:
        service = DocumentQueueService(session)
        session.add(
            Document(
                path="/srv/docs/b.txt",
                size=1,
                sha256="b" * 64,
                mime_type="text/plain",
                created_at=0,
                updated_at=0,
            )
        )
        session.flush()  # the session's transaction is open on the shared connection
        with pytest.raises(DatabaseError, match="transaction open"):
            service.add_documents([a_file("/srv/docs/a.txt")])
        session.rollback()
        service.add_documents([a_file("/srv/docs/a.txt")])  # and then it works
        assert service.get_queue_stats().pending == 1
        service.close()


def test_a_session_bound_to_nothing_is_refused(data_home: Path) -> None:
    with pytest.raises(DatabaseError, match="not bound to an engine"):
        DocumentQueueService(Session())
    assert not data_home.exists()
