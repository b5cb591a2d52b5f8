"""Shared fixtures: real SQLite files under tmp_path, a private PostgreSQL schema per test
(when DOCQ_TEST_PG_URL is set), sample documents, and the installed program."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from docq.config import Settings
from docq.queue import DocumentQueueService
from docq.render import output as render

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


def run_in_terminal(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run docq with stdin, stdout and stderr on a pseudo-terminal; its exit code and output."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*docq_command(), *args], stdin=follower, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal closed with the program
                break
            if not chunk:
                break
            output += chunk
        else:
            process.kill()
            pytest.fail(f"docq {' '.join(args)} did not finish on a terminal")
    finally:
        os.close(leader)
    return process.wait(timeout=10), output.decode("utf-8", "replace")


@pytest.fixture
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DOCQ_* settings or forced colour from the caller's environment, and fresh
    consoles: what in-process CLI tests need to see the program's own defaults."""
    for name in list(os.environ):
        if name.startswith("DOCQ_") or name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
            monkeypatch.delenv(name)
    render.out.cache_clear()
    render.err.cache_clear()
    yield
    render.out.cache_clear()
    render.err.cache_clear()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Any]:
    """Starts the test's processes (see workload.Processes); kills them all, with their
    children and commands, at the end."""
    from workload import Processes

    with Processes(tmp_path / "procs") as processes:
        yield processes


@pytest.fixture
def service(db_path: str) -> Iterator[DocumentQueueService]:
    """The test's SQLite queue, read and filled through the library."""
    from workload import open_queue

    queue = open_queue(db_path)
    yield queue
    queue.close()


@pytest.fixture
def any_service(db_target: str) -> Iterator[DocumentQueueService]:
    """The test's queue on each backend in turn (PostgreSQL with DOCQ_TEST_PG_URL)."""
    from workload import open_queue

    queue = open_queue(db_target)
    yield queue
    queue.close()
