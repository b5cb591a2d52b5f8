"""What ``docq work`` shows: live counts or a line per item while it runs, and a summary."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from docq.config import format_duration
from docq.render import output
from docq.render.output import plural, shown_path

if TYPE_CHECKING:
    from rich.progress import Progress

    from docq.worker import ItemEvent, WorkSummary


class WorkDisplay:
    """What `docq work` shows while it runs: a live line of counts on a terminal, or one
    log line per finished item on stderr (the worker's own warnings go there through
    `output.log_to_stderr`)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.terminal = enabled and output.stderr_is_terminal()
        self.counts = {"completed": 0, "failed": 0, "retrying": 0, "cancelled": 0, "discarded": 0}
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> WorkDisplay:
        if self.terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=output.err(),
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

    def event(self, event: ItemEvent) -> None:
        """One recorded attempt."""
        self.counts[event.verdict] = self.counts.get(event.verdict, 0) + 1
        if self._progress is not None:
            self._progress.update(self._task, description=self._describe())
            if event.verdict in ("failed", "retrying", "discarded"):
                output.err().print(_item_line(event), style="red", markup=False, highlight=False)
        elif self.enabled:
            output.warn(_item_line(event))

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


def work_summary(summary: WorkSummary) -> None:
    """The last line of ``docq work``: each item once, by how its last attempt ended (the
    counts add up to the items), then what was given back or discarded."""
    parts = [
        f"{summary.completed} completed",
        f"{summary.failed} failed",
        f"{summary.retried} to retry later",
    ]
    if summary.cancelled:
        parts.append(f"{summary.cancelled} cancelled")
    apart = []
    if summary.released:
        apart.append(f"{plural(summary.released, 'item')} given back unstarted")
    if summary.discarded:
        apart.append(f"{plural(summary.discarded, 'result')} discarded (lease lost)")
    attempts = "" if summary.processed == summary.items else f" in {plural(summary.processed, 'attempt')}"
    tail = f"; {', '.join(apart)}" if apart else ""
    output.out().print(f"Processed {plural(summary.items, 'item')}{attempts}: {', '.join(parts)}{tail}.")
