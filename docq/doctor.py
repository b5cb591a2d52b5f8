"""``docq doctor``: check the database and the machine, one pass/warn/fail line each.

The checks run even when the database cannot be opened as a docq queue (that is then
the first failure), so that doctor is the command to reach for when something is wrong.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Literal

from docq.config import Settings, format_duration
from docq.db import Database, Target, resolve_target
from docq.errors import DocqError
from docq.schema import SCHEMA_VERSION

Level = Literal["pass", "warn", "fail"]

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
EXTRACTOR_LIBRARIES = ("pypdfium2", "pdfminer.six", "python-docx", "selectolax", "charset-normalizer")


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    level: Level
    detail: str


def run_checks(target: str | None, settings: Settings) -> list[Check]:
    """Every check, in order. Never raises for a problem with the database: reports it."""
    checks: list[Check] = []
    try:
        where = resolve_target(target)
    except DocqError as exc:
        return [Check("database", "fail", str(exc))]
    if where.backend == "sqlite":
        checks.extend(_sqlite_file_checks(where))
        if where.path is not None and not os.path.exists(where.path):
            directory = os.path.dirname(where.path)
            if not os.path.isdir(directory):
                checks.append(Check("database", "fail", f"directory {directory} does not exist"))
            return checks + _library_checks()  # nothing to open, and doctor creates nothing
    try:
        db = Database(where, settings)
    except DocqError as exc:
        checks.append(Check("database", "fail", str(exc)))
        checks.extend(_library_checks())
        return checks
    with db:
        checks.append(Check("schema", "pass", f"docq schema {SCHEMA_VERSION}"))
        checks.extend(_queue_checks(db))
    checks.extend(_library_checks())
    return checks


def _sqlite_file_checks(where: Target) -> list[Check]:
    assert where.path is not None
    path = where.path
    if not os.path.exists(path):
        return [Check("database file", "warn", f"{path} does not exist yet (created on first use)")]
    checks = [Check("database file", "pass", f"{path} ({_size(path)})")]
    fs_type = _filesystem_type(path)
    if fs_type in NETWORK_FILESYSTEMS:
        checks.append(
            Check(
                "filesystem",
                "warn",
                f"{fs_type}: SQLite locking is unreliable on network filesystems; "
                "use PostgreSQL for workers on several hosts (see README, Scaling out)",
            )
        )
    else:
        checks.append(Check("filesystem", "pass", fs_type or "local"))
    checks.extend(_sqlite_engine_checks(path))
    return checks


def _sqlite_engine_checks(path: str) -> list[Check]:
    """Integrity, journal mode, synchronous and WAL size, read with a plain connection so
    they work even on a file docq would refuse to open."""
    checks: list[Check] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return [Check("integrity", "fail", f"cannot open: {exc}")]
    try:
        rows = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
        if rows == ["ok"]:
            checks.append(Check("integrity", "pass", "integrity_check ok"))
        else:
            problems = " ".join(" ".join(rows[:5]).split())  # one line, however SQLite words it
            checks.append(Check("integrity", "fail", f"{problems} (restore from a backup)"))
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        level: Level = "pass" if journal.lower() == "wal" else "warn"
        checks.append(Check("journal mode", level, journal))
    except sqlite3.Error as exc:
        checks.append(Check("integrity", "fail", f"{exc} (the file is damaged or not a database)"))
    finally:
        conn.close()
    wal = path + "-wal"
    wal_size = os.path.getsize(wal) if os.path.exists(wal) else 0
    wal_level: Level = "warn" if wal_size > WAL_WARN_BYTES else "pass"
    hint = " (a long-running reader stops checkpoints)" if wal_level == "warn" else ""
    checks.append(Check("WAL file", wal_level, f"{_human(wal_size)}{hint}"))
    return checks


def _queue_checks(db: Database) -> list[Check]:
    checks: list[Check] = []
    if db.backend == "sqlite":
        level = db.read(lambda tx: tx.scalar("PRAGMA synchronous"))
        name = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(int(level), str(level))
        sync_level: Level = "pass" if name in ("FULL", "EXTRA") else "warn"
        note = "" if sync_level == "pass" else " (the last commits may be lost on power loss)"
        checks.append(Check("synchronous", sync_level, name + note))
    now = time.time() if db.backend == "sqlite" else float(db.read(lambda tx: tx.scalar("SELECT :now")))
    expired = db.read(
        lambda tx: tx.all(
            "SELECT id, worker_id, lease_expires_at FROM queue_items "
            "WHERE status = 'in_progress' AND lease_expires_at < :now ORDER BY lease_expires_at",
            {"now": now},
        )
    )
    if expired:
        oldest = format_duration(now - expired[0][2])
        detail = (
            f"{len(expired)} in-progress item(s) past their lease (oldest {oldest} ago, e.g. item "
            f"{expired[0][0]} of {expired[0][1]}); the next `docq work` takes them over"
        )
        checks.append(Check("expired leases", "warn", detail))
    else:
        checks.append(Check("expired leases", "pass", "none"))
    dead = db.read(
        lambda tx: tx.all(
            "SELECT id, heartbeat_at FROM workers "
            "WHERE stopped_at IS NULL AND heartbeat_at < :now - lease_seconds",
            {"now": now},
        )
    )
    if dead:
        names = ", ".join(row[0] for row in dead[:3])
        checks.append(Check("dead workers", "warn", f"{len(dead)} worker(s) stopped heartbeating: {names}"))
    else:
        checks.append(Check("dead workers", "pass", "none"))
    if db.backend == "sqlite":
        checks.append(_counter_check(db))
    return checks


def _counter_check(db: Database) -> Check:
    kept = db.read(lambda tx: tx.all("SELECT operation, status, n FROM queue_counts WHERE n <> 0"))
    real = db.read(
        lambda tx: tx.all("SELECT operation, status, count(*) FROM queue_items GROUP BY operation, status")
    )
    if sorted(map(tuple, kept)) == sorted(map(tuple, real)):
        return Check("counters", "pass", "stats counters match the items")
    return Check("counters", "fail", "stats counters disagree with the items (report this as a bug)")


def _library_checks() -> list[Check]:
    checks = []
    for name in EXTRACTOR_LIBRARIES:
        try:
            checks.append(Check(name, "pass", metadata.version(name)))
        except metadata.PackageNotFoundError:
            checks.append(Check(name, "fail", "not installed: reinstall docq"))
    return checks


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


def _size(path: str) -> str:
    return _human(os.path.getsize(path))


def _human(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"
