"""What every backend does, and `Tx`, the cursor through which all of docq's SQL runs.

docq writes its SQL once, with ``:name`` parameters (see `docq.queries`). A statement
that must differ between backends is a *variant*, a mapping from backend name to SQL,
and `Tx` picks the backend's text: no module outside `docq.backends` asks which backend
is in use. An empty variant text means "nothing to run on this backend".
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from docq.config import Settings
    from docq.errors import DocqError

BackendName = Literal["sqlite", "postgresql"]
Sql = str | Mapping[str, str]
"""A statement: one text for every backend, or a variant ``{backend name: text}``."""
Params = Mapping[str, Any] | Sequence[Any]
Failure = Literal["busy", "disconnected"]
Level = Literal["pass", "warn", "fail"]
Retry = Callable[[Callable[[], Any]], Any]
"""Runs a call within the lock budget, retrying lock contention and lost connections."""


@dataclass(frozen=True)
class Check:
    """One finding about the database or the machine, as ``docq doctor`` reports it."""

    name: str
    level: Level
    detail: str


@dataclass(frozen=True)
class SchemaMark:
    """What a database says about itself before docq touches it: whether it is a docq
    queue and of which schema version (0: none yet), and the tables of another program
    that stand where docq's would go (then it is not docq's to change)."""

    version: int
    refusal: str | None = None  # why it is not docq's to change: "is not a docq database ..."

    @property
    def empty(self) -> bool:
        """A new or empty database: no docq schema and nothing else in the way."""
        return self.version == 0 and self.refusal is None


class Tx:
    """A cursor inside one transaction, taking docq's SQL (``:name`` parameters, variants)
    on either backend. A list or tuple parameter expands in place, for ``IN (:ids)``."""

    __slots__ = ("_name", "_translate", "backend", "clock", "cursor")

    def __init__(self, cursor: Any, backend: Backend, clock: Callable[[], float]) -> None:
        self.cursor = cursor
        self.backend = backend
        self.clock = clock
        self._name = backend.name
        self._translate = backend.prepare if backend.translates else None

    def execute(self, sql: Sql, params: Params = ()) -> Any:
        """Run one statement; returns the cursor (iterate it, or fetchone/fetchall).
        A variant with no text for this backend runs nothing (and returns the cursor)."""
        # The claim/complete hot path runs through here: plain type checks, no copies.
        if type(sql) is not str:
            sql = sql[self._name]  # type: ignore[index]
        if type(params) is dict:
            for value in params.values():
                if type(value) is list or type(value) is tuple:
                    sql, params = _expand(sql, params)
                    break
        if self._translate is not None:
            sql = self._translate(sql)
        if sql:
            self.cursor.execute(sql, params)
        return self.cursor

    def executemany(self, sql: Sql, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter set (no list expansion here)."""
        text = sql if type(sql) is str else sql[self._name]  # type: ignore[index]
        if self._translate is not None:
            text = self._translate(text)
        if text:
            self.cursor.executemany(text, rows)

    def all(self, sql: Sql, params: Params = ()) -> list[Any]:
        """All rows, as tuples."""
        return list(self.execute(sql, params).fetchall())

    def one(self, sql: Sql, params: Params = ()) -> Any:
        """The first row, or None."""
        return self.execute(sql, params).fetchone()

    def scalar(self, sql: Sql, params: Params = ()) -> Any:
        """The first column of the first row, or None."""
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def dicts(self, sql: Sql, params: Params = ()) -> list[dict[str, Any]]:
        """All rows, as dicts keyed by column name."""
        cursor = self.execute(sql, params)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def now(self) -> float:
        """The queue's clock, as Unix seconds: the caller's clock on SQLite, the server's
        on PostgreSQL (so that workers with skewed clocks agree on leases and due times)."""
        return self.backend.now(self)


