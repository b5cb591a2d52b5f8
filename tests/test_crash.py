"""Crash safety with real processes: workers killed with SIGKILL, stopped with SIGSTOP,
asked to stop with SIGTERM/SIGINT; documents that crash, hang or eat memory; a running
item cancelled. Whatever happens, no item stays in progress forever, no item completes
twice, a late result never overwrites the one that took over, and no child outlives its
worker.

Leases are short (2 s) so that expiry is quick to wait for; every wait polls the queue
or /proc with a generous deadline.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import run_docq
from workload import (
    TESTS_DIR,
    Processes,
    WorkerProcess,
    add_files,
    alive,
    counts,
    history,
    item,
    only,
    outcomes,
    rows,
    wait_until,
    worker_idle,
)

from docq.queue import DocumentQueueService

pytestmark = pytest.mark.slow

SLOW = ("--operation", "slow", "--handler", "workload:slow")
# A worker that dies or freezes holds its items for a short lease, so that the test need not
# wait long for them to come back; a worker that must keep its items holds them for long, so
# that only the behaviour under test (never a stall of a loaded machine) can take them over.
VICTIM_LEASE = ("--lease", "2s")
LEASE = ("--lease", "60s")
CANCEL_LEASE = ("--lease", "6s")  # heartbeats, and so cancels, every 2 s
TAKE_OVER = ("--loop", "--poll-interval", "0.1s", *LEASE, "--json")  # a second worker, polling fast


def handler_started(procs: Processes, label: str, *, watch: WorkerProcess, nth: int = 1) -> int:
    """Wait until the worker labelled ``label`` has started its ``nth`` document; returns
    the pid of the child running it."""

    def started() -> int:
        pids = [pid for who, _path, pid in procs.ledger() if who == label]
        return pids[nth - 1] if len(pids) >= nth else 0

    return wait_until(started, 60, f"{label} to start document {nth}", watch=[watch])


def status_is(service: DocumentQueueService, item_id: int, status: str) -> bool:
    """Whether the item is in ``status`` now."""
    return bool(item(service, item_id)["status"] == status)


def owned_by(attempt: dict[str, Any], worker: WorkerProcess) -> bool:
    """Whether the attempt was made by that worker process (ids are host:pid:tag)."""
    return f":{worker.pid}:" in str(attempt["worker_id"])


def no_children_left(procs: Processes) -> None:
    """Wait until no process of this test runs ``docq.worker.child_main`` (or a command) any more."""
    wait_until(lambda: not procs.marked(), 15, f"orphans to die: {procs.marked()}")


# --- kill -9 -------------------------------------------------------------------------------


def test_kill_9_mid_item_recovers_after_the_lease(
    db_target: str, any_service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    """The worker's whole process group dies while its child runs ``slow.txt``, with the
    next item claimed ahead, waiting for the child. Both come back after the lease: the
    running one charged an ``abandoned`` attempt, the waiting one uncharged, as if never
    claimed; the item it had not claimed is simply taken."""
    ids = add_files(any_service, tmp_path / "docs", ["slow.txt", "b.txt", "c.txt"], operation="slow")
    first = procs.worker(db_target, *SLOW, *VICTIM_LEASE, DOCQ_TEST_LABEL="first", DOCQ_TEST_SLOW="30")
    child = handler_started(procs, "first", watch=first)

    first.kill_group()
    killed_at = time.time()
    first.wait(10)
    wait_until(lambda: not alive(child), 10, "the dead worker's child to die")
    no_children_left(procs)
    rows = {name: item(any_service, item_id) for name, item_id in ids.items()}
    held = {name for name, row in rows.items() if row["status"] == "in_progress"}
    assert held == {"slow.txt", "b.txt"}, rows  # the running item and the one claimed ahead
    assert rows["c.txt"]["status"] == "pending"
    expiry = max(rows[name]["lease_expires_at"] for name in held)  # final: nobody renews them any more

    second = procs.worker(db_target, *SLOW, *TAKE_OVER, DOCQ_TEST_LABEL="second", DOCQ_TEST_SLOW="0")
    wait_until(lambda: counts(any_service) == only(completed=3), 60, "the take-over", watch=[second])

    attempts = history(any_service, ids["slow.txt"])
    assert [a["outcome"] for a in attempts] == ["abandoned", "completed"]
    assert owned_by(attempts[0], first) and owned_by(attempts[1], second)
    assert item(any_service, ids["slow.txt"])["attempts"] == 2  # the lost attempt counts
    for name in held:
        attempts = history(any_service, ids[name])
        assert attempts[-1]["started_at"] >= expiry, "taken over before the lease expired"
    for name in ("b.txt", "c.txt"):  # b.txt never started: its claim is not charged
        assert [a["outcome"] for a in history(any_service, ids[name])] == ["completed"]
        assert item(any_service, ids[name])["attempts"] == 1
    ran = [(who, Path(path).name) for who, path, _pid in procs.ledger()]
    assert sorted(ran) == [
        ("first", "slow.txt"),
        ("second", "b.txt"),
        ("second", "c.txt"),
        ("second", "slow.txt"),
    ]
    second.send(signal.SIGTERM)
    assert second.wait(30) == 0, second.stderr()
    assert second.summary()["completed"] == 3
    no_children_left(procs)
    slow = history(any_service, ids["slow.txt"])[1]
    print(
        f"\nkill -9 recovery ({'postgresql' if '://' in db_target else 'sqlite'}, lease 2s): lease expired "
        f"{expiry - killed_at:.2f}s after the kill, re-claimed after {slow['started_at'] - killed_at:.2f}s, "
        f"completed after {slow['finished_at'] - killed_at:.2f}s"
    )


def test_items_claimed_ahead_are_not_charged_when_their_worker_dies_again_and_again(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    """Three workers in turn claim both items, start the first and are killed with the
    second still waiting. Only the item that ran is charged (and fails after
    --max-attempts); the other, never started, is completed at its first attempt."""
    ids = add_files(service, tmp_path / "docs", ["slow.txt", "b.txt"], operation="slow")
    options = (*SLOW, "--concurrency", "1", "--max-attempts", "3", "--loop", "--poll-interval", "0.1s")
    for n in (1, 2, 3):
        victim = procs.worker(
            db_path, *options, *VICTIM_LEASE, DOCQ_TEST_LABEL=f"victim{n}", DOCQ_TEST_DELAY="30"
        )
        handler_started(procs, f"victim{n}", watch=victim)
        assert status_is(service, ids["b.txt"], "in_progress")  # claimed ahead, waiting
        if n == 1:  # `docq workers` tells the running item from the one claimed ahead
            # (a worker records its running items at its heartbeats, every third of the lease)
            def shown() -> list[tuple[list[int], int]]:
                rows = json.loads(run_docq("workers", "--json", db=db_path).stdout)
                return [(w["current_items"], w["claimed_ahead"]) for w in rows]

            wait_until(lambda: shown() == [([ids["slow.txt"]], 1)], 10, "the heartbeat", watch=[victim])
        victim.kill_group()
        victim.wait(10)

    survivor = procs.worker(db_path, *options, *LEASE, "--json", DOCQ_TEST_LABEL="survivor")
    finished = only(completed=1, failed=1)
    wait_until(lambda: counts(service) == finished, 60, "the sweep and the rest", watch=[survivor])

    assert outcomes(service, ids["slow.txt"]) == ["abandoned"] * 3
    assert outcomes(service, ids["b.txt"]) == ["completed"]
    assert item(service, ids["b.txt"])["attempts"] == 1
    ran = [(who, Path(path).name) for who, path, _pid in procs.ledger()]
    assert ran == [*((f"victim{n}", "slow.txt") for n in (1, 2, 3)), ("survivor", "b.txt")]
    survivor.send(signal.SIGTERM)
    assert survivor.wait(30) == 0, survivor.stderr()
    no_children_left(procs)


def test_item_whose_worker_dies_every_time_ends_failed(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    """A document that takes its worker down (the OOM killer, say) counts an attempt per
    death, and ends failed after --max-attempts instead of killing workers forever."""
    item_id = add_files(service, tmp_path / "docs", ["slow.txt"], operation="slow")["slow.txt"]
    options = (*SLOW, "--max-attempts", "2", "--loop", "--poll-interval", "0.1s")
    for n in (1, 2):
        victim = procs.worker(
            db_path, *options, *VICTIM_LEASE, DOCQ_TEST_LABEL=f"victim{n}", DOCQ_TEST_SLOW="30"
        )
        handler_started(procs, f"victim{n}", watch=victim)
        victim.kill_group()
        victim.wait(10)

    survivor = procs.worker(
        db_path, *options, *LEASE, "--json", DOCQ_TEST_LABEL="survivor", DOCQ_TEST_SLOW="0"
    )
    wait_until(lambda: status_is(service, item_id, "failed"), 60, "the expiry sweep", watch=[survivor])

    assert outcomes(service, item_id) == ["abandoned", "abandoned"]
    row = item(service, item_id)
    assert row["attempts"] == 2 and "abandoned" in row["last_error"], row
    assert rows(service, "SELECT status FROM documents") == [{"status": "failed"}]
    assert [who for who, _path, _pid in procs.ledger()] == ["victim1", "victim2"]
    survivor.send(signal.SIGTERM)
    assert survivor.wait(30) == 0, survivor.stderr()
    no_children_left(procs)


def test_killing_one_of_four_busy_workers_loses_nothing(
    db_target: str, any_service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    service = any_service
    items = add_files(service, tmp_path / "docs", [f"doc-{n:03}.txt" for n in range(400)], operation="ledger")
    options = ("--operation", "ledger", "--handler", "workload:ledger", "--concurrency", "2")
    polling = ("--loop", "--poll-interval", "0.1s", "--json")
    victim = procs.worker(
        db_target, *options, *polling, *VICTIM_LEASE, DOCQ_TEST_LABEL="w0", DOCQ_TEST_DELAY="0.04"
    )
    survivors = [
        procs.worker(db_target, *options, *TAKE_OVER, DOCQ_TEST_LABEL=f"w{n}", DOCQ_TEST_DELAY="0.04")
        for n in range(1, 4)
    ]
    workers = [victim, *survivors]

    def victim_busy() -> bool:
        """Whether the victim holds items, once the drain is well under way."""
        if counts(service)["completed"] < 40:
            return False
        held = rows(service, "SELECT worker_id FROM queue_items WHERE status = 'in_progress'")
        return any(owned_by(row, victim) for row in held)

    wait_until(victim_busy, 60, "the victim to hold items mid-drain", watch=workers)
    victim.kill_group()
    wait_until(lambda: counts(service) == only(completed=400), 60, "the drain", watch=survivors)

    attempts = rows(service, "SELECT item_id, worker_id, outcome FROM attempts")
    completed = Counter(a["item_id"] for a in attempts if a["outcome"] == "completed")
    assert set(completed) == set(items.values()) and set(completed.values()) == {1}
    abandoned = [a for a in attempts if a["outcome"] == "abandoned"]
    assert abandoned and all(owned_by(a, victim) for a in abandoned)
    assert {a["outcome"] for a in attempts} == {"completed", "abandoned"}
    # At least once: a document runs twice only if the dead worker had started it.
    paths = {item_id: name for name, item_id in items.items()}
    twice = {Path(path).name for path, n in Counter(p for _w, p, _pid in procs.ledger()).items() if n > 1}
    assert twice <= {paths[a["item_id"]] for a in abandoned}
    for worker in survivors:
        worker.send(signal.SIGTERM)
    assert [worker.wait(30) for worker in survivors] == [0, 0, 0]
    assert all("Traceback" not in w.stderr() and "locked" not in w.stderr() for w in survivors)
    print(f"\nkill -9 of 1 of 4 workers mid-drain: {len(abandoned)} items abandoned, {len(twice)} ran twice")


@pytest.mark.parametrize("kind", ["python", "command"])
def test_child_dies_with_its_worker(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path, kind: str
) -> None:
    """SIGKILL to the worker's main process only: its child (in a process group of its own)
    and the child's command must not live on."""
    add_files(service, tmp_path / "docs", ["slow.txt"], operation="slow")
    if kind == "python":
        worker = procs.worker(db_path, *SLOW, *VICTIM_LEASE, DOCQ_TEST_LABEL="first", DOCQ_TEST_SLOW="30")
        doomed = [handler_started(procs, "first", watch=worker)]
    else:
        script = "import sys, time; time.sleep(30)"
        worker = procs.worker(
            db_path, "--operation", "slow", *VICTIM_LEASE, "--", "python3", "-c", script, "{path}"
        )

        def running() -> list[int]:
            marked = procs.marked()
            child = [pid for pid, cmd in marked.items() if "docq.worker.child_main" in cmd]
            command = [pid for pid, cmd in marked.items() if script in cmd]
            return child + command if child and command else []

        doomed = wait_until(running, 60, "the child and its command", watch=[worker])

    worker.send(signal.SIGKILL)
    killed_at = time.monotonic()
    worker.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in doomed), 10, f"{doomed} to die with their worker")
    print(f"\n{kind}: worker's child gone {time.monotonic() - killed_at:.2f}s after kill -9 of the worker")
    no_children_left(procs)


