"""How the commands that change the queue answer: enqueue, reprocess, retry, cancel, purge."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from docq.render import output
from docq.render.output import plural, shown_path

if TYPE_CHECKING:
    from rich.progress import Progress

    from docq.enqueue import EnqueueReport
    from docq.maintenance import Change, PurgeCount

PROGRESS_AFTER = 0.5  # seconds: a progress bar only for batches that take a while


# --- enqueue -------------------------------------------------------------------------


class EnqueueProgress:
    """A progress bar on stderr for large batches, on a terminal only."""

    def __init__(self, *, enabled: bool, known: int | None) -> None:
        self.enabled = enabled and output.stderr_is_terminal()
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
            self._progress = Progress(*columns, console=output.err(), transient=True)
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
    output.out().print(("; ".join(parts) + ".").capitalize())
    if skipped.get("failed"):
        output.warn(
            f"{plural(skipped['failed'], 'file')} failed before and did not change: "
            "`docq retry` (or enqueue --force) runs them again"
        )
    if report.rejected:
        grid = output.table("Rejected", "Why")
        for rejected in report.rejected:
            grid.add_row(output.PathCell(rejected.path), rejected.error)
        output.print_table(grid, to_stderr=True)


def changes(items: Sequence[Change], *, as_json: bool, dry_run: bool, noun: str = "item") -> None:
    """What reprocess, retry or cancel did (or would do, with --dry-run)."""
    if as_json:
        output.print_json(
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
        output.out().print(f"Nothing to do: no matching {noun}s.")
        return
    grid = output.table("Item", "Doc", "Operation", "Action", "Path")
    for c in items:
        action = f"would be {c.action}" if dry_run and c.action not in ("already queued",) else c.action
        grid.add_row(
            str(c.item_id or "-"), str(c.document_id), c.operation or "", action, output.PathCell(c.path)
        )
    output.print_table(grid)
    if dry_run:
        output.warn("dry run: nothing was changed")


# --- purge ---------------------------------------------------------------------------


def purge_result(
    count: PurgeCount, *, as_json: bool, dry_run: bool, to_stderr: bool = False, cancelled: bool = False
) -> None:
    """What ``docq purge`` removed (or would remove)."""
    if as_json:
        output.print_json(
            {
                "dry_run": dry_run,
                "items": count.items,
                "attempts": count.attempts,
                "documents": count.documents,
            }
        )
        return
    verb = "Would delete" if dry_run else "Deleted"
    text = f"{verb} {count.items} items, {count.attempts} attempts and {count.documents} documents."
    if cancelled:
        text = "Nothing deleted."
    elif count.items == 0:
        text = "Nothing to purge."
    if to_stderr:
        output.warn(text)
    else:
        output.out().print(text)
