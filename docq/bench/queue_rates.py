"""The queue's own rates: bulk enqueue, claim+complete against the same SQL on a bare
sqlite3 connection, and the claim's cost as the queue grows."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import replace
from typing import Any

from docq import queries as q
from docq.bench import documents
from docq.bench.common import (
    BenchOptions,
    Measure,
    Progress,
    Report,
    fake_files,
    on_sqlite,
    open_service,
    scratch_database,
)
from docq.config import Settings
from docq.items import Lease, Result, WorkerProgress
from docq.queue import DocumentQueueService


def enqueue(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    from docq.enqueue import enqueue_paths

    progress(f"bulk enqueue of {options.files} small files")
    paths = documents.write_text_files(os.path.join(scratch, "enqueue"), options.files)
    with scratch_database(on_sqlite(options), scratch, "enqueue") as target:
        service = open_service(target, settings)
        started = time.perf_counter()
        result = enqueue_paths(service, paths)
        elapsed = time.perf_counter() - started
        service.close()
    rate = len(result.queued) / elapsed
    report.add(
        Measure("enqueue", "bulk enqueue, hashing included", rate, "files/s", ">= 10,000", rate >= 10_000)
    )


# --- the hot path --------------------------------------------------------------------


def docq_claim_complete(
    service: DocumentQueueService, count: int, batch: int, operation: str = "noop", *, live_row: bool = False
) -> float:
    """Items/s of one worker claiming ``batch`` no-op items at a time and completing them,
    each completion recorded in the same transaction as the next claim. With ``live_row``
    each transaction also writes the worker's row (running items, done), as `docq work`
    does whenever they change, so that `docq top` sees starts and ends as they happen."""
    worker = "bench:1:cc"
    if live_row:
        service.register_worker(worker, operation=operation)
    results: list[tuple[Lease, Result]] = []
    done = 0
    started = time.perf_counter()
    while True:
        running = tuple(lease.item_id for lease, _result in results)
        progress = WorkerProgress(worker, running, done) if live_row else None
        _verdicts, claimed = service.exchange(
            results,
            operation=operation,
            limit=min(batch, count - done),
            worker=worker,
            lease_seconds=60,
            progress=progress,
        )
        results = [(lease, Result(ok=True)) for lease in claimed]
        done += len(claimed)
        if not claimed:
            break
    return done / (time.perf_counter() - started)


def raw_claim_complete(path: str, count: int, batch: int, synchronous: str) -> float:
    """The same statements and transactions as `docq_claim_complete`, on a bare sqlite3
    connection with no layers in between: the baseline docq's hot path is held to."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    conn.execute("PRAGMA foreign_keys=ON")
    cursor = conn.cursor()
    held: list[tuple[Any, ...]] = []
    done = 0
    token = "raw"
    started = time.perf_counter()
    while True:
        now = time.time()
        cursor.execute("BEGIN IMMEDIATE")
        if held:
            ids = {f"ids_{n}": row[0] for n, row in enumerate(held)}
            complete = q.COMPLETE_MANY.replace(":ids", ", ".join(f":{name}" for name in ids))
            cursor.execute(complete, {**ids, "token": token, "now": now}).fetchall()
            cursor.executemany(
                q.RECORD_ATTEMPT,
                [
                    {
                        "item_id": row[0],
                        "attempt": row[3],
                        "worker": "raw",
                        "started_at": row[6],
                        "now": now,
                        "outcome": "completed",
                        "error": None,
                        "seconds": None,
                    }
                    for row in held
                ],
            )
            cursor.executemany(
                q.SET_DOCUMENT_STATUS, [{"status": "processed", "now": now, "id": row[1]} for row in held]
            )
        limit = min(batch, count - done)
        held = []
        if limit:
            cursor.execute(q.SWEEP_UNSTARTED, {"now": now}).fetchall()
            cursor.execute(q.SWEEP_EXPIRED, {"now": now, "max_attempts": 5, "error": ""}).fetchall()
            claim = {"lane": "noop", "limit": limit, "lease": 60, "worker": "raw", "token": token}
            held = cursor.execute(q.CLAIM["sqlite"], {**claim, "now": now, "started": True}).fetchall()
            cursor.executemany(
                q.SET_DOCUMENT_STATUS, [{"status": "processing", "now": now, "id": row[1]} for row in held]
            )
        cursor.execute("COMMIT")
        done += len(held)
        if not held:
            break
    rate = done / (time.perf_counter() - started)
    conn.close()
    return rate


ROUNDS = 3
"""Each rate is the best of this many runs, taken in turn with the runs it is compared
with, so that a moment of load on a shared machine does not decide a ratio."""


