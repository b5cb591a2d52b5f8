"""Concurrent workers as real processes on real databases: many `docq work` processes drain
one queue with every item completed exactly once, nobody sees "database is locked" or a
traceback, the lock budget ends in exit 6 (or waits when the lock is released in time),
and on PostgreSQL NOTIFY wakes idle workers and a killed connection is survived.

The guarantee under test (the issue): "nothing is lost, no item completes twice, no user
ever sees 'database is locked' or a traceback, and no item stays in progress forever."
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from conftest import docq_env, run_docq
from workload import (
    Processes,
    WorkerProcess,
    add_files,
    counts,
    only,
    open_queue,
    rows,
    wait_until,
    worker_idle,
)

from docq.queue import DocumentQueueService

pytestmark = pytest.mark.slow

LEDGER = ("--operation", "ledger", "--handler", "workload:ledger")


def assert_quiet(workers: list[WorkerProcess]) -> None:
    """Nothing on any worker's stderr but the notice of a requested stop: no lock error,
    no busy warning, no traceback."""
    for worker in workers:
        err = worker.stderr()
        assert "locked" not in err.lower() and "Traceback" not in err, err
        lines = [re.sub(r"^\S+Z ", "", line) for line in err.splitlines()]  # less the timestamps
        assert [line for line in lines if not line.startswith("docq: stopping: ")] == [], err


def assert_completed_exactly_once(service: DocumentQueueService, item_ids: set[int]) -> None:
    """Each item completed, with exactly one attempt in its history, a completed one."""
    attempts = rows(service, "SELECT item_id, outcome FROM attempts")
    completed = Counter(a["item_id"] for a in attempts if a["outcome"] == "completed")
    assert set(completed) == item_ids
    assert [n for n in completed.values() if n != 1] == []
    assert len(attempts) == len(item_ids), Counter(a["outcome"] for a in attempts)
    items = rows(service, "SELECT id, status, attempts FROM queue_items")
    assert {(i["id"], i["status"], i["attempts"]) for i in items} == {(i, "completed", 1) for i in item_ids}


def assert_ledger_once(procs: Processes, paths: set[str]) -> None:
    """The handler ran exactly once per document (no worker died, so no re-run)."""
    seen = Counter(path for _label, path, _pid in procs.ledger())
    assert set(seen) == paths
    assert [path for path, n in seen.items() if n != 1] == []


def processing_span(service: DocumentQueueService) -> float:
    """Seconds from the first claim to the last recorded attempt."""
    span = rows(service, "SELECT min(started_at) AS first, max(finished_at) AS last FROM attempts")[0]
    return float(span["last"] - span["first"])


# --- many workers, one queue -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["once", "loop"])
def test_four_workers_drain_1000_items_exactly_once(
    db_target: str, any_service: DocumentQueueService, procs: Processes, tmp_path: Path, mode: str
) -> None:
    """once: four cron-style workers started together on a full queue. loop: four warm
    ``--loop`` workers, idle, when 1,000 items arrive at once (all four compete from the
    first claim on, instead of the first to start taking most)."""
    names = [f"doc-{n:04}.txt" for n in range(1000)]
    options = (
        (*LEDGER, "--json") if mode == "once" else (*LEDGER, "--json", "--loop", "--poll-interval", "0.05s")
    )
    if mode == "once":
        items = add_files(any_service, tmp_path / "docs", names, operation="ledger")
    started = time.monotonic()
    workers = [procs.worker(db_target, *options, DOCQ_TEST_LABEL=f"w{n}") for n in range(4)]
    if mode == "loop":
        wait_until(
            lambda: all(worker_idle(any_service, w) for w in workers), 60, "idle workers", watch=workers
        )
        started = time.monotonic()
        items = add_files(any_service, tmp_path / "docs", names, operation="ledger")
        wait_until(lambda: counts(any_service)["completed"] == 1000, 120, "the drain", watch=workers)
        for worker in workers:
            worker.send(signal.SIGTERM)
    codes = [worker.wait(timeout=120) for worker in workers]
    wall = time.monotonic() - started

    assert codes == [0, 0, 0, 0], [worker.stderr() for worker in workers]
    assert_quiet(workers)
    assert counts(any_service) == only(completed=1000)
    summaries = [worker.summary() for worker in workers]
    assert sum(s["completed"] for s in summaries) == 1000
    assert sum(s["processed"] for s in summaries) == 1000
    assert_completed_exactly_once(any_service, set(items.values()))
    assert_ledger_once(procs, {str(Path(tmp_path / "docs" / name).resolve()) for name in items})
    span = processing_span(any_service)
    backend = "postgresql" if "://" in db_target else "sqlite"
    since = "from start" if mode == "once" else "from enqueue"
    print(
        f"\n[{backend}, {mode}] 4 workers, 1000 items: {span:.2f}s first claim to last result "
        f"({1000 / span:.0f} items/s), {wall:.2f}s wall {since}; "
        f"per worker {[s['completed'] for s in summaries]}"
    )


def test_twenty_cron_workers_started_at_once(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    items = add_files(service, tmp_path / "docs", [f"doc-{n:03}.txt" for n in range(200)], operation="ledger")

    # Crontab overlap: twenty one-shot workers at the same moment; items take ~20 ms each,
    # so the drain lasts long enough for all of them to compete for claims.
    workers = [procs.worker(db_path, *LEDGER, "--json", DOCQ_TEST_DELAY="0.02") for _ in range(20)]
    codes = [worker.wait(timeout=120) for worker in workers]

    assert codes == [0] * 20, [worker.stderr() for worker in workers if worker.process.returncode]
    assert_quiet(workers)
    assert counts(service) == only(completed=200)
    summaries = [worker.summary() for worker in workers]
    assert sum(s["completed"] for s in summaries) == 200
    assert_completed_exactly_once(service, set(items.values()))
    assert_ledger_once(procs, {str(Path(tmp_path / "docs" / name).resolve()) for name in items})
    print(f"\n20 cron workers, 200 items: per worker {sorted(s['completed'] for s in summaries)}")


def test_commands_beside_busy_workers_never_see_a_lock(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    names = [f"doc-{n:03}.txt" for n in range(600)]
    items = set(add_files(service, tmp_path / "docs", names, operation="ledger").values())
    workers = [
        procs.worker(db_path, *LEDGER, "--loop", "--poll-interval", "0.1s", "--json", DOCQ_TEST_DELAY="0.02")
        for _ in range(4)
    ]

    commands = []
    late = tmp_path / "late"
    late.mkdir()
    for batch in range(5):  # users enqueue and look while the workers drain
        files = [late / f"late-{batch}-{n}.txt" for n in range(20)]
        for path in files:
            path.write_text(f"{path.name}\n")
        queued = run_docq("enqueue", "--operation", "ledger", "--json", *map(str, files), db=db_path)
        commands += [queued, run_docq("stats", "--json", db=db_path)]
        if queued.returncode == 0:
            items |= {entry["item_id"] for entry in json.loads(queued.stdout)["queued"]}

    for command in commands:
        assert (command.returncode, command.stderr) == (0, ""), command
    wait_until(lambda: counts(service) == only(completed=700), 60, "the drain", watch=workers)
    for worker in workers:
        worker.send(signal.SIGTERM)
    assert [worker.wait(30) for worker in workers] == [0, 0, 0, 0]
    assert_quiet(workers)
    assert_completed_exactly_once(service, items)


# --- the lock budget ----------------------------------------------------------------------

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
print("released", time.time(), flush=True)
"""


