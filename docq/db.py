"""The one gateway to the database: connections, transactions and the lock budget.

This is the only module that knows which backend is in use. SQLite (the default, a file)
and PostgreSQL (a ``postgresql+psycopg://`` URL, for workers on several hosts) get the
same schema and the same SQL, written with ``:name`` parameters; the few statements that
must differ (the claim, the counts) are chosen here.

SQLite rules that the whole of docq relies on:

* WAL journal, so readers never block the writer and the writer never blocks readers;
* every write transaction starts with ``BEGIN IMMEDIATE``: a deferred transaction that
  reads and then writes fails with "database is locked" whatever busy_timeout says;
* ``synchronous=FULL`` unless the user opts into ``normal``;
* ``SQLITE_BUSY`` is retried with jittered backoff inside one total budget
  (``lock_timeout``); past it `DatabaseBusy` (exit 6) says so and nothing was changed.

On PostgreSQL, ``:now`` in SQL means the server's clock (``now()``), so that a worker
whose clock is wrong can neither steal leases nor run items early.
"""

from __future__ import annotations

import os
import random
import re
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

from docq.config import Settings, default_database_path
from docq.errors import DatabaseBusy, DatabaseError, DatabaseUnreachable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

T = TypeVar("T")
Params = Mapping[str, Any] | Sequence[Any]
Backend = Literal["sqlite", "postgresql"]

POSTGRES_INSTALL_HINT = 'PostgreSQL support is not installed: pip install "docq[postgres]"'


@dataclass(frozen=True)
class Target:
    """Where the queue lives: a SQLite file (``path``) or a PostgreSQL URL (``url``)."""

    backend: Backend
    path: str | None = None
    url: str | None = None

    @property
    def display(self) -> str:
        """The target as shown to users (a PostgreSQL password is masked)."""
        if self.path is not None:
            return self.path
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", self.url or "")


