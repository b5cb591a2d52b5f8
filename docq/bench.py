"""``docq bench``: measure docq on this machine, beside baselines run in the same process.

Everything runs on temporary databases (a scratch file beside ``--db`` for SQLite, a
scratch schema for PostgreSQL) and temporary documents, removed afterwards. Times on a
shared machine drift, so the figures that matter are ratios taken in one run: docq
against the same SQL on a bare sqlite3 connection, against pypdfium2 called directly,
against huey (when installed), and at 1,000 against 1,000,000 pending items.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from docq import bench_data
from docq import queries as q
from docq.config import Settings
from docq.leases import AttemptResult
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
    large: bool = False
    target: str | None = None  # --db: where the scratch databases go

    def quick(self) -> BenchOptions:
        """A run of a few seconds that still reports every figure."""
        return replace(self, files=300, items=300, texts=200, pdfs=4, pages=3)


@dataclass
class Report:
    """All measures, in order, plus what the run was."""

    measures: list[Measure] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def add(self, measure: Measure) -> Measure:
        self.measures.append(measure)
        return measure


Progress = Callable[[str], None]


def run(options: BenchOptions, settings: Settings, progress: Progress = lambda _m: None) -> Report:
    """Run every part of the benchmark and return the report."""
    report = Report(machine=_machine(settings))
    scratch = tempfile.mkdtemp(prefix="docq-bench-")
    try:
        _enqueue(report, options, settings, scratch, progress)
        _claim_complete(report, options, settings, scratch, progress)
        _scaling(report, options, settings, scratch, progress)
        _end_to_end_text(report, options, settings, scratch, progress)
        _pdf(report, options, settings, scratch, progress)
        _startup(report, scratch, progress)
        _idle_worker(report, scratch, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def _machine(settings: Settings) -> dict[str, Any]:
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


def _on_sqlite(options: BenchOptions) -> BenchOptions:
    """Options whose scratch databases are SQLite files (beside ``--db`` if it is one)."""
    if options.target is not None and options.target.startswith("postgres"):
        return replace(options, target=None)
    return options


def _service(target: str, settings: Settings) -> DocumentQueueService:
    return DocumentQueueService(target, settings=replace(settings, db=target))


def _fake_files(count: int, prefix: str) -> list[FileFacts]:
    return [FileFacts(f"/bench/{prefix}/{i:07d}.txt", 100, f"{i:064x}", "text/plain") for i in range(count)]


# --- enqueue -------------------------------------------------------------------------


def _enqueue(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    from docq.enqueue import enqueue_paths

    progress(f"bulk enqueue of {options.files} small files")
    paths = bench_data.write_text_files(os.path.join(scratch, "enqueue"), options.files)
    with scratch_database(_on_sqlite(options), scratch, "enqueue") as target:
        service = _service(target, settings)
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
    service: DocumentQueueService, count: int, batch: int, operation: str = "noop"
) -> float:
    """Items/s of one worker claiming ``batch`` no-op items at a time and completing them,
    each completion recorded in the same transaction as the next claim."""
    worker = "bench:1:cc"
    results: list[AttemptResult] = []
    done = 0
    started = time.perf_counter()
    while True:
        _verdicts, claimed = service.exchange(
            results, operation=operation, limit=min(batch, count - done), worker=worker, lease_seconds=60
        )
        results = [AttemptResult(lease, ok=True) for lease in claimed]
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
            ids = {f"i{n}": row[0] for n, row in enumerate(held)}
            marks = ", ".join(f":{name}" for name in ids)
            cursor.execute(q.COMPLETE_MANY.format(ids=marks), {**ids, "token": token, "now": now}).fetchall()
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
            cursor.execute(q.SWEEP_EXPIRED, {"now": now, "max_attempts": 5, "error": ""}).fetchall()
            held = cursor.execute(
                q.CLAIM_SQLITE,
                {"lane": "noop", "limit": limit, "lease": 60, "worker": "raw", "token": token, "now": now},
            ).fetchall()
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
PDF_ROUNDS = 2  # the PDF runs take seconds each


def _noop_rate(
    options: BenchOptions, settings: Settings, scratch: str, batch: int, *, raw: bool = False
) -> float:
    """Items/s of claim+complete on a fresh queue of ``options.items`` no-op items."""
    with scratch_database(options, scratch, f"cc{batch}{'raw' if raw else ''}") as target:
        service = _service(target, settings)
        service.add_documents(_fake_files(options.items, f"cc{batch}"), operation="noop")
        if raw:
            service.close()
            return raw_claim_complete(target, options.items, batch, settings.synchronous)
        rate = docq_claim_complete(service, options.items, batch)
        service.close()
        return rate


def _claim_complete(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    local = _on_sqlite(options)
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


def _scaling(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    small, large = 1_000, (1_000_000 if options.large else max(20_000, options.items * 4))
    section = "claim cost as the queue grows" + ("" if options.large else " (--large for 1,000,000)")
    sample = min(2_000, options.items)
    rates = {}
    for pending in (small, large):
        progress(f"claim rate with {pending:,} pending")
        with scratch_database(_on_sqlite(options), scratch, f"scale{pending}") as target:
            service = _service(target, settings)
            for start in range(0, pending, 50_000):
                chunk = _fake_files(min(50_000, pending - start), f"s{pending}-{start}")
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


# --- end to end ----------------------------------------------------------------------


def _work(target: str, settings: Settings, concurrency: int = 1) -> tuple[float, Any]:
    from docq.worker import process_document_queue

    started = time.perf_counter()
    summary = process_document_queue(target, settings=replace(settings, db=target, concurrency=concurrency))
    return time.perf_counter() - started, summary


def _end_to_end_text(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    from docq.enqueue import enqueue_paths

    section = f"end to end: docq work over {options.texts:,} small text files (default settings)"
    paths = bench_data.write_text_files(os.path.join(scratch, "texts"), options.texts, seed=3)
    progress("end-to-end docq work over text files")
    with scratch_database(_on_sqlite(options), scratch, "e2e") as target:
        service = _service(target, Settings())
        enqueue_paths(service, paths)
        service.close()
        elapsed, summary = _work(target, replace(Settings(), lock_timeout=settings.lock_timeout))
    docq_rate = summary.completed / elapsed
    report.add(Measure(section, "docq work (child processes, synchronous=full)", docq_rate, "docs/s"))
    huey_rate = _huey(paths, scratch, progress)
    if huey_rate is None:
        report.add(
            Measure(section, "huey SqliteHuey", None, "docs/s", note="huey not installed: pip install huey")
        )
        return
    report.add(Measure(section, "huey SqliteHuey, same work", huey_rate, "docs/s"))
    ratio = docq_rate / huey_rate
    report.add(Measure(section, "docq / huey", ratio * 100, "%", "> 100%", ratio > 1))


def _huey(paths: list[str], scratch: str, progress: Progress) -> float | None:
    """huey's SqliteHuey doing the same work (read the file, count its words, store the
    result), drained in-process by one worker: its leanest path."""
    try:
        from huey import SqliteHuey
    except ImportError:
        return None
    progress("huey baseline")
    huey = SqliteHuey(filename=os.path.join(scratch, "huey.db"))

    @huey.task()  # type: ignore[untyped-decorator]
    def count_words(path: str) -> int:
        with open(path, encoding="utf-8") as handle:
            return len(handle.read().split())

    for path in paths:
        count_words(path)
    started = time.perf_counter()
    done = 0
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
        done += 1
    return done / (time.perf_counter() - started)


def _pdf(report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress) -> None:
    from docq.enqueue import enqueue_paths

    section = f"PDF extraction: {options.pdfs} PDFs x {options.pages} pages"
    paths = bench_data.write_pdfs(os.path.join(scratch, "pdfs"), options.pdfs, pages=options.pages)
    pages = options.pdfs * options.pages

    def work(concurrency: int) -> tuple[float, float]:
        with scratch_database(_on_sqlite(options), scratch, f"pdf{concurrency}") as target:
            service = _service(target, settings)
            enqueue_paths(service, paths)
            service.close()
            elapsed, summary = _work(target, settings, concurrency)
        return pages / elapsed, summary.completed / elapsed

    best: dict[str, tuple[float, float]] = {}
    for round_ in range(1, PDF_ROUNDS + 1):
        progress(f"PDFs, round {round_}: pypdfium2 directly, docq's extractor, docq work -c 1 and -c 2")
        candidates = {
            "direct": (pages / _pypdfium2_direct(paths), 0.0),
            "inline": (pages / _extract_inline(paths), 0.0),
            "c1": work(1),
            "c2": work(2),
        }
        for name, rate in candidates.items():
            best[name] = max(best.get(name, (0.0, 0.0)), rate)
    report.add(Measure(section, "pypdfium2 called directly, one process", best["direct"][0], "pages/s"))
    report.add(
        Measure(
            section, "docq's extractor called directly (no queue, no child)", best["inline"][0], "pages/s"
        )
    )
    for concurrency in (1, 2):
        page_rate, doc_rate = best[f"c{concurrency}"]
        note = f"{doc_rate:.1f} docs/s"
        report.add(
            Measure(section, f"docq work --concurrency {concurrency}", page_rate, "pages/s", note=note)
        )
    ratio = best["c1"][0] / best["direct"][0]
    report.add(
        Measure(section, "docq (concurrency 1) / pypdfium2", ratio * 100, "%", ">= 85%", ratio >= 0.85)
    )
    speedup = best["c2"][0] / best["c1"][0]
    report.add(Measure(section, "concurrency 2 / concurrency 1", speedup, "x", ">= 1.7x", speedup >= 1.7))


def _extract_inline(paths: list[str]) -> float:
    from docq.processing import extract

    started = time.perf_counter()
    for path in paths:
        extract(path)
    return time.perf_counter() - started


def _pypdfium2_direct(paths: list[str]) -> float:
    import pypdfium2 as pdfium

    started = time.perf_counter()
    for path in paths:
        document = pdfium.PdfDocument(path)
        for index in range(len(document)):
            page = document[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
        document.close()
    return time.perf_counter() - started


# --- start-up and memory -------------------------------------------------------------


def _docq_command() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "docq")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "docq"]


def _best_wall(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=False)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _startup(report: Report, scratch: str, progress: Progress) -> None:
    progress("start-up times")
    section = "start-up (best of 7, wall)"
    version = _best_wall([*_docq_command(), "--version"], 7)
    report.add(Measure(section, "docq --version", version, "ms", "<= 150 ms", version <= 150))
    db = os.path.join(scratch, "startup.db")
    env = {**os.environ, "DOCQ_DB": db}
    subprocess.run([*_docq_command(), "stats"], capture_output=True, env=env, check=False)
    stats_ms = _best_wall([*_docq_command(), "stats"], 7, env)
    sqlmodel_ms = _best_wall([sys.executable, "-c", "import sqlmodel"], 7)
    report.add(Measure(section, "docq stats", stats_ms, "ms"))
    report.add(Measure(section, 'python -c "import sqlmodel"', sqlmodel_ms, "ms"))
    above = stats_ms - sqlmodel_ms
    report.add(Measure(section, "docq stats above import sqlmodel", above, "ms", "<= 100 ms", above <= 100))


def _idle_worker(report: Report, scratch: str, progress: Progress) -> None:
    progress("idle worker memory")
    db = os.path.join(scratch, "idle.db")
    env = {**os.environ, "DOCQ_DB": db}
    process = subprocess.Popen(
        [*_docq_command(), "work", "--loop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        rss = None
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if _worker_registered(db):
                time.sleep(1.0)  # let it settle into its idle loop
                rss = _rss_mib(process.pid)
                break
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    if rss is not None:
        report.add(
            Measure(
                "memory", "idle docq work --loop, resident", rss, "MiB", "<= 100 MB", rss * 1.048576 <= 100
            )
        )


def _worker_registered(db: str) -> bool:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return bool(conn.execute("SELECT count(*) FROM workers").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