# --- leases held by live workers ----------------------------------------------------------


def test_heartbeat_keeps_a_long_item_from_being_taken_over(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    item_id = add_files(service, tmp_path / "docs", ["slow.txt"], operation="slow")["slow.txt"]
    # The item outlasts two leases of 5 s: only the heartbeat (every 5/3 s) keeps it; a
    # stall of the machine would have to last a whole lease to let the second worker in.
    first = procs.worker(
        db_path, *SLOW, "--lease", "5s", "--json", DOCQ_TEST_LABEL="first", DOCQ_TEST_SLOW="11"
    )
    handler_started(procs, "first", watch=first)
    second = procs.worker(db_path, *SLOW, *TAKE_OVER, DOCQ_TEST_LABEL="second", DOCQ_TEST_SLOW="0")

    assert first.wait(60) == 0, first.stderr()
    second.send(signal.SIGTERM)
    assert second.wait(30) == 0, second.stderr()

    attempts = history(service, item_id)
    assert [a["outcome"] for a in attempts] == ["completed"]
    assert owned_by(attempts[0], first)
    assert attempts[0]["finished_at"] - attempts[0]["started_at"] >= 10  # more than two leases long
    assert item(service, item_id)["attempts"] == 1
    assert first.summary()["completed"] == 1 and second.summary()["processed"] == 0
    assert [who for who, _path, _pid in procs.ledger()] == ["first"]


def test_late_result_of_a_stopped_worker_is_discarded(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    item_id = add_files(service, tmp_path / "docs", ["slow.txt"], operation="slow")["slow.txt"]
    first = procs.worker(db_path, *SLOW, *VICTIM_LEASE, "--json", DOCQ_TEST_LABEL="first", DOCQ_TEST_SLOW="2")
    handler_started(procs, "first", watch=first)
    first.send(signal.SIGSTOP)  # frozen past its lease; its child runs on and finishes

    second = procs.worker(db_path, *SLOW, *TAKE_OVER, DOCQ_TEST_LABEL="second", DOCQ_TEST_SLOW="0")
    wait_until(lambda: status_is(service, item_id, "completed"), 60, "the take-over", watch=[second])
    first.send(signal.SIGCONT)

    assert first.wait(60) == 0, first.stderr()
    discarded = [line for line in first.stderr().splitlines() if "discarded" in line]
    assert len(discarded) == 1, first.stderr()
    assert f"item {item_id}" in discarded[0]
    assert first.summary()["discarded"] == 1 and first.summary()["completed"] == 0
    attempts = history(service, item_id)
    assert [a["outcome"] for a in attempts] == ["abandoned", "completed"]
    assert owned_by(attempts[1], second)
    output = rows(service, "SELECT text FROM item_outputs WHERE item_id = :id", id=item_id)
    assert output == [{"text": "done by second"}]
    document = rows(service, "SELECT d.status FROM documents d JOIN queue_items q ON q.document_id = d.id")
    assert document == [{"status": "processed"}]
    second.send(signal.SIGTERM)
    assert second.wait(30) == 0, second.stderr()


# --- stop signals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slow_seconds", "grace", "ends"),
    [
        pytest.param(
            "1.5",
            "30s",
            "completed",
            id="finishes-within-grace",
        ),
        pytest.param("30", "1s", "released", id="outlives-grace"),
    ],
)
def test_sigterm_lets_the_running_item_finish_or_gives_it_back(
    db_path: str,
    service: DocumentQueueService,
    procs: Processes,
    tmp_path: Path,
    slow_seconds: str,
    grace: str,
    ends: str,
) -> None:
    ids = add_files(service, tmp_path / "docs", ["slow-1.txt", "slow-2.txt", "slow-3.txt"], operation="slow")
    worker = procs.worker(db_path, *SLOW, "--grace", grace, "--json", DOCQ_TEST_SLOW=slow_seconds)
    handler_started(procs, "worker", watch=worker)

    worker.send(signal.SIGTERM)

    assert worker.wait(60) == 0, worker.stderr()
    first, *rest = ids.values()
    assert counts(service)["in_progress"] == 0
    assert len(procs.ledger()) == 1, f"items started after SIGTERM: {procs.ledger()}"
    if ends == "completed":
        assert outcomes(service, first) == ["completed"]
    else:
        assert outcomes(service, first) == ["released"]
        assert item(service, first)["attempts"] == 0  # not counted
    for item_id in rest:  # claimed but not started: given back, not counted
        assert item(service, item_id)["status"] == "pending"
        assert item(service, item_id)["attempts"] == 0
    assert "Traceback" not in worker.stderr()
    no_children_left(procs)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_second_signal_stops_at_once_and_gives_the_item_back(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path, signum: int, code: int
) -> None:
    item_id = add_files(service, tmp_path / "docs", ["slow.txt"], operation="slow")["slow.txt"]
    worker = procs.worker(db_path, *SLOW, "--grace", "60s", "--json", DOCQ_TEST_SLOW="30")
    handler_started(procs, "worker", watch=worker)

    worker.send(signum)
    wait_until(lambda: "signal again" in worker.stderr(), 30, "the worker to start stopping", watch=[worker])
    worker.send(signum)

    assert worker.wait(30) == code, worker.stderr()
    assert "Traceback" not in worker.stderr()
    assert item(service, item_id)["status"] == "pending"
    assert item(service, item_id)["attempts"] == 0
    assert outcomes(service, item_id) == ["released"]
    assert worker.summary()["released"] == 1
    no_children_left(procs)


# --- documents that misbehave ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "options", "named"),
    [("crash_if_poison", (), "SIGSEGV"), ("hang_if_poison", ("--timeout", "1s"), "timeout")],
    ids=["crash", "hang"],
)
def test_poison_document_fails_after_max_attempts(
    db_path: str,
    service: DocumentQueueService,
    procs: Processes,
    tmp_path: Path,
    handler: str,
    options: tuple[str, ...],
    named: str,
) -> None:
    names = ["poison.txt", *(f"ok-{n}.txt" for n in range(5))]
    ids = add_files(service, tmp_path / "docs", names, operation="poison")
    worker = procs.worker(
        db_path,
        *("--operation", "poison", "--handler", f"workload:{handler}"),
        *("--loop", "--poll-interval", "0.1s", "--max-attempts", "3"),
        *("--retry-delay", "0.1s", "--retry-max-delay", "0.2s", "--json", *options),
    )

    wait_until(
        lambda: counts(service) == only(completed=5, failed=1), 60, "the poison to fail", watch=[worker]
    )
    worker.send(signal.SIGTERM)

    assert worker.wait(30) == 3, worker.stderr()
    poison = item(service, ids["poison.txt"])
    assert poison["attempts"] == 3 and named in poison["last_error"], poison
    attempts = history(service, ids["poison.txt"])
    assert [a["outcome"] for a in attempts] == ["failed"] * 3
    assert all(named in a["error"] for a in attempts), attempts
    ran = [Path(path).name for _who, path, _pid in procs.ledger()]
    assert ran.count("poison.txt") == 3 and all(ran.count(name) == 1 for name in names[1:])
    summary = worker.summary()
    assert (summary["completed"], summary["failed"], summary["retried"]) == (5, 1, 0)  # items, by their end
    assert (summary["items"], summary["processed"]) == (6, 8)  # the poison took three attempts
    assert "Traceback" not in worker.stderr()