def _expand(sql: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``IN (:ids)`` with ``ids=[1, 2]`` becomes ``IN (:ids_0, :ids_1)``; an empty list
    becomes ``IN (NULL)``, which matches nothing."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, list | tuple):
            sql = _expanded_sql(sql, name, len(value))
            flat.update((f"{name}_{i}", item) for i, item in enumerate(value))
        else:
            flat[name] = value
    return sql, flat


@lru_cache(maxsize=256)
def _expanded_sql(sql: str, name: str, count: int) -> str:
    marks = ", ".join(f":{name}_{i}" for i in range(count)) or "NULL"
    return re.sub(rf"(?<![:\w]):{name}\b", marks, sql)


class Backend(ABC):
    """One kind of database docq can keep a queue in. Every difference between SQLite and
    PostgreSQL lives in a subclass; everything else in docq is written once.

    A backend is stateless: the `Database` that owns the connection passes it in.
    """

    name: BackendName
    translates: bool = False
    """Whether docq's SQL needs `prepare` before the driver takes it."""

    # --- connections and transactions ----------------------------------------------

    @abstractmethod
    def connect(self, target: Any, settings: Settings) -> Any:
        """A new DB-API connection to ``target`` (a `docq.db.Target` with a path or a URL),
        configured for docq. Raises `DatabaseError` when the driver is not installed or the
        file cannot be created; a driver's own error (refused, unknown database) otherwise,
        which `docq.db.Database` retries or translates."""

    @abstractmethod
    def configure(self, conn: Any, settings: Settings) -> None:
        """Set a connection up for docq (durability, foreign keys, timeouts); also applied
        to a connection lent by a library caller's engine. Raises `DatabaseError` for a
        connection of a driver docq cannot use."""

    def check_idle(self, conn: Any) -> None:
        """Raise `DatabaseError` if ``conn`` (lent by a caller's engine) has a transaction
        of the caller's open: docq must neither commit nor roll back someone else's work."""
        return None

    @abstractmethod
    def begin(self, conn: Any, cursor: Any, *, write: bool) -> Any:
        """Start a transaction on ``conn``: a write transaction takes the write lock at once
        (SQLite's ``BEGIN IMMEDIATE``), so that it can never fail half-way on a lock.
        Returns what `end` needs to restore the connection afterwards."""

    @abstractmethod
    def end(self, conn: Any, cursor: Any, state: Any, *, commit: bool) -> None:
        """Commit (or roll back) the transaction `begin` started, and restore the connection."""

    @contextmanager
    def transaction(self, conn: Any, clock: Callable[[], float], *, write: bool) -> Iterator[Tx]:
        """One transaction on ``conn``: committed when the block ends, rolled back if it
        raises (a rollback that fails too, on a broken connection, raises instead)."""
        cursor = conn.cursor()
        try:
            state = self.begin(conn, cursor, write=write)
            try:
                yield Tx(cursor, self, clock)
            except BaseException as exc:
                try:
                    self.end(conn, cursor, state, commit=False)
                except Exception:
                    if isinstance(exc, Exception):
                        raise
                raise
            self.end(conn, cursor, state, commit=True)
        finally:
            cursor.close()

    @abstractmethod
    def classify(self, exc: BaseException, conn: Any) -> Failure | None:
        """``busy`` for lock contention worth waiting out, ``disconnected`` for a lost
        connection worth reopening, None for anything else (it is not retried)."""

    @abstractmethod
    def translate(self, exc: BaseException, where: str) -> DocqError | None:
        """A driver error about the database itself (corrupt, read-only, not a docq
        database, a permission) as one line for the user; None for anything else."""

    def prepare(self, sql: str) -> str:
        """docq's SQL in the driver's dialect (``:name`` parameters, ``:now``)."""
        return sql

    @abstractmethod
    def now(self, tx: Tx) -> float:
        """The queue's clock inside ``tx`` (see `Tx.now`)."""

    # --- schema ----------------------------------------------------------------------

    @abstractmethod
    def read_mark(self, tx: Tx, tables: Sequence[str]) -> SchemaMark:
        """Whether the database is a docq queue and of which schema version, read inside
        ``tx``. ``tables`` are docq's table names: finding one without docq's mark means
        another program's data. The driver raises if it is not a database at all."""

    def prepare_new(self, conn: Any) -> None:
        """Settings a new database needs before its first table (outside any transaction)."""
        return None  # none, unless a backend says otherwise

    def schema_lock(self, conn: Any) -> AbstractContextManager[None]:
        """Hold every other docq process off the schema while it is created or upgraded.
        Taken before the write transaction that changes the schema begins, so that the
        transaction sees what another process did while this one waited. By default the
        write transaction's own lock suffices."""
        return nullcontext()

    @abstractmethod
    def write_mark(self, tx: Tx, version: int) -> None:
        """Mark the database as a docq queue of schema ``version``."""

    @abstractmethod
    def opened(self, conn: Any) -> None:
        """Put a docq database found in another state back in docq's (SQLite: WAL)."""

    @abstractmethod
    def dialect(self) -> Any:
        """The SQLAlchemy dialect that compiles the SQLModel tables' DDL."""

    # --- maintenance and announcements -----------------------------------------------

    @abstractmethod
    def vacuum(self, conn: Any, write: Callable[[Callable[[Tx], None]], None], retry: Retry) -> None:
        """Return free space to the file system (after a purge). ``write`` runs a function
        in a write transaction within the lock budget; ``retry`` runs any call within it."""

    def announce(self, tx: Tx, lane: str) -> None:
        """Tell idle workers that items of ``lane`` were queued (delivered at commit).
        Backends without notifications do nothing: their workers poll."""
        return None

    def listener(self, target: Any, settings: Settings) -> Any:
        """A connection that wakes idle workers on `announce`, or None (workers poll)."""
        return None

    def file_identity(self, target: Any) -> Any:
        """What identifies the files under an open connection to ``target``, to compare
        later with `replaced_files`; None where there are no files of docq's to watch."""
        return None

    def replaced_files(self, before: Any, target: Any) -> list[str]:
        """The files of ``before`` (a `file_identity`) deleted or replaced on disk since."""
        return []

    def checks(self, target: Any) -> Iterator[Check]:
        """What ``docq doctor`` can say about the database before opening it (its file,
        its file system, its integrity), read without changing anything."""
        return iter(())

    def durability(self, tx: Tx) -> Check:
        """Whether an acknowledged commit survives a power loss, as configured."""
        return Check("durability", "pass", "as the server is configured")
