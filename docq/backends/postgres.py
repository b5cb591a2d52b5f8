"""PostgreSQL, for workers on several hosts (``pip install "docq[postgres]"``, psycopg 3).

Claims lock the rows they pick with ``FOR UPDATE SKIP LOCKED``, so workers never wait on
each other; ``:now`` in docq's SQL is the server's clock, so that a worker whose clock is
wrong can neither steal leases nor run items early; an enqueue announces itself with
``NOTIFY`` so that idle workers wake at once. A database is docq's when it has the
``docq_meta`` table, which holds the schema version.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from docq.backends.base import Backend, Check, Failure, Retry, SchemaMark, Tx
from docq.config import Settings
from docq.errors import DatabaseError, DocqError

INSTALL_HINT = 'PostgreSQL support is not installed: pip install "docq[postgres]"'
NOTIFY_CHANNEL = "docq_queue"
SCHEMA_LOCK = 0x646F6371
"""Advisory lock that serialises processes creating or upgrading the schema."""
VACUUMED = ("attempts", "item_outputs", "queue_items", "documents")
"""The tables a purge shrinks."""

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


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise DatabaseError(INSTALL_HINT) from exc
    return psycopg


class PostgresBackend(Backend):
    """A queue in a PostgreSQL database (or in the schema its ``search_path`` names)."""

    name = "postgresql"
    translates = True

    # --- connections and transactions ----------------------------------------------

    def connect(self, target: Any, settings: Settings) -> Any:
        psycopg = _psycopg()
        url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", target.url or "")
        return psycopg.connect(url, connect_timeout=max(2, min(10, int(settings.lock_timeout))))

    def configure(self, conn: Any, settings: Settings) -> None:
        psycopg = _psycopg()
        if not isinstance(conn, psycopg.Connection):
            raise DatabaseError("a PostgreSQL engine must use psycopg 3 (postgresql+psycopg://)")

    def begin(self, conn: Any, cursor: Any, *, write: bool) -> Any:
        return None  # psycopg opens the transaction with the first statement

    def end(self, conn: Any, cursor: Any, state: Any, *, commit: bool) -> None:
        if commit:
            conn.commit()
        else:
            conn.rollback()

    def classify(self, exc: BaseException, conn: Any) -> Failure | None:
        import sys

        psycopg = sys.modules.get("psycopg")  # not imported: not a psycopg error either
        if psycopg is None:
            return None
        errors = psycopg.errors
        if isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected | errors.LockNotAvailable):
            return "busy"
        if isinstance(exc, errors.UniqueViolation):
            # A concurrent transaction queued the same document first: run ours again,
            # and its "already queued" check now sees the other's item.
            return "busy"
        if isinstance(exc, errors.ForeignKeyViolation):
            # A purge and an enqueue raced over one document: the purge deleted it while the
            # enqueue gave it a new item (or the other way round). Run ours again: the purge
            # then sees the new item and keeps the document; the enqueue registers it anew.
            return "busy"
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            # Class 08 and 57P01-57P03: the server closed the connection, is shutting down
            # or starting. Without a SQLSTATE, libpq's own words tell a lost or refused
            # connection (worth waiting for) from a wrong password or database.
            state = getattr(exc, "sqlstate", None)
            if state is not None:
                return "disconnected" if state.startswith("08") or state in _SERVER_GOING else None
            message = str(exc).lower()
            if any(sign in message for sign in _CONNECTION_LOST):
                return "disconnected"
            if isinstance(exc, psycopg.InterfaceError) or (conn is not None and conn.closed):
                return "disconnected"
        return None

    def translate(self, exc: BaseException, where: str) -> DocqError | None:
        import sys

        psycopg = sys.modules.get("psycopg")
        if psycopg is not None and isinstance(exc, psycopg.Error):
            # A missing schema or database, a permission, a server-side limit: all about
            # the database the user pointed at, said in PostgreSQL's own first line.
            text = str(exc).strip()
            return DatabaseError(f"{where}: {text.splitlines()[0] if text else type(exc).__name__}")
        return None

    def prepare(self, sql: str) -> str:
        return _pg_sql(sql)

    def now(self, tx: Tx) -> float:
        return float(tx.scalar("SELECT :now"))

    # --- schema ----------------------------------------------------------------------

    def read_mark(self, tx: Tx, tables: Sequence[str]) -> SchemaMark:
        found = ", ".join(f"to_regclass('{table}')::text" for table in tables) or "NULL"
        has_meta, foreign = tx.one(
            f"SELECT to_regclass('docq_meta') IS NOT NULL, array_remove(ARRAY[{found}], NULL)"
        )
        if not has_meta:
            if foreign:
                return SchemaMark(
                    0,
                    refusal=f"holds tables named like docq's ({', '.join(foreign)}) that are not docq's; "
                    "left untouched (use another database or schema)",
                )
            return SchemaMark(0)
        version = int(tx.scalar("SELECT value FROM docq_meta WHERE key = 'schema_version'") or 0)
        if version < 1:
            return SchemaMark(0, refusal="has no docq schema version: not a docq database")
        return SchemaMark(version)

    @contextmanager
    def schema_lock(self, conn: Any) -> Iterator[None]:
        # A session lock, taken in a transaction of its own: the schema's transaction then
        # starts after the wait, and so sees (catalog caches included) a schema that
        # another process created meanwhile.
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        conn.commit()
        try:
            yield
        finally:
            try:
                conn.rollback()
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
                conn.commit()
            except Exception:  # a broken connection has let go of its locks already
                pass

    def write_mark(self, tx: Tx, version: int) -> None:
        pass  # docq_meta, written by the schema, is the mark

    def opened(self, conn: Any) -> None:
        pass

    def dialect(self) -> Any:
        from sqlalchemy.dialects import postgresql

        return postgresql.dialect()  # type: ignore[no-untyped-call]

    # --- maintenance and announcements -----------------------------------------------

    def vacuum(self, conn: Any, write: Callable[[Callable[[Tx], None]], None], retry: Retry) -> None:
        def vacuum_tables() -> None:
            conn.rollback()
            conn.autocommit = True  # VACUUM cannot run inside a transaction
            try:
                for table in VACUUMED:
                    conn.execute(f"VACUUM (ANALYZE) {table}")
            finally:
                conn.autocommit = False

        retry(vacuum_tables)

    def announce(self, tx: Tx, lane: str) -> None:
        tx.execute("SELECT pg_notify(:channel, :lane)", {"channel": NOTIFY_CHANNEL, "lane": lane})

    def listener(self, target: Any, settings: Settings) -> Listener:
        return Listener(lambda: self.connect(target, settings))

    def durability(self, tx: Tx) -> Check:
        setting = str(tx.scalar("SHOW synchronous_commit"))
        if setting == "off":
            return Check("synchronous_commit", "warn", "off (the last commits may be lost on a server crash)")
        return Check("synchronous_commit", "pass", setting)


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """docq's SQL for psycopg: ``:name`` to ``%(name)s``, ``:now`` to the server's clock."""
    sql = sql.replace("%", "%%")
    sql = re.sub(r"(?<![:\w]):now\b", "(EXTRACT(EPOCH FROM now())::float8)", sql)
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)


class Listener:
    """A PostgreSQL connection that LISTENs for enqueue announcements.

    Readable (``fileno()``) when an announcement may have arrived; `drain` says whether
    one did. If the connection drops, it reconnects on the next `drain`; meanwhile the
    worker still polls, so nothing waits longer than the poll interval.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._open = connect
        self._conn: Any = None
        self._idle = socket.socketpair()  # stands in, never readable, while disconnected
        self._retry_at = 0.0
        self._connect()

    @property
    def connected(self) -> bool:
        """Whether announcements can arrive now."""
        return self._conn is not None and not self._conn.closed

    def _connect(self) -> None:
        psycopg = _psycopg()
        if time.monotonic() < self._retry_at:
            return
        self._retry_at = time.monotonic() + 5.0
        try:
            conn = self._open()
            conn.autocommit = True
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except (psycopg.Error, DatabaseError):
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
        psycopg = _psycopg()
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