def resolve_target(target: str | os.PathLike[str] | None) -> Target:
    """Parse ``--db``: a path or ``sqlite:///path`` for SQLite, ``postgresql[+psycopg]://...``
    for PostgreSQL, or None for ``docq.db`` in the user's data directory (created 0700).

    A SQLite path is resolved to its real path, so every process names the file alike.
    """
    if target is None:
        default = default_database_path()
        default.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Target("sqlite", path=os.path.realpath(default))
    text = os.fspath(target)
    if re.match(r"^postgres(ql)?(\+\w+)?://", text):
        return Target("postgresql", url=text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise DatabaseError(f"unsupported database URL {text!r}: use a file path or postgresql+psycopg://...")
    if not text:
        raise DatabaseError("empty database path")
    return Target("sqlite", path=os.path.realpath(os.path.expanduser(text)))


DatabaseLike = Union["Database", str, "os.PathLike[str]", Any]
"""A `Database`, a ``--db`` target, or a SQLAlchemy Engine or Session on a docq database."""


class Tx:
    """A cursor inside one transaction, taking SQL with ``:name`` parameters on either backend."""

    __slots__ = ("backend", "cursor")

    def __init__(self, cursor: Any, backend: Backend) -> None:
        self.cursor = cursor
        self.backend = backend

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run one statement; returns the cursor (iterate it, or fetchone/fetchall)."""
        if self.backend == "postgresql":
            sql = _pg_sql(sql)
        self.cursor.execute(sql, params)
        return self.cursor

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter set."""
        if self.backend == "postgresql":
            sql = _pg_sql(sql)
        self.cursor.executemany(sql, rows)

    def all(self, sql: str, params: Params = ()) -> list[Any]:
        """All rows, as tuples."""
        return list(self.execute(sql, params).fetchall())

    def one(self, sql: str, params: Params = ()) -> Any:
        """The first row, or None."""
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def dicts(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """All rows, as dicts keyed by column name."""
        cursor = self.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """Translate docq's SQL to psycopg: ``:name`` to ``%(name)s``, ``:now`` to the server clock."""
    sql = sql.replace("%", "%%")
    sql = re.sub(r"(?<![:\w]):now\b", "(EXTRACT(EPOCH FROM now())::float8)", sql)
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)


class Database:
    """One connection to the queue's database, and transactions on it with the lock budget.

    Not shared between threads or processes: each worker, command or thread opens its own.
    Opening checks that the file is a docq database of a schema this docq knows, creating
    the schema in a new or empty database; with ``create=False`` (commands that only read
    or change existing items) a missing queue is an error instead, so a mistyped ``--db``
    never leaves an empty database behind.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | Target | None = None,
        settings: Settings | None = None,
        *,
        create: bool = True,
    ):
        self.settings = settings or Settings()
        self.create = create
        self.target = target if isinstance(target, Target) else resolve_target(target)
        self.backend: Backend = self.target.backend
        self._conn: Any = None
        self._engine: Engine | None = None
        self.connection()  # fail now, with one clear line, if the database is unusable

    # --- connections -------------------------------------------------------------

    def connection(self) -> Any:
        """The open DB-API connection (sqlite3 or psycopg), opening it if needed."""
        if self._conn is None:
            conn = self._with_budget(self._open, what="open")
            self._conn = conn
        return self._conn

    def connect_raw(self) -> Any:
        """A new DB-API connection with docq's settings, for callers that need their own
        (the SQLAlchemy engine's pool; the LISTEN connection). The schema must exist."""
        if self.backend == "sqlite":
            return self._sqlite_connect()
        return self._pg_connect()

    def close(self) -> None:
        """Close the connection (and the engine, if one was made). Safe to call twice."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:  # closing a broken connection may raise; it is gone either way
                pass
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def engine(self) -> Engine:
        """A SQLAlchemy engine on the same database with the same connection settings,
        for the ORM's read queries (admin listings). Built on first use."""
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            url = "sqlite://" if self.backend == "sqlite" else "postgresql+psycopg://"
            self._engine = create_engine(url, creator=self.connect_raw, poolclass=NullPool)
        return self._engine

    def vacuum(self) -> None:
        """Return free pages to the file system (after a purge) and trim the WAL file."""
        conn = self.connection()
        if self.backend == "sqlite":
            # Python's sqlite3 steps a statement without result rows once, and each step
            # of incremental_vacuum frees one page: repeat until the free list is empty.
            def free_pages(tx: Tx) -> None:
                while tx.scalar("PRAGMA freelist_count"):
                    tx.execute("PRAGMA incremental_vacuum")

            self.write(free_pages)
            self._with_budget(
                lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(), what="vacuum"
            )
            return
        conn.commit()
        conn.autocommit = True
        try:
            for table in ("attempts", "item_outputs", "queue_items", "documents"):
                conn.execute(f"VACUUM (ANALYZE) {table}")
        finally:
            conn.autocommit = False

    # --- enqueue announcements (PostgreSQL LISTEN/NOTIFY) ---------------------------

    def announce(self, tx: Tx, lane: str) -> None:
        """Tell idle workers that items of ``lane`` were queued (delivered at commit).
        PostgreSQL only; SQLite workers poll."""
        if self.backend == "postgresql":
            tx.execute("SELECT pg_notify(:channel, :lane)", {"channel": NOTIFY_CHANNEL, "lane": lane})

    def listener(self) -> Listener | None:
        """On PostgreSQL, a connection listening for `announce`; None on SQLite."""
        return Listener(self) if self.backend == "postgresql" else None

    def _open(self) -> Any:
        from docq import schema

        if not self.create and self.target.path is not None and not os.path.exists(self.target.path):
            raise DatabaseError(f"no docq queue at {self.target.path} yet: `docq enqueue` creates it")
        conn = self._sqlite_connect() if self.backend == "sqlite" else self._pg_connect()
        try:
            schema.ensure(conn, self.backend, self.target.display, create=self.create)
        except BaseException:
            conn.close()
            raise
        return conn

    def _sqlite_connect(self) -> sqlite3.Connection:
        path = self.target.path
        assert path is not None
        _create_private_file(path)
        busy_seconds = min(self.settings.lock_timeout, 1.0)
        try:
            conn = sqlite3.connect(path, timeout=busy_seconds, isolation_level=None, cached_statements=256)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open {path}: {exc}") from exc
        try:
            # FULL: an acknowledged commit survives power loss. NORMAL (opt-in) may lose
            # the last commits on power loss, never on a process crash.
            conn.execute(f"PRAGMA synchronous={self.settings.synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def _pg_connect(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise DatabaseError(POSTGRES_INSTALL_HINT) from exc
        url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", self.target.url or "")
        return psycopg.connect(url, connect_timeout=max(2, min(10, int(self.settings.lock_timeout))))

    # --- transactions ------------------------------------------------------------

    def write(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in one write transaction and commit; roll back if it raises.

        ``fn`` may run more than once: when the database is busy or the connection drops
        before the commit, the whole transaction is retried within the lock budget. So
        ``fn`` must only touch the database.
        """
        return self._with_budget(lambda: self._run(fn, write=True), what="write")

    def read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot), with the same retries."""
        return self._with_budget(lambda: self._run(fn, write=False), what="read")

    def _run(self, fn: Callable[[Tx], T], *, write: bool) -> T:
        conn = self.connection()
        cursor = conn.cursor()
        if self.backend == "sqlite":
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = fn(Tx(cursor, self.backend))
            conn.commit() if self.backend == "postgresql" else cursor.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        finally:
            cursor.close()
        return result

    def _rollback(self, conn: Any) -> None:
        try:
            if self.backend == "postgresql":
                conn.rollback()
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        except Exception:  # the connection may be broken; it is replaced on the next retry
            self._drop_connection()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass

    def _with_budget(self, attempt: Callable[[], T], *, what: str) -> T:
        """Call ``attempt`` until it succeeds, retrying lock contention and lost connections
        with jittered exponential backoff until ``lock_timeout`` seconds have passed."""
        deadline = time.monotonic() + self.settings.lock_timeout
        delay = 0.005
        while True:
            try:
                return attempt()
            except Exception as exc:
                kind = self._classify(exc)
                if kind is None:
                    raise _translate(exc, self.target.display) from exc
                if kind == "disconnected":
                    self._drop_connection()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if kind == "busy":
                        raise DatabaseBusy(
                            f"database busy: {self.target.display} stayed locked by another process for "
                            f"{self.settings.lock_timeout:g}s (DOCQ_LOCK_TIMEOUT); nothing was changed, "
                            "run the command again"
                        ) from exc
                    raise DatabaseUnreachable(
                        f"cannot reach {self.target.display} ({what}): {_first_line(exc)}"
                    ) from exc
                time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, 0.25 if kind == "busy" else 2.0)

    def _classify(self, exc: BaseException) -> Literal["busy", "disconnected"] | None:
        if isinstance(exc, sqlite3.OperationalError):
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc):
                return "busy"
            return None
        psycopg = sys.modules.get("psycopg")  # not imported: not a psycopg error either
        if self.backend == "postgresql" and psycopg is not None:
            if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
                return "busy"
            if isinstance(exc, psycopg.errors.LockNotAvailable):
                return "busy"
            if isinstance(exc, psycopg.errors.UniqueViolation):
                # A concurrent transaction queued the same document first: run ours again,
                # and its "already queued" check now sees the other's item.
                return "busy"
            if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
                # Class 08 and 57P01-57P03: the server closed the connection, is shutting
                # down or starting. Without a SQLSTATE, libpq's own words tell a lost or
                # refused connection (worth waiting for) from a wrong password or database.
                state = getattr(exc, "sqlstate", None)
                if state is not None:
                    return "disconnected" if state.startswith("08") or state in _SERVER_GOING else None
                message = str(exc).lower()
                if any(sign in message for sign in _CONNECTION_LOST):
                    return "disconnected"
                conn = self._conn
                if isinstance(exc, psycopg.InterfaceError) or (conn is not None and conn.closed):
                    return "disconnected"
        return None


_SERVER_GOING = ("57P01", "57P02", "57P03")
_CONNECTION_LOST = (
    "connection refused",
    "could not connect",
    "server closed the connection",
    "connection reset",
    "connection timed out",
    "timeout expired",
    "no route to host",
    "network is unreachable",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "terminating connection",
    "consuming input failed",
    "the connection is lost",
    "the connection is closed",
)

NOTIFY_CHANNEL = "docq_queue"


class Listener:
    """A PostgreSQL connection that LISTENs for enqueue announcements.

    Readable (``fileno()``) when an announcement may have arrived; `drain` says whether
    one did. If the connection drops, it reconnects on the next `drain`; meanwhile the
    worker still polls, so nothing waits longer than the poll interval.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: Any = None
        self._idle = socket.socketpair()  # stands in, never readable, while disconnected
        self._retry_at = 0.0
        self._connect()

    @property
    def connected(self) -> bool:
        """Whether announcements can arrive now."""
        return self._conn is not None and not self._conn.closed

    def _connect(self) -> None:
        import psycopg

        if time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + 5.0
        try:
            conn = self._db.connect_raw()
            conn.autocommit = True
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error:
            self._conn = None
            return
        self._conn = conn

    def fileno(self) -> int:
        """The connection's socket, for ``multiprocessing.connection.wait``."""
        if not self.connected:
            return self._idle[0].fileno()
        return int(self._conn.fileno())

    def drain(self) -> bool:
        """Consume pending announcements; True if there was at least one. While
        disconnected, try to reconnect (every few seconds)."""
        import psycopg

        if not self.connected:
            self._connect()
            return self.connected  # reconnected: something may have been missed
        try:
            return bool(list(self._conn.notifies(timeout=0)))
        except psycopg.Error:
            self._conn = None
            return True

    def close(self) -> None:
        """Close the listening connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for end in self._idle:
            end.close()


def _create_private_file(path: str) -> None:
    """Create the database file with mode 0600 if it does not exist yet (SQLite then gives
    its -wal and -shm files the same mode). A missing or read-only directory is an error."""
    if os.path.exists(path):
        return
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise DatabaseError(f"cannot create {path}: directory {directory} does not exist")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return  # another process created it first
    except OSError as exc:
        raise DatabaseError(f"cannot create {path}: {exc.strerror}") from exc
    os.close(fd)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _translate(exc: Exception, where: str) -> Exception:
    """Turn a driver error that is about the database (not a bug in docq) into DatabaseError."""
    if isinstance(exc, DatabaseError | DatabaseBusy):
        return exc
    if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.ProgrammingError | sqlite3.InterfaceError
    ):
        message = _first_line(exc)
        if "not a database" in message:
            return DatabaseError(f"{where} is not a docq database (not an SQLite file)")
        if "malformed" in message:
            return DatabaseError(f"{where} is corrupt ({message}); see `docq doctor`")
        if "readonly" in message or "read-only" in message:
            return DatabaseError(f"{where} is read-only: docq needs to write to it and its directory")
        if "unable to open" in message:
            return DatabaseError(f"cannot open {where}: check that it and its directory are writable")
        return DatabaseError(f"{where}: {message}")
    psycopg = sys.modules.get("psycopg")  # only a psycopg error if psycopg was imported
    if psycopg is not None and isinstance(exc, psycopg.Error):
        # A missing schema or database, a permission, a server-side limit: all about the
        # database the user pointed at, said in PostgreSQL's own first line.
        return DatabaseError(f"{where}: {_first_line(exc)}")
    return exc


def open_database(db: DatabaseLike, settings: Settings | None = None) -> Database:
    """A `Database` for anything a caller may pass as ``db`` (see `DatabaseLike`)."""
    if isinstance(db, Database):
        return db
    bind = getattr(db, "bind", None) or getattr(db, "get_bind", lambda: None)()
    engine = bind if bind is not None else db
    url = getattr(engine, "url", None)
    if url is not None:  # a SQLAlchemy Engine or Session: open the same database our way
        target = (
            url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=False)
        )
        return Database(target, settings)
    return Database(db, settings)