def hold_write_lock(procs: Processes, db_path: str, seconds: float) -> WorkerProcess:
    """A separate process that takes the SQLite write lock and holds it for ``seconds``;
    returns once it holds the lock."""
    holder = procs.spawn([sys.executable, "-c", HOLDER, db_path, str(seconds)], dict(os.environ))
    wait_until(lambda: "locked" in holder.stdout(), 30, "the holder to take the write lock", watch=[holder])
    return holder


def assert_busy(result: subprocess.CompletedProcess[str]) -> None:
    """Exit 6 and one line naming the busy database: no traceback, no raw SQLite error."""
    assert result.returncode == 6, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("docq: error: database busy: "), result.stderr
    assert "database is locked" not in result.stderr


def test_writes_past_the_lock_budget_exit_6_and_change_nothing(
    db_path: str, procs: Processes, tmp_path: Path
) -> None:
    open_queue(db_path).close()  # the queue exists
    document = tmp_path / "f.txt"
    document.write_text("hello\n")
    holder = hold_write_lock(procs, db_path, seconds=120)
    busy = docq_env(db_path, DOCQ_LOCK_TIMEOUT="1")

    started = time.monotonic()
    enqueued = run_docq("enqueue", str(document), env=busy)
    took = time.monotonic() - started
    worked = run_docq("work", "--operation", "noop", env=busy)
    looked = run_docq("stats", "--json", env=busy)

    assert_busy(enqueued)
    assert enqueued.stdout == ""
    assert 1 <= took < 20
    assert_busy(worked)
    assert looked.returncode == 0 and json.loads(looked.stdout)["total"] == 0  # readers are not blocked
    holder.send(signal.SIGKILL)  # a dead holder's lock is released by the kernel
    holder.wait()
    with sqlite3.connect(db_path) as conn:
        for table in ("documents", "queue_items", "workers"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


def test_enqueue_waits_for_a_lock_released_within_the_budget(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    document = tmp_path / "f.txt"
    document.write_text("hello\n")
    # Held for 1.5 s, longer than docq takes to start, so the enqueue meets the lock.
    holder = hold_write_lock(procs, db_path, seconds=1.5)

    started = time.time()
    result = run_docq("enqueue", str(document), env=docq_env(db_path, DOCQ_LOCK_TIMEOUT="5"))

    assert result.returncode == 0, result
    assert "locked" not in result.stderr and "Traceback" not in result.stderr
    assert counts(service) == only(pending=1)
    assert holder.wait(10) == 0
    released = float(holder.stdout().split("released")[1])
    created = rows(service, "SELECT created_at FROM queue_items")[0]["created_at"]
    assert started < released <= created  # it started before the release and wrote after it


def test_worker_rides_out_a_lock_held_past_its_budget(
    db_path: str, service: DocumentQueueService, procs: Processes, tmp_path: Path
) -> None:
    names = [f"doc-{n:02}.txt" for n in range(30)]
    items = set(add_files(service, tmp_path / "docs", names, operation="ledger").values())
    worker = procs.worker(
        db_path,
        *LEDGER,
        "--loop",
        "--poll-interval",
        "0.1s",
        "--json",
        DOCQ_TEST_DELAY="0.1",
        DOCQ_LOCK_TIMEOUT="1",
    )
    wait_until(lambda: counts(service)["completed"] >= 3, 60, "the worker to get going", watch=[worker])

    holder = hold_write_lock(procs, db_path, seconds=3)  # three times the worker's lock budget
    wait_until(lambda: "released" in holder.stdout(), 30, "the holder to let go", watch=[worker])
    wait_until(lambda: counts(service) == only(completed=30), 60, "the rest of the items", watch=[worker])

    worker.send(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.stderr()
    err = worker.stderr()
    assert "database busy" in err and "tries again" in err, err  # it told the operator...
    assert "database is locked" not in err and "Traceback" not in err, err  # ...in words
    assert worker.summary()["completed"] == 30
    assert_completed_exactly_once(service, items)


# --- PostgreSQL: NOTIFY and lost connections ------------------------------------------------


def test_postgres_notify_wakes_an_idle_worker(pg_url: str, procs: Processes, tmp_path: Path) -> None:
    service = open_queue(pg_url)
    try:
        worker = procs.worker(pg_url, "--operation", "noop", "--loop", "--poll-interval", "30s", "--json")
        wait_until(lambda: worker_idle(service, worker), 60, "the worker to go idle", watch=[worker])
        document = tmp_path / "new.txt"
        document.write_text("news\n")

        started = time.monotonic()
        result = run_docq("enqueue", "--operation", "noop", "--json", str(document), db=pg_url)
        assert result.returncode == 0, result
        wait_until(lambda: counts(service)["completed"] == 1, 30, "the item to complete", watch=[worker])
        took = time.monotonic() - started

        assert took < 5, f"an idle worker took {took:.1f}s to notice an enqueue (poll interval 30s)"
        row = rows(service, "SELECT created_at, finished_at FROM queue_items")[0]
        print(
            f"\nNOTIFY: enqueue command to completion {took:.2f}s; "
            f"queued to completed {row['finished_at'] - row['created_at']:.3f}s"
        )
        worker.send(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.stderr()
        assert worker.summary()["completed"] == 1
    finally:
        service.close()


def backends(admin_url: str, application_name: str) -> dict[int, str]:
    """The server processes serving ``application_name``: pid -> last query."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return dict(found)


def terminate(admin_url: str, pids: Iterable[int]) -> int:
    """Kill these server processes, as a failover or an administrator would; returns how
    many were signalled (they go away shortly after)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM unnest(%s::int[]) AS pid",
            (list(pids),),
        ).fetchone()
    return int(row[0]) if row else 0


def test_postgres_worker_survives_killed_connections(pg_url: str, procs: Processes, tmp_path: Path) -> None:
    # Tag the worker's connections so that only they are terminated (other tests may be
    # using the same server).
    url = f"{pg_url}&application_name={procs.marker}"
    admin_url = pg_url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
    service = open_queue(pg_url)
    try:
        worker = procs.worker(url, *LEDGER, "--loop", "--poll-interval", "0.5s", "--lease", "5s", "--json")
        add_files(service, tmp_path / "before", [f"a-{n}.txt" for n in range(5)], operation="ledger")
        wait_until(lambda: counts(service)["completed"] == 5, 60, "the first items", watch=[worker])

        def both_connections() -> dict[int, str] | None:
            found = backends(admin_url, procs.marker)
            return found if len(found) >= 2 else None

        killed = wait_until(both_connections, 30, "the worker's two connections (queue and LISTEN)")

        assert terminate(admin_url, killed) == len(killed)
        wait_until(lambda: not set(killed) & set(backends(admin_url, procs.marker)), 30, "the backends to go")

        add_files(service, tmp_path / "after", [f"b-{n}.txt" for n in range(5)], operation="ledger")
        wait_until(
            lambda: counts(service)["completed"] == 10, 60, "items queued after the kill", watch=[worker]
        )
        wait_until(
            lambda: any(
                "LISTEN" in query
                for pid, query in backends(admin_url, procs.marker).items()
                if pid not in killed
            ),
            30,
            "the worker to listen again",
            watch=[worker],
        )
        assert counts(service) == only(completed=10)
        worker.send(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.stderr()
        assert worker.summary()["completed"] == 10
        assert "Traceback" not in worker.stderr()
    finally:
        service.close()
