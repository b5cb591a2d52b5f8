"""``docq bench --nemesis``: a seeded fault-injection run, then a total check of the queue.

A few ``docq work --loop`` processes run a command that appends ``ITEM ATTEMPT`` to a
ledger file and sleeps. A driver, its choices drawn from a seed, meanwhile kills a worker
and everything it started (``kill -9`` of its process group), kills only the worker
process (its children must notice and die), or freezes a worker's group past its lease
(``SIGSTOP``) and lets it go on (``SIGCONT``) once others have taken its items over.
Killed workers are replaced. When the faults are done, the queue is drained and checked
as a whole, as a total-queue checker would:

* every item completed, exactly once in the attempt history (none lost, none stuck);
* every run in the ledger has its attempt in the history, and every extra run of an item
  is explained by an attempt that did not complete (a run cut off by a fault);
* an attempt with no run in the ledger (charged, never ran) happens only where a worker
  was killed between handing an item to a child and the command writing its line: at
  most one per kill (see `NemesisReport.charge_allowance`). Items a worker held claimed
  ahead are never charged;
* no process of the run outlives it, and no worker printed "database is locked" or a
  traceback.

The same code is the quick fault-injection test of the suite (a few seeds, seconds
each) and, with more seeds, items and faults, the long run that prints its table.
"""

from __future__ import annotations

import os
import random
import shlex
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from docq.bench.common import docq_command
from docq.config import Settings

OPERATION = "nemesis"
FaultKind = Literal["kill-group", "kill-parent", "stop"]
FAULT_KINDS: tuple[FaultKind, ...] = ("kill-group", "kill-parent", "stop")
MARKER = "NEMESIS_RUN"
"""Carried in the environment of every process of a run (commands too: docq passes on
what is not its own configuration), so that the check finds any that outlive it."""


@dataclass(frozen=True)
class NemesisPlan:
    """One run: its seed and its sizes. The defaults make the quick run of the test suite."""

    seed: int
    items: int = 36
    workers: int = 2
    concurrency: int = 3
    faults: int = 4
    item_seconds: float = 0.6  # slow enough that items are charged when they start
    lease: float = 2.0
    drain_timeout: float = 120.0

    def long(self) -> NemesisPlan:
        """The long run: more items, workers and faults (about a minute a seed)."""
        return replace(self, items=400, workers=3, faults=25)


@dataclass(frozen=True)
class Fault:
    """One fault the driver injected: when (seconds into the run), what, to which pid."""

    at: float
    kind: FaultKind
    pid: int


@dataclass
class NemesisReport:
    """What one run did and what the check found."""

    seed: int
    backend: str
    items: int
    concurrency: int
    faults: list[Fault] = field(default_factory=list)
    seconds: float = 0.0
    completed: int = 0
    lost: int = 0  # ended failed or cancelled
    stuck: int = 0  # still pending or in progress after the drain
    duplicate_completions: int = 0
    runs: int = 0  # lines in the ledger
    unexplained_runs: int = 0  # extra runs of an item without a non-completed attempt
    unrecorded_runs: int = 0  # runs whose attempt is missing from the history
    charged_never_ran: int = 0
    orphans: list[str] = field(default_factory=list)
    locked: int = 0  # stderr lines saying "database is locked"
    tracebacks: int = 0

    def count(self, kind: FaultKind) -> int:
        return sum(1 for fault in self.faults if fault.kind == kind)

    @property
    def charge_allowance(self) -> int:
        """Charged-never-ran attempts the kills can explain: one per kill. A kill cuts off
        an item between its hand-over to a child and its command's first line only in a
        window of milliseconds in each item's run; a worker that charged the items it
        held claimed ahead would charge ``concurrency`` per kill."""
        return self.count("kill-group") + self.count("kill-parent")

    def problems(self) -> list[str]:
        """Each broken promise, in a line; empty when the run is clean."""
        found = []
        if self.completed != self.items:
            found.append(f"{self.items - self.completed} of {self.items} items not completed")
        for name, value in (
            ("lost (failed or cancelled)", self.lost),
            ("stuck", self.stuck),
            ("completed more than once", self.duplicate_completions),
            ("extra runs with no unfinished attempt to explain them", self.unexplained_runs),
            ("runs missing from the history", self.unrecorded_runs),
            ("'database is locked' lines", self.locked),
            ("tracebacks", self.tracebacks),
        ):
            if value:
                found.append(f"{value} {name}")
        if self.charged_never_ran > self.charge_allowance:
            found.append(
                f"{self.charged_never_ran} attempts charged that never ran "
                f"(kills explain at most {self.charge_allowance})"
            )
        if self.orphans:
            found.append(f"{len(self.orphans)} processes outlived the run: {self.orphans[:3]}")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems()


