"""Rendering for the core commands: enqueue, reprocess/retry/cancel, work and stats."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from docq import render
from docq.config import format_duration
from docq.render import plural, shown_path

if TYPE_CHECKING:
    from rich.progress import Progress

    from docq.enqueue import EnqueueReport
    from docq.maintenance import Change
    from docq.stats import QueueStats
    from docq.worker import ItemEvent, WorkSummary

PROGRESS_AFTER = 0.5  # seconds: a progress bar only for batches that take a while


# --- enqueue -------------------------------------------------------------------------


class EnqueueProgress:
    """A progress bar on stderr for large batches, on a terminal only."""

    def __init__(self, *, enabled: bool, known: int | None) -> None:
        self.enabled = enabled and render.stderr_is_terminal()
        self.total = known
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> EnqueueProgress:
        return self

    def update(self, handled: int) -> None:
        """Called by enqueue_paths with the number of inputs handled so far."""
        if not self.enabled:
            return
        if self._progress is None:
            if time.monotonic() - self.started < PROGRESS_AFTER:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

            columns = [SpinnerColumn(), TextColumn("hashing and queueing"), MofNCompleteColumn()]
            if self.total is not None:
                columns.insert(2, BarColumn())
            self._progress = Progress(*columns, console=render.err(), transient=True)
            self._progress.start()
            self._task = self._progress.add_task("enqueue", total=self.total)
        self._progress.update(self._task, completed=handled)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def enqueue_report(report: EnqueueReport) -> None:
    """One summary line on stdout; the rejections as a table on stderr."""
    skipped: dict[str, int] = {}
    for entry in report.skipped:
        skipped[entry.reason] = skipped.get(entry.reason, 0) + 1
    parts = [f"queued {plural(len(report.queued), 'document')}"]
    if report.skipped:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(skipped.items()))
        parts.append(f"skipped {len(report.skipped)} ({reasons})")
    if report.rejected:
        parts.append(f"rejected {len(report.rejected)}")
    render.out().print(("; ".join(parts) + ".").capitalize())
    if report.rejected:
        grid = render.table("Rejected", "Why")
        for rejected in report.rejected:
            grid.add_row(_escape(shown_path(rejected.path)), rejected.error)
        render.print_table(grid, to_stderr=True)


def changes(items: Sequence[Change], *, as_json: bool, dry_run: bool, noun: str = "item") -> None:
    """What reprocess, retry or cancel did (or would do, with --dry-run)."""
    if as_json:
        render.print_json(
            {
                "dry_run": dry_run,
                "changes": [
                    {
                        "item_id": c.item_id,
                        "document_id": c.document_id,
                        "path": shown_path(c.path),
                        "operation": c.operation,
                        "action": c.action,
                    }
                    for c in items
                ],
            }
        )
        return
    if not items:
        render.out().print(f"Nothing to do: no matching {noun}s.")
        return
    grid = render.table("Item", "Document", "Operation", "Action", "Path")
    for c in items:
        action = f"would be {c.action}" if dry_run and c.action not in ("already queued",) else c.action
        grid.add_row(
            str(c.item_id or "-"), str(c.document_id), c.operation or "", action, _escape(shown_path(c.path))
        )
    render.print_table(grid)
    if dry_run:
        render.warn("dry run: nothing was changed")


# --- work ----------------------------------------------------------------------------


class WorkDisplay:
    """What `docq work` shows while it runs: a live line of counts on a terminal, or one
    log line per finished item on stderr; the worker's own warnings go to stderr too."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.terminal = enabled and render.stderr_is_terminal()
        self.counts = {"completed": 0, "failed": 0, "retrying": 0, "cancelled": 0, "discarded": 0}
        self._progress: Progress | None = None
        self._task: Any = None
        self._handler = _StderrHandler()

    def __enter__(self) -> WorkDisplay:
        logger = logging.getLogger("docq")
        logger.addHandler(self._handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        if self.terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=render.err(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._describe(), total=None)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        logging.getLogger("docq").removeHandler(self._handler)

    def event(self, event: ItemEvent) -> None:
        """One recorded attempt."""
        self.counts[event.verdict] = self.counts.get(event.verdict, 0) + 1
        if self._progress is not None:
            self._progress.update(self._task, description=self._describe())
            if event.verdict in ("failed", "retrying", "discarded"):
                render.err().print(_item_line(event), style="red", markup=False, highlight=False)
        elif self.enabled:
            render.warn(_item_line(event))

    def _describe(self) -> str:
        c = self.counts
        return (
            f"working: [green]{c['completed']} completed[/], [red]{c['failed']} failed[/], "
            f"[yellow]{c['retrying']} to retry[/]"
        )


def _item_line(event: ItemEvent) -> str:
    verdict = {"retrying": "failed, will retry", "discarded": "discarded (lease lost)"}.get(
        event.verdict, event.verdict
    )
    took = format_duration(event.seconds)
    line = f"{verdict} item {event.lease.item_id} {shown_path(event.lease.path)} ({took})"
    if event.error and event.verdict in ("failed", "retrying"):
        line += f": {event.error}"
    return line


class _StderrHandler(logging.Handler):
    """The worker's warnings as ``docq: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        render.warn(record.getMessage())


def work_summary(summary: WorkSummary) -> None:
    """The last line of ``docq work``."""
    parts = [
        f"{summary.completed} completed",
        f"{summary.failed} failed",
        f"{summary.retried} to retry later",
    ]
    if summary.cancelled:
        parts.append(f"{summary.cancelled} cancelled")
    if summary.released:
        parts.append(f"{summary.released} given back")
    if summary.discarded:
        parts.append(f"{summary.discarded} discarded")
    attempts = "" if summary.processed == summary.items else f" in {summary.processed} attempts"
    render.out().print(f"Processed {plural(summary.items, 'item')}{attempts}: {', '.join(parts)}.")


# --- stats ---------------------------------------------------------------------------


def stats_dict(s: QueueStats) -> dict[str, Any]:
    """The ``docq stats --json`` form: counts, then times as ISO 8601."""
    return {
        "pending": s.pending,
        "in_progress": s.in_progress,
        "completed": s.completed,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "total": s.total,
        "retrying": s.retrying,
        "next_retry_at": render.iso(s.next_retry_at),
        "oldest_pending_at": render.iso(s.oldest_pending_at),
        "oldest_pending_age_seconds": None
        if s.oldest_pending_at is None
        else round(s.now - s.oldest_pending_at, 3),
        "finished_last_hour": s.finished_last_hour,
        "completed_last_hour": s.completed_last_hour,
        "mean_processing_seconds": None
        if s.mean_processing_seconds is None
        else round(s.mean_processing_seconds, 4),
        "by_operation": s.by_operation,
        "in_progress_items": [
            {
                "item_id": lease.item_id,
                "operation": lease.operation,
                "path": shown_path(lease.path),
                "worker": lease.worker,
                "started_at": render.iso(lease.started_at),
                "lease_expires_at": render.iso(lease.lease_expires_at),
            }
            for lease in s.leases
        ],
    }


def stats(s: QueueStats, *, as_json: bool) -> None:
    """``docq stats``: the counts, the timings, and who holds the running items."""
    if as_json:
        render.print_json(stats_dict(s))
        return
    for grid in stats_tables(s):
        render.print_table(grid)
        render.out().print()


def stats_tables(s: QueueStats) -> list[Any]:
    """The tables of ``docq stats`` (shared with the live dashboard)."""
    counts = render.table("Status", "Items")
    for status, value in (
        ("pending", s.pending - s.retrying),
        ("retrying", s.retrying),
        ("in_progress", s.in_progress),
        ("completed", s.completed),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
    ):
        counts.add_row(render.styled(status), str(value))
    counts.add_row("[bold]total[/]", f"[bold]{s.total}[/]")
    facts = render.table("", "")
    facts.show_header = False
    oldest = "-" if s.oldest_pending_at is None else f"{format_duration(s.now - s.oldest_pending_at)} old"
    facts.add_row("oldest pending item", oldest)
    facts.add_row("next retry due", render.when(s.next_retry_at, s.now))
    facts.add_row("finished in the last hour", f"{s.finished_last_hour} ({s.completed_last_hour} completed)")
    mean = "-" if s.mean_processing_seconds is None else format_duration(s.mean_processing_seconds)
    facts.add_row("mean processing time (last hour)", mean)
    grids = [counts, facts]
    if len(s.by_operation) > 1 or any(op not in ("process", "reprocess") for op in s.by_operation):
        per = render.table("Operation", "Pending", "In progress", "Completed", "Failed", "Cancelled")
        for op, values in sorted(s.by_operation.items()):
            per.add_row(
                op,
                *(
                    str(values.get(k, 0))
                    for k in ("pending", "in_progress", "completed", "failed", "cancelled")
                ),
            )
        grids.append(per)
    if s.leases:
        held = render.table("Item", "Operation", "Worker", "Running for", "Lease until", "Path")
        for lease in s.leases:
            running = "-" if lease.started_at is None else format_duration(s.now - lease.started_at)
            held.add_row(
                str(lease.item_id),
                lease.operation,
                lease.worker or "-",
                running,
                render.when(lease.lease_expires_at, s.now),
                _escape(shown_path(lease.path)),
            )
        grids.append(held)
    return grids


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
