"""Signals as a service manager and a terminal send them, with real processes.

systemd's default ``KillMode=control-group`` sends SIGTERM to every process of the
service at once: the worker, its children and their commands. The worker owns shutdown:
its children and their commands ignore SIGINT, SIGTERM and SIGHUP, the running item
finishes within ``--grace`` and the worker exits 0. SIGHUP (a closed terminal or ssh
session) is a graceful stop like SIGTERM.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from workload import Processes, WorkerProcess, add_files, item, outcomes, wait_until

from docq.queue import DocumentQueueService

pytestmark = pytest.mark.slow


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def sigterm_the_whole_service(worker_pid: int) -> int:
    """What systemd's KillMode=control-group does: SIGTERM to the worker and to every
    process below it. Returns how many processes below it were signalled."""
    below = descendants(worker_pid)
    os.killpg(worker_pid, signal.SIGTERM)  # the worker leads its own group
    for pid in below:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return len(below)


def slow_item_running(db: str, procs: Processes, *, grace: str, seconds: str) -> WorkerProcess:
    """A worker whose Python handler is running ``slow.txt`` (for ``seconds``) now."""
    worker = procs.worker(
        db, "--operation", "slow", "--handler", "workload:slow", "--grace", grace, DOCQ_TEST_SLOW=seconds
    )
    wait_until(lambda: procs.ledger(), 60, "the slow item to start", watch=[worker])
    return worker


def test_sigterm_to_every_process_of_the_service_lets_the_running_handler_item_finish(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    ids = add_files(service, tmp_path / "docs", ["slow.txt", "next.txt"], operation="slow")
    worker = slow_item_running(db_path, procs, grace="30s", seconds="2")

    assert sigterm_the_whole_service(worker.pid) >= 1  # its child got SIGTERM too

    assert worker.wait(60) == 0, worker.stderr()
    assert outcomes(service, ids["slow.txt"]) == ["completed"]
    assert (item(service, ids["next.txt"])["status"], item(service, ids["next.txt"])["attempts"]) == (
        "pending",
        0,
    )
    assert "crashed" not in worker.stderr() and "Traceback" not in worker.stderr()


def test_sigterm_to_every_process_of_the_service_lets_the_running_command_finish(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    item_id = add_files(service, tmp_path / "docs", ["a.txt"], operation="nap")["a.txt"]
    started = tmp_path / "started"
    script = f"touch {started}; sleep 2; echo slept"
    worker = procs.worker(db_path, "--operation", "nap", "--grace", "30s", "--", "sh", "-c", script)
    wait_until(started.exists, 60, "the command to start", watch=[worker])

    assert sigterm_the_whole_service(worker.pid) >= 2  # the child, the shell and its sleep

    assert worker.wait(60) == 0, worker.stderr()
    assert outcomes(service, item_id) == ["completed"]
    assert "Traceback" not in worker.stderr()


def test_sighup_is_a_graceful_stop(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    ids = add_files(service, tmp_path / "docs", ["slow.txt", "next.txt"], operation="slow")
    worker = slow_item_running(db_path, procs, grace="30s", seconds="2")

    worker.send(signal.SIGHUP)

    assert worker.wait(60) == 0, worker.stderr()
    assert outcomes(service, ids["slow.txt"]) == ["completed"]
    assert (item(service, ids["next.txt"])["status"], item(service, ids["next.txt"])["attempts"]) == (
        "pending",
        0,
    )
    assert "signal again to stop now" in worker.stderr()


def test_a_second_sighup_stops_at_once_with_129(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    item_id = add_files(service, tmp_path / "docs", ["slow.txt"], operation="slow")["slow.txt"]
    worker = slow_item_running(db_path, procs, grace="60s", seconds="30")

    worker.send(signal.SIGHUP)
    wait_until(lambda: "signal again" in worker.stderr(), 30, "the worker to start stopping", watch=[worker])
    worker.send(signal.SIGHUP)

    assert worker.wait(30) == 129, worker.stderr()
    assert (item(service, item_id)["status"], outcomes(service, item_id)) == ("pending", ["released"])
