"""Handlers for the workers that the process tests start, and the harness that starts them.

The handlers run inside a worker's child process (``docq work --operation NAME --handler
workload:slow``; the harness puts this directory on ``PYTHONPATH``). Each one first appends
``label<TAB>path<TAB>pid`` to the ledger file named by ``DOCQ_TEST_LEDGER``, with
``O_APPEND``, so a test can tell which documents ran, how often, and in which process.
A document whose file name contains ``poison`` is the one the ``*_if_poison`` handlers
misbehave on. ``DOCQ_TEST_LABEL`` names the worker in the ledger and in the result.

The harness (`Processes`, `wait_until`, the queue readers) keeps no state between tests:
every process a test starts carries the test's marker in its environment and is killed,
with everything it started, when the test ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from docq.queue import DocumentQueueService

GiB = 1024**3
TESTS_DIR = Path(__file__).resolve().parent
T = TypeVar("T")


# --- handlers (run in a worker's child process) ------------------------------------------


def _label() -> str:
    return os.environ.get("DOCQ_TEST_LABEL", "worker")


def _record(path: str) -> None:
    ledger = os.environ.get("DOCQ_TEST_LEDGER")
    if not ledger:
        return
    line = f"{_label()}\t{path}\t{os.getpid()}\n".encode()
    fd = os.open(ledger, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)  # one small O_APPEND write: lines of concurrent children never mix
    finally:
        os.close(fd)


def _poisoned(path: str) -> bool:
    return "poison" in os.path.basename(path)


def ledger(path: str) -> str:
    """Record the document, wait ``DOCQ_TEST_DELAY`` seconds (default 0), succeed."""
    _record(path)
    delay = float(os.environ.get("DOCQ_TEST_DELAY", "0"))
    if delay:
        time.sleep(delay)
    return f"done by {_label()}"


def slow(path: str) -> str:
    """Record the document and succeed: after ``DOCQ_TEST_SLOW`` seconds (default 30) if
    its file name contains ``slow``, else after ``DOCQ_TEST_DELAY`` (default 0)."""
    _record(path)
    slow_one = "slow" in os.path.basename(path)
    time.sleep(
        float(os.environ.get("DOCQ_TEST_SLOW", "30") if slow_one else os.environ.get("DOCQ_TEST_DELAY", "0"))
    )
    return f"done by {_label()}"


def crash_if_poison(path: str) -> str:
    """Kill this child with SIGSEGV on a poison document, as a crashing C parser would."""
    _record(path)
    if _poisoned(path):
        os.kill(os.getpid(), signal.SIGSEGV)
    return f"done by {_label()}"


def hang_if_poison(path: str) -> str:
    """Never return on a poison document."""
    _record(path)
    while _poisoned(path):
        time.sleep(60)
    return f"done by {_label()}"


def hog_if_poison(path: str) -> str:
    """Allocate 2 GiB on a poison document (and touch it, should the allocation succeed)."""
    _record(path)
    if _poisoned(path):
        block = bytearray(2 * GiB)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
    return f"done by {_label()}"


# --- the harness: processes ----------------------------------------------------------------


@dataclass
class WorkerProcess:
    """A program a test started (usually ``docq work``), its output going to files."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started: float  # time.time() just before it was started

    @property
    def pid(self) -> int:
        """Its process id (also its process group id: it leads a session of its own)."""
        return self.process.pid

    def running(self) -> bool:
        """Whether it has not exited yet."""
        return self.process.poll() is None

    def wait(self, timeout: float = 60) -> int:
        """Its exit code, waiting up to ``timeout`` seconds (then the test fails)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"process {self.pid} still running after {timeout}s; stderr:\n{self.stderr()}"
            ) from None

    def send(self, signum: int) -> None:
        """Send ``signum`` to the process itself (not its group)."""
        os.kill(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL its whole process group (gone already is fine)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def stdout(self) -> str:
        """What it printed on stdout so far."""
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        """What it printed on stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def summary(self) -> dict[str, int]:
        """The ``docq work --json`` summary it printed."""
        data: dict[str, int] = json.loads(self.stdout())
        return data