def test_memory_cap_fails_the_item_and_the_worker_carries_on(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    ids = add_files(service, tmp_path / "docs", ["poison.txt", "ok-1.txt", "ok-2.txt"], operation="hog")
    worker = procs.worker(
        db_path,
        *("--operation", "hog", "--handler", "workload:hog_if_poison"),
        *("--memory-limit", "256M", "--max-attempts", "1", "--json"),
    )

    assert worker.wait(60) == 3, worker.stderr()
    poison = item(service, ids["poison.txt"])
    assert poison["status"] == "failed"
    assert "memory limit exceeded" in poison["last_error"] or "SIGKILL" in poison["last_error"], poison
    assert counts(service) == only(completed=2, failed=1)
    assert worker.summary()["completed"] == 2 and worker.summary()["failed"] == 1
    assert "Traceback" not in worker.stderr()


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_stops_a_running_item_and_the_worker_carries_on(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    ids = add_files(service, tmp_path / "docs", ["slow.txt", "quick.txt"], operation="slow")
    worker = procs.worker(
        db_path, *SLOW, *CANCEL_LEASE, "--loop", "--poll-interval", "0.1s", "--json", DOCQ_TEST_SLOW="30"
    )
    child = handler_started(procs, "worker", watch=worker)

    started = time.monotonic()
    result = run_docq("cancel", str(ids["slow.txt"]), db=db_path)
    assert result.returncode == 0, result
    wait_until(lambda: status_is(service, ids["slow.txt"], "cancelled"), 30, "the cancel", watch=[worker])
    took = time.monotonic() - started

    wait_until(lambda: not alive(child), 10, "the cancelled item's child to die")
    assert outcomes(service, ids["slow.txt"]) == ["cancelled"]
    wait_until(lambda: status_is(service, ids["quick.txt"], "completed"), 60, "the next item", watch=[worker])
    later = add_files(service, tmp_path / "later", ["later.txt"], operation="slow")["later.txt"]
    wait_until(lambda: status_is(service, later, "completed"), 60, "an item queued later", watch=[worker])
    worker.send(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.stderr()
    summary = worker.summary()
    assert (summary["cancelled"], summary["completed"]) == (1, 2)
    print(f"\ncancel of a running item took effect in {took:.2f}s (lease 6s)")


# --- timeouts ------------------------------------------------------------------------------

SLOW_START = """
import time
try:
    with open("/proc/self/cmdline", "rb") as cmdline:
        if b"docq.worker.child_main" in cmdline.read():
            time.sleep(1.0)  # a cold start on a loaded machine
except OSError:
    pass
"""


def test_timeout_does_not_count_the_child_start_up(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    """Documents that take no time at all must not time out because the child that runs
    them took a while to start (every worker's first child, every child after a kill)."""
    add_files(service, tmp_path / "docs", ["a.txt", "b.txt"], operation="ledger")
    slow_start = tmp_path / "slow-start"
    slow_start.mkdir()
    (slow_start / "sitecustomize.py").write_text(SLOW_START)
    worker = procs.worker(
        db_path,
        *("--operation", "ledger", "--handler", "workload:ledger", "--timeout", "0.5s"),
        *("--max-attempts", "1", "--json"),
        PYTHONPATH=os.pathsep.join([str(slow_start), str(TESTS_DIR)]),
    )

    code = worker.wait(60)
    errors = rows(service, "SELECT last_error FROM queue_items WHERE status = 'failed'")
    assert (code, counts(service)) == (0, only(completed=2)), errors


def test_cancelling_a_queued_item_spares_the_running_one(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    """The child runs ``slow.txt`` with ``quick.txt`` handed to it behind; cancelling
    ``quick.txt`` must not kill (and so restart) ``slow.txt``."""
    ids = add_files(service, tmp_path / "docs", ["slow.txt", "quick.txt"], operation="slow")
    # slow.txt outlasts several heartbeats (every 2 s), so the cancel reaches the worker
    # while slow.txt still runs and quick.txt waits behind it.
    worker = procs.worker(db_path, *SLOW, *CANCEL_LEASE, "--json", DOCQ_TEST_SLOW="8")
    handler_started(procs, "worker", watch=worker)

    assert run_docq("cancel", str(ids["quick.txt"]), db=db_path).returncode == 0

    assert worker.wait(60) == 0, worker.stderr()
    assert item(service, ids["quick.txt"])["status"] == "cancelled"
    assert outcomes(service, ids["slow.txt"]) == ["completed"]
    ran = [Path(path).name for _who, path, _pid in procs.ledger()]
    assert ran == ["slow.txt"], f"the running document was restarted: {ran}"


def test_a_cancel_requested_before_shutdown_is_not_lost(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    """``docq cancel`` of a running item, then its worker stops before its next heartbeat
    (a 60 s lease beats every 20 s): the item must not run again, let alone complete."""
    item_id = add_files(service, tmp_path / "docs", ["slow.txt"], operation="slow")["slow.txt"]
    patient = ("--lease", "60s", "--json")
    first = procs.worker(db_path, *SLOW, *patient, DOCQ_TEST_LABEL="first", DOCQ_TEST_SLOW="30")
    handler_started(procs, "first", watch=first)
    second = procs.worker(
        db_path,
        *SLOW,
        *patient,
        "--loop",
        "--poll-interval",
        "0.1s",
        DOCQ_TEST_LABEL="second",
        DOCQ_TEST_SLOW="0",
    )
    wait_until(lambda: worker_idle(service, second), 60, "the second worker to go idle", watch=[second])
    cancel = run_docq("cancel", "--json", str(item_id), db=db_path)
    assert cancel.returncode == 0 and "stopping" in cancel.stdout, cancel

    first.send(signal.SIGTERM)
    wait_until(lambda: "signal again" in first.stderr(), 30, "the worker to start stopping", watch=[first])
    first.send(signal.SIGTERM)
    assert first.wait(30) == 143, first.stderr()
    wait_until(
        lambda: item(service, item_id)["status"] not in ("pending", "in_progress"), 30, "the item to settle"
    )

    assert item(service, item_id)["status"] == "cancelled", outcomes(service, item_id)
    assert [who for who, _path, _pid in procs.ledger()] == ["first"]