def run_nemesis(
    plan: NemesisPlan, target: str, scratch: Path, progress: Callable[[str], None] = lambda _m: None
) -> NemesisReport:
    """Run ``plan`` on the (new, empty) queue ``target`` with files under ``scratch``."""
    from docq.queue import DocumentQueueService

    scratch.mkdir(parents=True, exist_ok=True)
    settings = Settings(db=target, lock_timeout=30, max_attempts=100)
    service = DocumentQueueService(target, settings=settings)
    try:
        report = NemesisReport(plan.seed, service.db.backend.name, plan.items, plan.concurrency)
        _enqueue(service, scratch / "docs", plan.items)
        run = _Run(plan, target, scratch)
        started = time.monotonic()
        try:
            report.faults = run.inject(progress)
            progress(f"seed {plan.seed}: {len(report.faults)} faults injected; draining")
            _drain(service, plan)
            run.stop_all()
            report.orphans = run.orphans()
        finally:
            run.kill_all()
        report.seconds = time.monotonic() - started
        _check(report, service, run.ledger_path)
        report.locked, report.tracebacks = run.scan_stderr()
    finally:
        service.close()
    return report


def _enqueue(service: Any, directory: Path, count: int) -> None:
    import hashlib

    from docq.processing import FileFacts

    directory.mkdir(parents=True, exist_ok=True)
    facts = []
    for n in range(count):
        path = directory / f"doc-{n:05d}.txt"
        content = f"nemesis document {n}\n".encode()
        path.write_bytes(content)
        facts.append(FileFacts(str(path), len(content), hashlib.sha256(content).hexdigest(), "text/plain"))
    service.add_documents(facts, operation=OPERATION)