def _noop_rate(
    options: BenchOptions,
    settings: Settings,
    scratch: str,
    batch: int,
    *,
    raw: bool = False,
    live_row: bool = False,
) -> float:
    """Items/s of claim+complete on a fresh queue of ``options.items`` no-op items."""
    name = f"cc{batch}{'raw' if raw else ''}{'live' if live_row else ''}"
    with scratch_database(options, scratch, name) as target:
        service = open_service(target, settings)
        service.add_documents(fake_files(options.items, f"cc{batch}"), operation="noop")
        if raw:
            service.close()
            return raw_claim_complete(target, options.items, batch, settings.synchronous)
        rate = docq_claim_complete(service, options.items, batch, live_row=live_row)
        service.close()
        return rate


def claim_complete(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    local = on_sqlite(options)
    section = f"claim+complete, no-op, one worker, synchronous={settings.synchronous}"
    progress("claim+complete, batch 1, beside the bare sqlite3 baseline")
    docq_rate = raw_rate = 0.0
    for _ in range(ROUNDS):
        docq_rate = max(docq_rate, _noop_rate(local, settings, scratch, 1))
        raw_rate = max(raw_rate, _noop_rate(local, settings, scratch, 1, raw=True))
    report.add(Measure(section, "docq, batch 1", docq_rate, "items/s"))
    for batch in (10, 100):
        progress(f"claim+complete, batch {batch}")
        rate = max(_noop_rate(local, settings, scratch, batch) for _ in range(ROUNDS))
        report.add(Measure(section, f"docq, batch {batch}", rate, "items/s"))
    report.add(Measure(section, "bare sqlite3, same SQL, batch 1", raw_rate, "items/s"))
    ratio = docq_rate / raw_rate
    report.add(Measure(section, "docq / bare sqlite3, batch 1", ratio * 100, "%", ">= 50%", ratio >= 0.5))
    # What keeping the worker's row live costs (docq top sees starts and ends as they happen):
    # one more UPDATE in each transaction, at worst one a transaction of one item.
    progress("claim+complete, batch 1, with and without the worker's row kept live")
    plain = live = 0.0
    for _ in range(ROUNDS):
        plain = max(plain, _noop_rate(local, settings, scratch, 1))
        live = max(live, _noop_rate(local, settings, scratch, 1, live_row=True))
    report.add(Measure(section, "docq, batch 1, worker row kept live", live, "items/s"))
    cost = live / plain
    report.add(
        Measure(section, "worker row kept live / not, batch 1", cost * 100, "%", ">= 90%", cost >= 0.9)
    )
    for level, floor in (("normal", 20_000), ("full", 8_000)):
        progress(f"claim+complete, batch 100, synchronous={level}")
        at_level = replace(settings, synchronous=level)  # type: ignore[arg-type]
        rate = max(_noop_rate(local, at_level, scratch, 100) for _ in range(ROUNDS))
        name = f"docq, batch 100, synchronous={level}"
        report.add(Measure("claim+complete, batched", name, rate, "items/s", f">= {floor:,}", rate >= floor))
    if options.target is not None and options.target.startswith("postgres"):
        for batch in (1, 10, 100):
            progress(f"PostgreSQL claim+complete, batch {batch}")
            rate = max(_noop_rate(options, settings, scratch, batch) for _ in range(ROUNDS))
            report.add(Measure("claim+complete on PostgreSQL", f"docq, batch {batch}", rate, "items/s"))


# --- scaling -------------------------------------------------------------------------


def scaling(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    small, large = 1_000, (1_000_000 if options.large else max(20_000, options.items * 4))
    section = "claim cost as the queue grows" + ("" if options.large else " (--large for 1,000,000)")
    sample = min(2_000, options.items)
    rates = {}
    for pending in (small, large):
        progress(f"claim rate with {pending:,} pending")
        with scratch_database(on_sqlite(options), scratch, f"scale{pending}") as target:
            service = open_service(target, settings)
            for start in range(0, pending, 50_000):
                chunk = fake_files(min(50_000, pending - start), f"s{pending}-{start}")
                service.add_documents(chunk, operation="noop")
            rates[pending] = docq_claim_complete(service, sample, 10)
            if pending == large:
                started = time.perf_counter()
                service.get_queue_stats()
                stats_ms = (time.perf_counter() - started) * 1000
            service.close()
        report.add(
            Measure(section, f"claim+complete, batch 10, {pending:,} pending", rates[pending], "items/s")
        )
    ratio = rates[large] / rates[small]
    report.add(
        Measure(section, f"rate at {large:,} / rate at {small:,}", ratio * 100, "%", ">= 75%", ratio >= 0.75)
    )
    report.add(
        Measure(
            section, f"get_queue_stats() with {large:,} items", stats_ms, "ms", "<= 100 ms", stats_ms <= 100
        )
    )
