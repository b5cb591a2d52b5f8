"""What every part of ``docq bench`` shares: the report, the options, scratch databases.

Everything runs on temporary databases (a scratch file beside ``--db`` for SQLite, a
scratch schema for PostgreSQL) and temporary documents, removed afterwards. Times on a
shared machine drift, so the figures that matter are ratios taken in one run: docq
against the same SQL on a bare sqlite3 connection, against pypdfium2 called directly,
against huey (when installed), and at 1,000 against 1,000,000 pending items.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from docq.config import Settings
from docq.processing import FileFacts
from docq.queue import DocumentQueueService


@dataclass
class Measure:
    """One line of the report."""

    section: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""


@dataclass(frozen=True)
class BenchOptions:
    """Sizes of each part; ``quick`` shrinks them all (for tests)."""

    files: int = 10_000
    items: int = 5_000
    texts: int = 5_000
    pdfs: int = 150
    pages: int = 10
    small_pdfs: int = 400
    top_items: int = 100_000
    uploads: int = 2_000  # docq bench --web: uploads to each server
    large: bool = False
    target: str | None = None  # --db: where the scratch databases go

    def quick(self) -> BenchOptions:
        """A run of a few seconds that still reports every figure."""
        return replace(
            self,
            files=300,
            items=300,
            texts=200,
            pdfs=4,
            pages=3,
            small_pdfs=20,
            top_items=1_000,
            uploads=200,
        )


@dataclass
class Report:
    """All measures, in order, plus what the run was."""

    measures: list[Measure] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def add(self, measure: Measure) -> Measure:
        self.measures.append(measure)
        return measure


Progress = Callable[[str], None]


def machine(settings: Settings) -> dict[str, Any]:
    import platform

    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "synchronous": settings.synchronous,
    }


@contextmanager
def scratch_database(options: BenchOptions, scratch: str, name: str) -> Iterator[str]:
    """A fresh database target: a file in ``scratch`` (or beside ``--db``), or a
    temporary schema in ``--db``'s PostgreSQL database, dropped afterwards."""
    target = options.target
    if target is None or not target.startswith("postgres"):
        directory = scratch if target is None else os.path.dirname(os.path.abspath(target))
        path = os.path.join(directory, f"docq-bench-{name}-{uuid.uuid4().hex[:8]}.db")
        try:
            yield path
        finally:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.remove(path + suffix)
        return
    import psycopg

    schema = f"docq_bench_{uuid.uuid4().hex[:10]}"
    admin = target.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in target else "?"
    try:
        yield f"{target}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def on_sqlite(options: BenchOptions) -> BenchOptions:
    """Options whose scratch databases are SQLite files (beside ``--db`` if it is one)."""
    if options.target is not None and options.target.startswith("postgres"):
        return replace(options, target=None)
    return options


def open_service(target: str, settings: Settings) -> DocumentQueueService:
    return DocumentQueueService(target, settings=replace(settings, db=target))


def fake_files(count: int, prefix: str) -> list[FileFacts]:
    return [FileFacts(f"/bench/{prefix}/{i:07d}.txt", 100, f"{i:064x}", "text/plain") for i in range(count)]


def docq_command() -> list[str]:
    """The ``docq`` console script beside this Python, else ``python -m docq``."""
    script = os.path.join(os.path.dirname(sys.executable), "docq")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "docq"]
