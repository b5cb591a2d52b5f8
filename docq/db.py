"""The one route to the database: where the queue lives, its connection, transactions,
the lock budget and the error translation.

Every read and write in docq goes through a `Database`: `Database.write` and
`Database.read` run named SQL in one transaction through a `Tx`; `Database.session` runs
SQLModel queries. All three retry lock contention and lost connections with jittered
backoff within one budget (``lock_timeout``), after which `DatabaseBusy` (exit 6) says so
and nothing was changed; and all three turn a driver's error about the database (corrupt,
read-only, not docq's) into one line (`DatabaseError`, exit 5).

Which backend a target uses is decided here, once; what differs between backends lives
in `docq.backends`.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, Union

from docq.backends import Backend, BackendName, Tx, backend_for
from docq.config import Settings, default_database_path
from docq.errors import DatabaseBusy, DatabaseError, DatabaseReplaced, DatabaseUnreachable, DocqError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

T = TypeVar("T")
log = logging.getLogger("docq")


@dataclass(frozen=True)
class Target:
    """Where the queue lives: a SQLite file (``path``), a PostgreSQL URL (``url``), or a
    library caller's SQLAlchemy ``engine`` (with its URL, for display and listening)."""

    backend: BackendName
    path: str | None = None
    url: str | None = None
    engine: Any = field(default=None, compare=False)

    @property
    def display(self) -> str:
        """The target as shown to users (a PostgreSQL password is masked)."""
        if self.path is not None:
            return self.path
        if self.engine is not None and self.backend == "sqlite":
            return (
                f"{self.url} (in memory)"
                if self.url in ("sqlite://", "sqlite+pysqlite://")
                else str(self.url)
            )
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
    if text in (":memory:", "sqlite://", "sqlite:///:memory:"):
        return _in_memory()
    if re.match(r"^postgres(ql)?(\+\w+)?://", text):
        return Target("postgresql", url=text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    elif "://" in text:
        raise DatabaseError(f"unsupported database URL {text!r}: use a file path or postgresql+psycopg://...")
    if not text:
        raise DatabaseError("empty database path")
    return Target("sqlite", path=os.path.realpath(os.path.expanduser(text)))


def _in_memory() -> Target:
    """A queue in memory, for tests and experiments: one connection, shared by every use
    (SQLite gives each new connection to ``:memory:`` a database of its own)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    return Target("sqlite", url="sqlite://", engine=engine)


def engine_target(engine: Engine) -> Target:
    """The target of a library caller's SQLAlchemy engine: exactly that database (an
    in-memory SQLite engine gives an in-memory queue, through the engine's own pool)."""
    url = engine.url
    name = url.get_backend_name()
    if name not in ("sqlite", "postgresql"):
        raise DatabaseError(f"unsupported engine {url.render_as_string()}: docq runs on SQLite or PostgreSQL")
    backend: BackendName = "sqlite" if name == "sqlite" else "postgresql"
    database = url.database
    if backend == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        # A file: docq opens it itself, as it would from --db, with its own settings.
        return Target("sqlite", path=os.path.realpath(database))
    return Target(backend, url=url.render_as_string(hide_password=False), engine=engine)


DatabaseLike = Union["Database", str, "os.PathLike[str]", "Engine", "Session", None]
"""A `Database`, a ``--db`` target (None: the default queue), or a SQLAlchemy Engine or
Session on a docq database."""


class Database:
    """One connection to the queue's database, and transactions on it with the lock budget.

    Not shared between threads or processes: each worker, command or thread opens its own.
    Opening checks that the database is a docq queue of a schema this docq knows: a new or
    empty database gets the schema (unless ``create`` is False: then a missing queue is an
    error, so a mistyped ``--db`` never leaves an empty database behind); an older schema
    is upgraded in place (unless ``upgrade`` is False: then it is `OutdatedSchema`);
    ``upgraded_from`` then says from which version. A newer schema is refused untouched.

    ``clock`` gives the time as Unix seconds on SQLite (`Tx.now`); PostgreSQL uses its own.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | Target | None = None,
        settings: Settings | None = None,
        *,
        create: bool = True,
        upgrade: bool = True,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings or Settings()
        self.create = create
        self.upgrade = upgrade
        self.clock = clock
        self.target = target if isinstance(target, Target) else resolve_target(target)
        self.backend: Backend = backend_for(self.target.backend)
        self.upgraded_from: int | None = None
        self._conn: Any = None
        self._lent: Any = None  # the pool checkout behind a connection lent by an engine
        self._orm: Engine | None = None
        self._files: Any = None  # what the open connection holds on disk (SQLite: inodes)
        self.connection()  # fail now, with one clear line, if the database is unusable

    # --- connections -------------------------------------------------------------

    def connection(self) -> Any:
        """The open DB-API connection (sqlite3 or psycopg), opening it if needed."""
        if self._conn is None:
            self._conn = self._with_budget(self._open, what="open")
            self._files = self.backend.file_identity(self.target)
        return self._conn

    def check_files(self) -> None:
        """Raise `DatabaseReplaced` if a file under the open connection was deleted or
        replaced on disk since it was opened (an SQLite ``-wal`` removed by hand): this
        connection would go on committing into a file no other process reads.

        Cheap (a few ``stat`` calls): long-running processes call it at each heartbeat."""
        if self._conn is None:
            return
        replaced = self.backend.replaced_files(self._files, self.target)
        if replaced:
            raise DatabaseReplaced(
                f"{', '.join(replaced)} deleted or replaced on disk while docq had "
                f"{'it' if len(replaced) == 1 else 'them'} open: what this process writes from now on "
                "would be lost. Stop every docq process using "
                f"{self.target.display}, then start them again (their items come back when the "
                "leases expire); `docq doctor` lists processes still holding deleted files"
            )

    def connect_raw(self) -> Any:
        """A new DB-API connection with docq's settings, for callers that need their own
        (the ORM's reads). The schema must exist."""
        if self.target.engine is not None:
            raise DatabaseError(f"{self.target.display}: a caller's engine lends docq one connection only")
        return self.backend.connect(self.target, self.settings)

    def close(self) -> None:
        """Close the connection (and the ORM's engine, if one was made). Safe to call twice;
        a closed `Database` opens a new connection when it is used again."""
        self._drop_connection()
        if self._orm is not None:
            if self.target.engine is None:
                self._orm.dispose()
            self._orm = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> Any:
        from docq import schema

        path = self.target.path
        if not self.create and path is not None and not os.path.exists(path):
            folder = os.path.dirname(path) or "."
            if not os.path.isdir(folder):
                raise DatabaseError(f"no docq queue at {path}: its folder {folder} does not exist")
            raise DatabaseError(f"no docq queue at {path} yet: `docq enqueue` creates it")
        conn = self._new_connection()
        try:
            self.upgraded_from = schema.ensure(
                conn,
                self.backend,
                self.target.display,
                create=self.create,
                upgrade=self.upgrade,
                clock=self.clock,
            )
            if self.upgraded_from is not None:
                log.warning(
                    "upgraded the queue at %s from schema %d to %d",
                    self.target.display,
                    self.upgraded_from,
                    schema.SCHEMA_VERSION,
                )
        except BaseException:
            self._release(conn)
            raise
        return conn

    def _new_connection(self) -> Any:
        if self.target.engine is None:
            return self.backend.connect(self.target, self.settings)
        lent = self.target.engine.raw_connection()
        try:
            self.backend.configure(lent.dbapi_connection, self.settings)
        except BaseException:
            lent.close()
            raise
        self._lent = lent
        return lent.dbapi_connection

    def _release(self, conn: Any) -> None:
        """Close a connection, or hand a lent one back to its engine's pool."""
        lent, self._lent = self._lent, None
        try:
            if lent is not None:
                lent.close()
            else:
                conn.close()
        except Exception:  # closing a broken connection may raise; it is gone either way
            pass

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._release(conn)

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

    def session(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` with a SQLModel `Session` on this database, for ORM reads, with the
        same lock budget, retries and error translation as `read`. Nothing is committed."""
        from sqlmodel import Session

        def attempt() -> T:
            if self.target.engine is not None:
                # The caller's pool may hand the Session the very connection docq holds:
                # ending the Session would roll the caller's open transaction back.
                self.backend.check_idle(self.connection())
            with Session(self._orm_engine()) as session:
                return fn(session)

        return self._with_budget(attempt, what="read")

    def now(self) -> float:
        """The queue's clock (see `Tx.now`)."""
        return float(self.read(lambda tx: tx.now()))

    def _run(self, fn: Callable[[Tx], T], *, write: bool) -> T:
        with self.backend.transaction(self.connection(), self.clock, write=write) as tx:
            return fn(tx)

    def _orm_engine(self) -> Engine:
        if self._orm is None:
            if self.target.engine is not None:
                self._orm = self.target.engine
            else:
                from sqlalchemy import create_engine
                from sqlalchemy.pool import NullPool

                url = "sqlite://" if self.target.backend == "sqlite" else "postgresql+psycopg://"
                self._orm = create_engine(url, creator=self.connect_raw, poolclass=NullPool)
        assert self._orm is not None
        return self._orm

    # --- maintenance and announcements ---------------------------------------------

    def vacuum(self) -> None:
        """Return free pages to the file system (after a purge) and trim the WAL file."""
        self.backend.vacuum(
            self.connection(), self.write, lambda call: self._with_budget(call, what="vacuum")
        )

    def announce(self, tx: Tx, lane: str) -> None:
        """Tell idle workers that items of ``lane`` were queued (delivered at commit)."""
        self.backend.announce(tx, lane)

    def listener(self) -> Any:
        """A connection that wakes idle workers when items are queued, or None (poll)."""
        return self.backend.listener(self.target, self.settings)

    # --- the lock budget -------------------------------------------------------------

    def _with_budget(self, attempt: Callable[[], T], *, what: str) -> T:
        """Call ``attempt`` until it succeeds, retrying lock contention and lost connections
        with jittered exponential backoff until ``lock_timeout`` seconds have passed."""
        deadline = time.monotonic() + self.settings.lock_timeout
        delay = 0.005
        while True:
            try:
                return attempt()
            except Exception as raised:
                if _pool_exhausted(raised):
                    raise DatabaseBusy(
                        f"database busy: {self.target.display}: the engine's pool had no connection free "
                        "(docq borrows one, and one more for each read of the admin views): make the "
                        "pool larger"
                    ) from raised
                exc = _driver_error(raised)
                kind = self.backend.classify(exc, self._conn)
                if kind is None:
                    if isinstance(exc, DocqError):
                        raise
                    translated = self.backend.translate(exc, self.target.display)
                    if translated is None:
                        raise
                    raise translated from raised
                if kind == "disconnected":
                    self._drop_connection()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if kind == "busy":
                        raise DatabaseBusy(
                            f"database busy: {self.target.display} stayed locked by another process (or "
                            f"another connection's open transaction) for {self.settings.lock_timeout:g}s "
                            "(DOCQ_LOCK_TIMEOUT); nothing was changed, run the command again"
                        ) from raised
                    raise DatabaseUnreachable(
                        f"cannot reach {self.target.display} ({what}): {_first_line(exc)}"
                    ) from raised
                time.sleep(min(remaining, delay * random.uniform(0.5, 1.5)))
                delay = min(delay * 2, 0.25 if kind == "busy" else 2.0)


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own error behind a SQLAlchemy wrapper (ORM reads raise those)."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return exc.orig  # type: ignore[no-any-return]
    return exc


def _pool_exhausted(exc: BaseException) -> bool:
    """Whether a caller's engine had no pooled connection to lend in time."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.TimeoutError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_database(
    db: DatabaseLike,
    settings: Settings | None = None,
    *,
    create: bool = True,
    clock: Callable[[], float] | None = None,
) -> Database:
    """A `Database` for anything a caller may pass as ``db`` (see `DatabaseLike`), on
    exactly that database: an Engine's or Session's own, never the default queue."""
    if isinstance(db, Database):
        if clock is not None:
            db.clock = clock
        return db
    target: Target | str | os.PathLike[str] | None
    if db is None or isinstance(db, str | os.PathLike):
        target = db
    else:
        target = engine_target(_engine_of(db))
    return Database(target, settings, create=create, clock=clock or time.time)


def _engine_of(db: Any) -> Any:
    """The Engine behind a SQLAlchemy Engine, Connection or Session."""
    if hasattr(db, "get_bind"):  # a Session: the engine it is bound to
        try:
            db = db.get_bind()
        except Exception as exc:  # an unbound Session
            raise DatabaseError(f"the Session is not bound to an engine: {exc}") from None
    engine = getattr(db, "engine", None)  # a Connection (an Engine's .engine is itself)
    if engine is None or not hasattr(engine, "raw_connection"):
        raise DatabaseError(
            f"cannot open a queue on {type(db).__name__}: "
            "give a path, a URL, a SQLAlchemy Engine or a Session"
        )
    return engine
