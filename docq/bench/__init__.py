"""``docq bench``: measure docq on this machine, beside baselines run in the same process.

`docq.bench.queue_rates` measures the queue itself (enqueue, claim+complete, cost as the
queue grows), `docq.bench.end_to_end` the worker, extraction, start-up and memory, on
documents from `docq.bench.documents`, and `docq.bench.top` ``docq top`` on a large queue.

Everything runs on temporary databases (a scratch file beside ``--db`` for SQLite, a
scratch schema for PostgreSQL) and temporary documents, removed afterwards. Times on a
shared machine drift, so the figures that matter are ratios taken in one run: docq
against the same SQL on a bare sqlite3 connection, against pypdfium2 called directly,
against huey (when installed), and at 1,000 against 1,000,000 pending items.
"""

from __future__ import annotations

import shutil
import tempfile

from docq.bench.common import BenchOptions, Measure, Progress, Report, machine
from docq.config import Settings

__all__ = ["BenchOptions", "Measure", "Report", "run", "run_web"]


def run(options: BenchOptions, settings: Settings, progress: Progress = lambda _m: None) -> Report:
    """Run every part of the benchmark and return the report."""
    from docq.bench import end_to_end, queue_rates, top

    report = Report(machine=machine(settings))
    scratch = tempfile.mkdtemp(prefix="docq-bench-")
    try:
        queue_rates.enqueue(report, options, settings, scratch, progress)
        queue_rates.claim_complete(report, options, settings, scratch, progress)
        queue_rates.scaling(report, options, settings, scratch, progress)
        end_to_end.text_files(report, options, settings, scratch, progress)
        end_to_end.pdfs(report, options, settings, scratch, progress)
        end_to_end.startup(report, scratch, progress)
        end_to_end.idle_worker(report, scratch, progress)
        top.top_screens(report, options, settings, scratch, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def run_web(options: BenchOptions, settings: Settings, progress: Progress = lambda _m: None) -> Report:
    """``docq bench --web``: uploads to ``docq serve`` beside a bare FastAPI endpoint."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        from docq.errors import DatabaseError

        raise DatabaseError('the web server is not installed: pip install "docq[web]"') from None
    from docq.bench import web

    report = Report(machine=machine(settings))
    scratch = tempfile.mkdtemp(prefix="docq-bench-")
    try:
        web.web(report, options, scratch, progress)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report
