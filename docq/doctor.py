"""``docq doctor``: check the database and the machine, one pass/warn/fail line each.

The checks run even when the database cannot be opened as a docq queue (that is then
the first failure), so that doctor is the command to reach for when something is wrong.
Doctor changes nothing: it creates no queue and upgrades no schema.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from importlib import metadata

from docq import queries as q
from docq.backends import Check, Tx, backend_for
from docq.config import Settings, format_duration, plural
from docq.db import Database, resolve_target
from docq.errors import DocqError
from docq.schema import SCHEMA_VERSION, OutdatedSchema, applied

__all__ = ["Check", "run_checks"]

EXTRACTOR_LIBRARIES = (
    "pypdfium2",
    "pdfminer.six",
    "python-docx",
    "python-pptx",
    "python-calamine",
    "striprtf",
    "olefile",
    "lxml",
    "selectolax",
    "charset-normalizer",
)


def run_checks(target: str | None, settings: Settings) -> list[Check]:
    """Every check, in order. Never raises for a problem with the database: reports it."""
    try:
        where = resolve_target(target)
    except DocqError as exc:
        return [Check("database", "fail", str(exc)), *_library_checks()]
    checks = list(backend_for(where.backend).checks(where))
    if where.path is not None and not os.path.exists(where.path):
        return checks + _library_checks()  # nothing to open, and doctor creates nothing
    try:
        db = Database(where, settings, create=False, upgrade=False)
    except OutdatedSchema as exc:
        detail = (
            f"schema {exc.version}; this docq upgrades it to {SCHEMA_VERSION} with `docq migrate` "
            "(or at the next command that opens it)"
        )
        return [*checks, Check("schema", "warn", detail), *_library_checks()]
    except DocqError as exc:
        return [*checks, Check("database", "fail", str(exc)), *_library_checks()]
    with db:
        checks.extend(db.read(_queue_checks))
    return checks + _library_checks()


def _queue_checks(tx: Tx) -> list[Check]:
    checks = [_schema_check(tx), tx.backend.durability(tx)]
    now = tx.now()
    expired = tx.all(q.EXPIRED_LEASES, {"now": now})
    if expired:
        oldest = format_duration(now - expired[0][2])
        detail = (
            f"{plural(len(expired), 'in-progress item')} past their lease (oldest {oldest} ago, e.g. item "
            f"{expired[0][0]} of {expired[0][1]}); the next `docq work` takes them over"
        )
        checks.append(Check("expired leases", "warn", detail))
    else:
        checks.append(Check("expired leases", "pass", "none"))
    dead = tx.all(q.DEAD_WORKERS, {"now": now})
    if dead:
        names = ", ".join(row[0] for row in dead[:3])
        checks.append(
            Check("dead workers", "warn", f"{plural(len(dead), 'worker')} stopped heartbeating: {names}")
        )
    else:
        checks.append(Check("dead workers", "pass", "none"))
    kept = sorted(map(tuple, tx.all(q.COUNTS)))
    real = sorted(map(tuple, tx.all(q.COUNT_ITEMS)))
    if kept == real:
        checks.append(Check("counters", "pass", "stats counters match the items"))
    else:
        checks.append(
            Check("counters", "fail", "stats counters disagree with the items (report this as a bug)")
        )
    return checks


def _schema_check(tx: Tx) -> Check:
    history = applied(tx)
    last = history[-1] if history else None
    detail = f"docq schema {SCHEMA_VERSION}, up to date"
    if last is not None and last["applied_at"] is not None:
        day = datetime.fromtimestamp(float(last["applied_at"]), UTC).strftime("%Y-%m-%d")
        detail += f" (migration {last['version']} applied {day})"
    return Check("schema", "pass", detail)


def _library_checks() -> list[Check]:
    checks = []
    for name in EXTRACTOR_LIBRARIES:
        try:
            checks.append(Check(name, "pass", metadata.version(name)))
        except metadata.PackageNotFoundError:
            checks.append(Check(name, "fail", "not installed: reinstall docq"))
    return checks
