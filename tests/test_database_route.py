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


def test_an_orm_read_never_rolls_back_a_callers_open_transaction(data_home: Path) -> None:
    engine = create_engine("sqlite://")
    service = DocumentQueueService(engine)
    service.add_documents([a_file("/srv/docs/a.txt")])
    with Session(engine) as session:
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
        session.flush()
        with pytest.raises(DatabaseError, match="transaction open"):
            views.list_items(service.db, views.ItemFilter())
        session.commit()  # the caller's work survived the refused read
    assert [row.document.path for row in [views.show_document(service.db, "2")]] == ["/srv/docs/b.txt"]
    service.close()


def test_memory_as_a_string_is_a_queue_in_memory(
    tmp_path: Path, data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for target in (":memory:", "sqlite://", "sqlite:///:memory:"):
        service = DocumentQueueService(target)
        service.add_documents([a_file("/srv/docs/a.txt")])
        assert service.get_queue_stats().pending == 1
        assert views.list_items(service.db, views.ItemFilter())[0].item.id == 1
        service.close()
    assert list(tmp_path.iterdir()) == [data_home] or list(tmp_path.iterdir()) == []
    assert not data_home.exists()


def test_a_postgresql_engine_whose_pool_runs_dry_is_busy_in_one_line(pg_url: str) -> None:
    engine = create_engine(pg_url, pool_size=1, max_overflow=0, pool_timeout=0.5)
    service = DocumentQueueService(engine)  # holds the pool's only connection
    with pytest.raises(DatabaseBusy, match="pool had no connection free"):
        views.list_items(service.db, views.ItemFilter())
    service.close()
    engine.dispose()


def test_a_service_used_from_another_thread_says_so(tmp_path: Path) -> None:
    import threading

    path = str(tmp_path / "queue.db")
    service = DocumentQueueService(path)
    raised: list[BaseException] = []

    def use() -> None:
        try:
            service.get_queue_stats()
        except BaseException as error:  # reported to the test's thread
            raised.append(error)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    service.close()
    assert len(raised) == 1 and isinstance(raised[0], DatabaseError), raised
    assert "open one per thread" in str(raised[0])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_errors_that_cannot_be_stored_as_they_are_are_stored_cleaned(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A failure whose message holds a NUL (a command's stderr) or a lone surrogate (a file
    name that is not UTF-8) is recorded, not a crash of the worker that reports it."""
    from docq.items import Result

    target = str(tmp_path / "queue.db") if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    service = DocumentQueueService(target, settings=Settings(db=target, lock_timeout=10))
    service.add_documents([a_file("/srv/docs/a.txt"), a_file("/srv/docs/b.txt")])
    first, second = service.claim(limit=2, worker="host:1:w", lease_seconds=60)
    verdicts = service.finish(
        [
            (first, Result.failure("command exited with code 1: bad\x00byte", permanent=True)),
            (second, Result.failure(f"corrupt: r{chr(0xDCE9)}sum.pdf: broken", permanent=True)),
        ]
    )
    assert verdicts == ["failed", "failed"]
    errors = [row.item.last_error for row in views.list_items(service.db, views.ItemFilter())]
    assert sorted(errors) == sorted(  # type: ignore[type-var]
        ["permanent: command exited with code 1: badbyte", "permanent: corrupt: r?sum.pdf: broken"]
    )
    service.close()


def test_a_broken_file_whose_name_is_not_utf8_fails_without_stopping_the_worker(
    tmp_path: Path, sample_docs: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    name = os.fsdecode(b"r\xe9sum\xe9.pdf")  # Latin-1 bytes: not UTF-8
    (folder / name).write_bytes((sample_docs / "broken.pdf").read_bytes())
    (folder / "fine.txt").write_text("fine\n", encoding="utf-8")
    cli = Cli(str(tmp_path / "queue.db"))
    cli.ok("enqueue", "-r", str(folder))
    summary = cli.json("work", code=3)
    assert (summary["completed"], summary["failed"]) == (1, 1)
    [failed] = cli.json("list", "--status", "failed")
    assert failed["last_error"].startswith("permanent: corrupt: r") and failed["path"].endswith(
        "r\\xe9sum\\xe9.pdf"
    )
