"""SQLite, the default backend: a queue in one file on this machine.

The rules the whole of docq relies on:

* WAL journal, so readers never block the writer and the writer never blocks readers;
* every write transaction starts with ``BEGIN IMMEDIATE``: a deferred transaction that
  reads and then writes fails with "database is locked" whatever busy_timeout says;
* ``synchronous=FULL`` unless the user opts into ``normal``;
* ``SQLITE_BUSY`` is retried by `docq.db.Database` within one total lock budget.

A database is docq's when it carries ``PRAGMA application_id`` = ``docq``; its schema
version is ``PRAGMA user_version``, readable before any table is.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from docq.backends import sqlite_files
from docq.backends.base import Backend, Check, Failure, Level, Retry, SchemaMark, Tx
from docq.config import Settings, plural
from docq.errors import DatabaseError, DocqError

APPLICATION_ID = 0x646F6371
"""``PRAGMA application_id`` of a docq database (the bytes of ``docq``)."""

WAL_WARN_BYTES = 256 * 1024 * 1024
NETWORK_FILESYSTEMS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "fuse.sshfs",
    "9p",
    "afs",
    "ceph",
    "glusterfs",
    "lustre",
}


class SqliteBackend(Backend):
    """A queue in a SQLite file (or, from a library caller's engine, in memory)."""

    name = "sqlite"

    # --- connections and transactions ----------------------------------------------

    def connect(self, target: Any, settings: Settings) -> Any:
        path = target.path
        _create_private_file(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, cached_statements=256)
        except sqlite3.Error as exc:
            raise DatabaseError(f"cannot open {path}: {exc}") from exc
        try:
            self.configure(conn, settings)
        except sqlite3.Error:
            conn.close()
            raise
        return conn

    def configure(self, conn: Any, settings: Settings) -> None:
        if not isinstance(conn, sqlite3.Connection):
            raise DatabaseError(
                "an SQLite engine must use Python's sqlite3 driver (sqlite:// or sqlite+pysqlite://)"
            )
        self.check_idle(conn)
        # A short busy wait inside SQLite; the lock budget retries around it.
        conn.execute(f"PRAGMA busy_timeout={int(min(settings.lock_timeout, 1.0) * 1000)}")
        # FULL: an acknowledged commit survives power loss. NORMAL (opt-in) may lose the
        # last commits on power loss, never on a process crash.
        conn.execute(f"PRAGMA synchronous={settings.synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys=ON")

    def begin(self, conn: Any, cursor: Any, *, write: bool) -> Any:
        # docq runs its own BEGIN; a connection lent by a caller's engine may be in
        # Python's implicit-transaction mode, which is put back afterwards. Leaving that
        # mode would commit the caller's open transaction: refuse instead.
        self.check_idle(conn)
        previous = conn.isolation_level
        if previous is not None:
            conn.isolation_level = None
        try:
            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            conn.isolation_level = previous
            raise
        return previous

    def end(self, conn: Any, cursor: Any, state: Any, *, commit: bool) -> None:
        try:
            if commit:
                cursor.execute("COMMIT")
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            if state is not None:
                conn.isolation_level = state

    def check_idle(self, conn: Any) -> None:
        if conn.in_transaction:
            raise DatabaseError(
                "the connection has a transaction open (a Session's uncommitted work?): "
                "commit or roll it back before using the queue"
            )

    def classify(self, exc: BaseException, conn: Any) -> Failure | None:
        if isinstance(exc, sqlite3.OperationalError):
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc):
                return "busy"
        return None

    def translate(self, exc: BaseException, where: str) -> DocqError | None:
        if isinstance(exc, sqlite3.ProgrammingError) and "same thread" in str(exc):
            return DatabaseError(
                f"{where}: a docq queue object belongs to the thread that opened it: open one per thread"
            )
        if not isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) or isinstance(
            exc, sqlite3.ProgrammingError | sqlite3.InterfaceError
        ):
            return None
        message = _first_line(exc)
        if "not a database" in message:
            return DatabaseError(f"{where} is not a docq database (not an SQLite file)")
        if "malformed" in message or "corrupt" in message:
            return DatabaseError(
                f"{where} is corrupt ({message}): restore it from a backup, or save what can still be "
                f"read: `sqlite3 {where} .recover | sqlite3 recovered.db`, or `docq copy --to NEW` "
                "(it stops at the first damaged page)"
            )
        if "readonly" in message or "read-only" in message:
            return DatabaseError(f"{where} is read-only: docq needs to write to it and its directory")
        if "unable to open" in message:
            return DatabaseError(f"cannot open {where}: check that it and its directory are writable")
        return DatabaseError(f"{where}: {message}")

    def now(self, tx: Tx) -> float:
        return tx.clock()

    # --- schema ----------------------------------------------------------------------

    def read_mark(self, tx: Tx, tables: Sequence[str]) -> SchemaMark:
        # Read in one transaction: a process creating the schema meanwhile must not make a
        # fresh docq file look like a foreign one. The first read also fails with "file is
        # not a database" on a file that isn't one.
        app_id, version = tx.one("SELECT * FROM pragma_application_id, pragma_user_version")
        has_tables = tx.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table'") > 0
        if app_id == APPLICATION_ID:
            if version < 1:
                return SchemaMark(0, refusal="has no docq schema version: not a docq database")
            return SchemaMark(int(version))
        if app_id != 0 or has_tables:
            return SchemaMark(
                0, refusal="is not a docq database (it holds another program's data); left untouched"
            )
        return SchemaMark(0)

    def prepare_new(self, conn: Any) -> None:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only possible before the first table
        conn.execute("PRAGMA journal_mode=WAL")

    def write_mark(self, tx: Tx, version: int) -> None:
        tx.execute(f"PRAGMA application_id={APPLICATION_ID}")
        tx.execute(f"PRAGMA user_version={int(version)}")

    def opened(self, conn: Any) -> None:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
            conn.execute("PRAGMA journal_mode=WAL")

    def dialect(self) -> Any:
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect()

    # --- maintenance -----------------------------------------------------------------

    def vacuum(self, conn: Any, write: Callable[[Callable[[Tx], None]], None], retry: Retry) -> None:
        # Python's sqlite3 steps a statement without result rows once, and each step of
        # incremental_vacuum frees one page: repeat until the free list is empty.
        def free_pages(tx: Tx) -> None:
            while tx.scalar("PRAGMA freelist_count"):
                tx.execute("PRAGMA incremental_vacuum")

        write(free_pages)
        retry(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    def durability(self, tx: Tx) -> Check:
        level = int(tx.scalar("PRAGMA synchronous"))
        name = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(level, str(level))
        if name in ("FULL", "EXTRA"):
            return Check("synchronous", "pass", name)
        return Check("synchronous", "warn", f"{name} (the last commits may be lost on power loss)")

    def file_identity(self, target: Any) -> Any:
        return None if target.path is None else sqlite_files.file_identity(target.path)

    def replaced_files(self, before: Any, target: Any) -> list[str]:
        if not before or target.path is None:
            return []
        return sqlite_files.replaced_files(before, sqlite_files.file_identity(target.path))

    def checks(self, target: Any) -> Iterator[Check]:
        """The file, its file system, and (opened read-only, so that this works even on a
        file docq would refuse) its integrity, journal mode and WAL size."""
        path = target.path
        if path is None:  # a caller's in-memory engine: nothing on disk to check
            return
        if not os.path.exists(path):
            yield Check("database file", "warn", f"{path} does not exist yet (created on first use)")
            directory = os.path.dirname(path)
            if not os.path.isdir(directory):
                yield Check("database", "fail", f"directory {directory} does not exist")
            return
        yield Check("database file", "pass", f"{path} ({_human(os.path.getsize(path))})")
        fs_type = _filesystem_type(path)
        if fs_type in NETWORK_FILESYSTEMS:
            yield Check(
                "filesystem",
                "warn",
                f"{fs_type}: SQLite locking is unreliable on network filesystems; "
                "use PostgreSQL for workers on several hosts (see README, Scaling out)",
            )
        else:
            yield Check("filesystem", "pass", fs_type or "local")
        yield from _file_integrity(path)
        yield _deleted_files_check(path)


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


def _file_integrity(path: str) -> Iterator[Check]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        yield Check("integrity", "fail", f"cannot open: {exc}")
        return
    try:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
        if rows == ["ok"]:
            yield Check("integrity", "pass", "integrity_check ok")
        else:
            problems = " ".join(" ".join(rows[:5]).split())  # one line, however SQLite words it
            yield Check("integrity", "fail", f"{problems} (restore from a backup)")
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        level: Level = "pass" if journal.lower() == "wal" else "warn"
        yield Check("journal mode", level, journal)
    except sqlite3.Error as exc:
        yield Check("integrity", "fail", f"{exc} (the file is damaged or not a database)")
    finally:
        conn.close()
    wal = path + "-wal"
    wal_size = os.path.getsize(wal) if os.path.exists(wal) else 0
    wal_level: Level = "warn" if wal_size > WAL_WARN_BYTES else "pass"
    hint = " (a long-running reader stops checkpoints)" if wal_level == "warn" else ""
    yield Check("WAL file", wal_level, f"{_human(wal_size)}{hint}")


def _deleted_files_check(path: str) -> Check:
    holders = list(sqlite_files.holders_of_deleted(path))
    if not holders:
        return Check("deleted files", "pass", "no process holds a deleted file of this database")
    first = holders[0]
    detail = (
        f"{plural(len(holders), 'process holds', 'processes hold')} a deleted "
        f"{os.path.basename(first.file)}, e.g. pid {first.pid} "
        f"({first.command}): what they write is lost; stop them and start them again"
    )
    return Check("deleted files", "warn", detail)


def _filesystem_type(path: str) -> str | None:
    """The type of the filesystem holding ``path``, from /proc/mounts (Linux)."""
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            entries = [line.split() for line in mounts]
    except OSError:
        return None
    real = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for entry in entries:
        if len(entry) < 3:
            continue
        mount_point = entry[1].replace("\\040", " ")
        inside = real == mount_point or real.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), entry[2])
    return best[1] if best else None


def _human(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
