"""End to end: ``docq work`` over small text files (beside huey, when installed) and over
PDFs (beside pypdfium2 called directly), start-up times, and an idle worker's memory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from docq.bench import documents
from docq.bench.common import (
    BenchOptions,
    Measure,
    Progress,
    Report,
    docq_command,
    on_sqlite,
    open_service,
    scratch_database,
)
from docq.config import Settings

PDF_ROUNDS = 2
"""Each PDF rate is the best of this many runs, taken in turn (the PDF runs take seconds each)."""


def _work(target: str, settings: Settings, concurrency: int = 1) -> tuple[float, Any]:
    from docq.worker import process_document_queue

    started = time.perf_counter()
    summary = process_document_queue(target, settings=replace(settings, db=target, concurrency=concurrency))
    return time.perf_counter() - started, summary


def text_files(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    from docq.enqueue import enqueue_paths

    section = f"end to end: docq work over {options.texts:,} small text files (default settings)"
    paths = documents.write_text_files(os.path.join(scratch, "texts"), options.texts, seed=3)
    progress("end-to-end docq work over text files")
    with scratch_database(on_sqlite(options), scratch, "e2e") as target:
        service = open_service(target, Settings())
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


def pdfs(report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress) -> None:
    """PDF extraction on two sets: a few long PDFs, and many one-page ones, where what docq
    adds per document (hashing, metadata, the queue, the child's messages) shows most."""
    long_set = documents.write_pdfs(os.path.join(scratch, "pdfs"), options.pdfs, pages=options.pages)
    _pdf_set(
        report,
        f"PDF extraction: {options.pdfs} PDFs x {options.pages} pages",
        long_set,
        options.pages,
        options,
        settings,
        scratch,
        progress,
    )
    small_set = documents.write_pdfs(
        os.path.join(scratch, "small-pdfs"), options.small_pdfs, pages=1, seed=13
    )
    _pdf_set(
        report,
        f"PDF extraction: {options.small_pdfs} one-page PDFs",
        small_set,
        1,
        options,
        settings,
        scratch,
        progress,
    )


def _pdf_set(
    report: Report,
    section: str,
    paths: list[str],
    pages_each: int,
    options: BenchOptions,
    settings: Settings,
    scratch: str,
    progress: Progress,
) -> None:
    """pypdfium2 and docq over ``paths``. pypdfium2 is timed in this process, already
    imported; a ``docq work`` run also starts its children (a Python and the parsers'
    imports each). So docq is timed over the whole set and over its first quarter, and
    the difference gives its rate once running, which the targets compare, beside the
    whole-run rate and the start-up it leaves out."""
    from docq.enqueue import enqueue_paths

    quarter = paths[: max(1, len(paths) // 4)]

    def work(concurrency: int, subset: list[str]) -> float:
        name = f"pdf{pages_each}-{concurrency}-{len(subset)}"
        with scratch_database(on_sqlite(options), scratch, name) as target:
            service = open_service(target, settings)
            enqueue_paths(service, subset)
            service.close()
            elapsed, summary = _work(target, settings, concurrency)
        if summary.completed != len(subset):
            raise RuntimeError(f"bench: {len(subset) - summary.completed} PDFs did not complete")
        return elapsed

    seconds: dict[str, float] = {}  # the fastest of the rounds
    for round_ in range(1, PDF_ROUNDS + 1):
        progress(f"{section}, round {round_}: pypdfium2 directly, docq's extractor, docq work -c 1 and -c 2")
        candidates = {
            "direct": _pypdfium2_direct(paths),
            "inline": _extract_inline(paths),
            "c1": work(1, paths),
            "c1 quarter": work(1, quarter),
            "c2": work(2, paths),
            "c2 quarter": work(2, quarter),
        }
        for name, elapsed in candidates.items():
            seconds[name] = min(seconds.get(name, float("inf")), elapsed)
    pages, rest = len(paths) * pages_each, (len(paths) - len(quarter)) * pages_each
    direct = pages / seconds["direct"]
    report.add(Measure(section, "pypdfium2 called directly, one process", direct, "pages/s"))
    inline = pages / seconds["inline"]
    report.add(Measure(section, "docq's extractor called directly (no queue, no child)", inline, "pages/s"))
    running: dict[int, float] = {}
    for concurrency in (1, 2):
        whole, part = seconds[f"c{concurrency}"], seconds[f"c{concurrency} quarter"]
        note = f"{len(paths) / whole:.1f} docs/s, start-up included"
        report.add(
            Measure(section, f"docq work --concurrency {concurrency}", pages / whole, "pages/s", note=note)
        )
        # On sets too small to time apart (bench --quick), noise can undo the difference.
        running[concurrency] = rest / (whole - part) if whole > part else pages / whole
        start = max(0.0, whole - pages / running[concurrency])
        report.add(
            Measure(
                section,
                f"docq work --concurrency {concurrency}, once running",
                running[concurrency],
                "pages/s",
                note=f"start-up {start:.2f} s",
            )
        )
    ratio = running[1] / direct
    report.add(
        Measure(
            section,
            "docq (concurrency 1, once running) / pypdfium2",
            ratio * 100,
            "%",
            ">= 85%",
            ratio >= 0.85,
        )
    )
    speedup = running[2] / running[1]
    report.add(
        Measure(
            section, "concurrency 2 / concurrency 1, once running", speedup, "x", ">= 1.6x", speedup >= 1.6
        )
    )
    # What docq adds to each document at concurrency 1, over reading it with pypdfium2.
    overhead = (pages_each / running[1] - pages_each / direct) * 1000
    report.add(
        Measure(
            section,
            "docq's overhead per document above pypdfium2 (concurrency 1, once running)",
            overhead,
            "ms",
        )
    )


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


def _best_wall(argv: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=False)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def startup(report: Report, scratch: str, progress: Progress) -> None:
    progress("start-up times")
    section = "start-up (best of 7, wall)"
    version = _best_wall([*docq_command(), "--version"], 7)
    report.add(Measure(section, "docq --version", version, "ms", "<= 150 ms", version <= 150))
    db = os.path.join(scratch, "startup.db")
    env = {**os.environ, "DOCQ_DB": db}
    subprocess.run([*docq_command(), "stats"], capture_output=True, env=env, check=False)
    stats_ms = _best_wall([*docq_command(), "stats"], 7, env)
    sqlmodel_ms = _best_wall([sys.executable, "-c", "import sqlmodel"], 7)
    report.add(Measure(section, "docq stats", stats_ms, "ms"))
    report.add(Measure(section, 'python -c "import sqlmodel"', sqlmodel_ms, "ms"))
    above = stats_ms - sqlmodel_ms
    report.add(Measure(section, "docq stats above import sqlmodel", above, "ms", "<= 100 ms", above <= 100))


def idle_worker(report: Report, scratch: str, progress: Progress) -> None:
    progress("idle worker memory")
    db = os.path.join(scratch, "idle.db")
    env = {**os.environ, "DOCQ_DB": db}
    process = subprocess.Popen(
        [*docq_command(), "work", "--loop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