class Processes:
    """Starts the test's programs with the test's marker, ledger and ``PYTHONPATH``, and
    kills every one of them, their children and their commands when the test ends."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.marker = f"docq-test-{uuid.uuid4().hex[:12]}"
        self.ledger_path = directory / "ledger.txt"
        self.started: list[WorkerProcess] = []

    def env(self, db: str, **extra: str) -> dict[str, str]:
        """The environment of a docq program on ``db`` started by this test; ``extra``
        adds or replaces variables (``PYTHONPATH`` too)."""
        from conftest import docq_env

        python_path = os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p)
        env = docq_env(
            db,
            PYTHONPATH=python_path,
            DOCQ_TEST_LEDGER=str(self.ledger_path),
            NO_COLOR="1",
        )
        env.update(extra)
        env["DOCQ_TEST_MARKER"] = self.marker  # never overridden: it is how `close` finds orphans
        return env

    def worker(self, db: str, *args: str, **env: str) -> WorkerProcess:
        """Start ``docq work ARGS`` on ``db``; ``env`` adds environment variables."""
        from conftest import docq_command

        return self.spawn([*docq_command(), "work", *args], self.env(db, **env))

    def spawn(self, argv: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> WorkerProcess:
        """Start ``argv`` (in ``cwd``) in a session of its own, its output going to files."""
        n = len(self.started)
        out, err = self.directory / f"{n}.out", self.directory / f"{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            started = time.time()
            process = subprocess.Popen(
                list(argv),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        worker = WorkerProcess(process, out, err, started)
        self.started.append(worker)
        return worker

    def marked(self) -> dict[int, str]:
        """Live processes (zombies excluded) carrying this test's marker: pid -> command line."""
        from docq.bench.nemesis import live_processes

        return {pid: cmdline for pid, cmdline in live_processes() if self._carries_marker(pid)}

    def _carries_marker(self, pid: int) -> bool:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            return False
        return f"DOCQ_TEST_MARKER={self.marker}".encode() in environ.split(b"\0")

    def ledger(self) -> list[tuple[str, str, int]]:
        """The ledger so far: (label, path, pid of the child) per handler call."""
        if not self.ledger_path.exists():
            return []
        entries = []
        for line in self.ledger_path.read_text().splitlines():
            label, path, pid = line.split("\t")
            entries.append((label, path, int(pid)))
        return entries

    def close(self) -> None:
        """Kill everything this test started, and whatever those started."""
        for worker in self.started:
            if worker.running():
                worker.kill_group()
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while (orphans := self.marked()) and time.monotonic() < deadline:
            for pid in orphans:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)  # let the kernel finish them off

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float = 60,
    what: str = "a condition",
    *,
    watch: Sequence[WorkerProcess] = (),
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns something true, and return that. Fails the test
    after ``timeout`` seconds, or at once if a process in ``watch`` exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for worker in watch:
            if not worker.running():
                raise AssertionError(
                    f"waiting for {what}: process {worker.pid} exited with {worker.process.returncode}; "
                    f"stderr:\n{worker.stderr()}"
                )
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# --- the harness: the queue, read through the library --------------------------------------

STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


def open_queue(db: str) -> DocumentQueueService:
    """A `DocumentQueueService` on ``db`` (creating the schema if the database is new)."""
    from docq.config import Settings
    from docq.queue import DocumentQueueService

    return DocumentQueueService(db, settings=Settings(db=db, lock_timeout=30))


def add_files(
    service: DocumentQueueService, directory: Path, names: Iterable[str], *, operation: str
) -> dict[str, int]:
    """Create a small file per name under ``directory`` and queue ``operation`` for each
    through the library. Returns name -> queue item id."""
    from docq.processing import FileFacts
    from docq.queue import Queued

    directory.mkdir(parents=True, exist_ok=True)
    facts = []
    for name in names:
        path = directory / name
        content = f"document {name}\n".encode()
        path.write_bytes(content)
        digest = hashlib.sha256(content).hexdigest()
        facts.append(FileFacts(os.path.realpath(path), len(content), digest, "text/plain"))
    outcomes = service.add_documents(facts, operation=operation)
    assert all(isinstance(outcome, Queued) for outcome in outcomes), outcomes
    return {os.path.basename(outcome.path): outcome.item_id for outcome in outcomes}


def counts(service: DocumentQueueService) -> dict[str, int]:
    """Items per status."""
    stats = service.get_queue_stats()
    return {status: getattr(stats, status) for status in STATUSES}


def only(**status_counts: int) -> dict[str, int]:
    """What `counts` returns when only these statuses have items: ``only(completed=3)``."""
    return {status: status_counts.get(status, 0) for status in STATUSES}


def rows(service: DocumentQueueService, sql: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of a read-only query, as dicts."""
    result: list[dict[str, Any]] = service.db.read(lambda tx: tx.dicts(sql, params))
    return result


def item(service: DocumentQueueService, item_id: int) -> dict[str, Any]:
    """The queue item's row."""
    return rows(service, "SELECT * FROM queue_items WHERE id = :id", id=item_id)[0]


def history(service: DocumentQueueService, item_id: int) -> list[dict[str, Any]]:
    """The item's attempts, oldest first."""
    return rows(service, "SELECT * FROM attempts WHERE item_id = :id ORDER BY id", id=item_id)


def outcomes(service: DocumentQueueService, item_id: int) -> list[str]:
    """The outcomes of the item's attempts, oldest first."""
    return [attempt["outcome"] for attempt in history(service, item_id)]


def worker_idle(service: DocumentQueueService, worker: WorkerProcess) -> bool:
    """Whether the worker has registered and made its first claim: its first heartbeat
    follows that claim (so an idle ``--loop`` worker is listening and waiting by then)."""
    found = rows(service, "SELECT started_at, heartbeat_at FROM workers WHERE pid = :pid", pid=worker.pid)
    return bool(found) and found[0]["heartbeat_at"] > found[0]["started_at"]