class _Run:
    """The worker processes of one run, and the faults injected into them."""

    def __init__(self, plan: NemesisPlan, target: str, scratch: Path) -> None:
        self.plan = plan
        self.scratch = scratch
        self.marker = uuid.uuid4().hex
        self.ledger_path = scratch / "ledger.txt"
        self.env = {
            **os.environ,
            "DOCQ_DB": target,
            MARKER: self.marker,
            "NEMESIS_LEDGER": str(self.ledger_path),
        }
        self.env.pop("DOCQ_OPERATION", None)
        self.started: list[subprocess.Popen[bytes]] = []
        self.live: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start one ``docq work --loop`` in a process group of its own."""
        plan = self.plan
        script = f'echo "$DOCQ_ITEM_ID $DOCQ_ATTEMPT" >> "$NEMESIS_LEDGER"; exec sleep {plan.item_seconds}'
        argv = [
            *docq_command(),
            "work",
            *("--operation", OPERATION, "--loop", "--concurrency", str(plan.concurrency)),
            *("--lease", f"{plan.lease}s", "--poll-interval", "0.2s", "--grace", "10s"),
            *("--max-attempts", "100", "--retry-delay", "0s", "--retry-max-delay", "0s"),
            *("--", "sh", "-c", script),
        ]
        stderr = (self.scratch / f"worker-{len(self.started)}.err").open("wb")
        with stderr:
            process = subprocess.Popen(
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self.started.append(process)
        self.live.append(process)
        return process

    def inject(self, progress: Callable[[str], None]) -> list[Fault]:
        """Start the workers and inject the plan's faults at seeded random times."""
        rng = random.Random(self.plan.seed)
        for _ in range(self.plan.workers):
            self.spawn()
        begin = time.monotonic()
        frozen: dict[int, float] = {}  # pid -> when to let it go on
        faults: list[Fault] = []
        next_at = begin + rng.uniform(0.5, 1.5)
        while len(faults) < self.plan.faults or frozen:
            now = time.monotonic()
            for process in [p for p in self.live if frozen.get(p.pid, float("inf")) <= now]:
                _signal_group(process, signal.SIGCONT)
                del frozen[process.pid]
            if len(faults) < self.plan.faults and now >= next_at:
                candidates = [p for p in self.live if p.pid not in frozen]
                victim = rng.choice(candidates) if candidates else None
                kind = rng.choice(FAULT_KINDS)
                if victim is not None:
                    faults.append(Fault(round(now - begin, 2), kind, victim.pid))
                    progress(f"seed {self.plan.seed}: {kind} of worker {victim.pid} at {now - begin:.1f}s")
                    if kind == "stop":
                        _signal_group(victim, signal.SIGSTOP)
                        frozen[victim.pid] = now + self.plan.lease + 1.5  # past the lease, then on
                    else:
                        if kind == "kill-group":
                            _signal_group(victim, signal.SIGKILL)
                        else:
                            victim.kill()
                        victim.wait()
                        self.live.remove(victim)
                        self.spawn()
                next_at = now + rng.uniform(0.4, 1.6)
            time.sleep(0.02)
        return faults

    def stop_all(self) -> None:
        """SIGTERM every live worker and wait for it to finish its items and exit."""
        for process in self.live:
            process.send_signal(signal.SIGTERM)
        for process in self.live:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass

    def kill_all(self) -> None:
        """Kill whatever is left of the run (after a failure, or orphans the check found)."""
        for process in self.started:
            if process.poll() is None:
                _signal_group(process, signal.SIGCONT)
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for pid in _marked(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def orphans(self) -> list[str]:
        """Processes of this run still alive once every worker has exited (given a few
        seconds: a child whose worker was killed notices within a second)."""
        deadline = time.monotonic() + 5
        while True:
            left = _marked(self.marker)
            if not left or time.monotonic() >= deadline:
                return [f"{pid}: {command}" for pid, command in left.items()]
            time.sleep(0.1)

    def scan_stderr(self) -> tuple[int, int]:
        """Lines saying "database is locked", and tracebacks, in the workers' stderr."""
        locked = tracebacks = 0
        for path in self.scratch.glob("worker-*.err"):
            text = path.read_text(errors="replace")
            locked += text.count("database is locked")
            tracebacks += text.count("Traceback (most recent call last)")
        return locked, tracebacks


def _drain(service: Any, plan: NemesisPlan) -> None:
    """Wait until no item is pending or in progress (or the drain times out)."""
    deadline = time.monotonic() + plan.drain_timeout
    while time.monotonic() < deadline:
        stats = service.get_queue_stats()
        if stats.pending == 0 and stats.in_progress == 0:
            return
        time.sleep(0.2)


def _check(report: NemesisReport, service: Any, ledger_path: Path) -> None:
    """Fill in the report from the queue's items, its attempt history and the ledger."""

    def read(tx: Any) -> tuple[list[Any], list[Any]]:
        items = tx.all("SELECT id, status FROM queue_items")
        attempts = tx.all("SELECT item_id, attempt, outcome FROM attempts")
        return items, attempts

    items, attempts = service.db.read(read)
    runs = _ledger(ledger_path)
    report.runs = sum(runs.values())
    statuses = Counter(status for _id, status in items)
    report.completed = statuses["completed"]
    report.lost = statuses["failed"] + statuses["cancelled"]
    report.stuck = statuses["pending"] + statuses["in_progress"]
    completions = Counter(item for item, _n, outcome in attempts if outcome == "completed")
    report.duplicate_completions = sum(n - 1 for n in completions.values() if n > 1)
    unfinished = Counter(item for item, _n, outcome in attempts if outcome != "completed")
    runs_per_item = Counter[int]()
    for (item, _attempt), n in runs.items():
        runs_per_item[item] += n
    report.unexplained_runs = sum(
        max(0, n - completions[item] - unfinished[item]) for item, n in runs_per_item.items()
    )
    recorded = {(item, n) for item, n, _outcome in attempts}
    report.unrecorded_runs = sum(1 for key in runs if key not in recorded)
    report.charged_never_ran = sum(1 for item, n, _outcome in attempts if (item, n) not in runs)


def _ledger(path: Path) -> Counter[tuple[int, int]]:
    """(item, attempt) -> how many times the command ran for it."""
    runs: Counter[tuple[int, int]] = Counter()
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            runs[int(parts[0]), int(parts[1])] += 1
    return runs


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except OSError:  # gone already
        pass


def _marked(marker: str) -> dict[int, str]:
    """Live processes (not zombies) whose environment carries this run's marker."""
    wanted = f"{MARKER}={marker}".encode()
    found = {}
    for pid, command in live_processes():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if wanted in environ.split(b"\0"):
            found[pid] = command
    return found


def live_processes() -> Iterator[tuple[int, str]]:
    """Every live process (zombies excluded) visible in /proc: pid and command line."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if command:  # a zombie has none
            yield (
                int(entry),
                shlex.join(part.decode(errors="replace") for part in command.split(b"\0") if part),
            )


def run_seeds(
    plans: list[NemesisPlan], target: str | None, progress: Callable[[str], None] = lambda _m: None
) -> list[NemesisReport]:
    """Run each plan on a scratch database of its own (beside ``target``, or in a scratch
    schema of its PostgreSQL database; see `docq.bench.common.scratch_database`)."""
    import shutil
    import tempfile

    from docq.bench.common import BenchOptions, scratch_database

    options = BenchOptions(target=target)
    reports = []
    for plan in plans:
        scratch = tempfile.mkdtemp(prefix="docq-nemesis-")
        try:
            with scratch_database(options, scratch, f"nemesis{plan.seed}") as database:
                reports.append(run_nemesis(plan, database, Path(scratch), progress))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return reports
