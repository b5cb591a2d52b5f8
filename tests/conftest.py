"""Shared fixtures: real SQLite files under tmp_path, a private PostgreSQL schema per test
(when DOCQ_TEST_PG_URL is set), sample documents, and the installed program."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from docq.config import Settings
from docq.queue import DocumentQueueService

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DOCS = ROOT / "sample_docs"
PG_URL = os.environ.get("DOCQ_TEST_PG_URL")
PG_SKIP = "DOCQ_TEST_PG_URL is not set: PostgreSQL tests need a server (see .ci/run)"


@pytest.fixture
def sample_docs() -> Path:
    """The repository's sample documents."""
    return SAMPLE_DOCS


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A SQLite queue file that does not exist yet."""
    return str(tmp_path / "queue.db")


def _pg_schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not PG_URL:
        pytest.skip(PG_SKIP)
    import psycopg

    schema = f"docq_test_{uuid.uuid4().hex[:12]}"
    admin_url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(PG_URL, schema)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The queue database of a contract test, on each backend in turn."""
    if request.param == "sqlite":
        return str(tmp_path / "queue.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def make_service(db_target: str) -> Iterator[Any]:
    """Builds services on the test's database: ``make_service(**settings)``."""
    made: list[DocumentQueueService] = []

    def build(**changes: Any) -> DocumentQueueService:
        config = Settings(db=db_target, lock_timeout=10).with_(**changes)
        service = DocumentQueueService(db_target, settings=config)
        made.append(service)
        return service

    yield build
    for service in made:
        service.close()


def docq_env(db: str | None = None, **extra: str) -> dict[str, str]:
    """Environment for running docq as a program on ``db``."""
    env = dict(os.environ)
    env.pop("DOCQ_DB", None)
    if db is not None:
        env["DOCQ_DB"] = db
    env.update(extra)
    return env


def docq_command() -> list[str]:
    """The installed ``docq`` console script (beside this Python), else ``python -m docq``."""
    script = Path(sys.executable).with_name("docq")
    return [str(script)] if script.exists() else [sys.executable, "-m", "docq"]


def run_docq(
    *args: str, db: str | None = None, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the installed program and capture its output."""
    env = kwargs.pop("env", None) or docq_env(db)
    return subprocess.run(
        [*docq_command(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
