"""What ``docq work`` shows on a terminal: live counts and failures while it runs, and a summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from docq.config import format_duration
from docq.render import output
from docq.render.worklog import item_line, summary_text

if TYPE_CHECKING:
    from rich.progress import Progress

    from docq.worker import ItemEvent, WorkSummary


RECOUNT_EVERY = 10.0  # seconds between counts of the work left (new items, retries come due)


class WorkDisplay:
    """What `docq work` shows on a terminal while it runs: a live line with the items done
    out of those due, the rate, the time left and the counts by outcome, and each failure
    (off a terminal `docq.render.worklog` logs instead). ``due`` counts the work left in
    the queue (due items and leased ones); it is called at the start and every
    `RECOUNT_EVERY` seconds, never per item."""

    def __init__(
        self,
        *,
        enabled: bool,
        quiet: bool = False,
        due: Callable[[], int] | None = None,
        limit: int | None = None,
    ) -> None:
        self.enabled = enabled
        self.quiet = quiet  # failures only
        self.terminal = enabled and output.stderr_is_terminal()
        self.counts = {"completed": 0, "failed": 0, "retrying": 0, "cancelled": 0, "discarded": 0}
        self.done = 0  # attempts recorded
        self.total: int | None = None  # done + left, as last counted
        self._due = due if self.terminal else None
        self._limit = limit  # --max-items: the run does no more than this
        self._counted_at = 0.0
        self._started = time.monotonic()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> WorkDisplay:
        if self.terminal:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._recount()
            self._progress = Progress(
                SpinnerColumn(),
                BarColumn(bar_width=20),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=output.err(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._describe(), total=self.total)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: ItemEvent) -> None:
        """One recorded attempt."""
        self.counts[event.verdict] = self.counts.get(event.verdict, 0) + 1
        self.done += 1
        failed = event.verdict in ("failed", "discarded")
        if self._progress is not None:
            if self._due is not None and (
                time.monotonic() - self._counted_at >= RECOUNT_EVERY or (self.total or 0) < self.done
            ):
                self._recount()
            self._progress.update(
                self._task, description=self._describe(), completed=self.done, total=self.total
            )
            if failed or (event.verdict == "retrying" and not self.quiet):
                output.err().print(item_line(event), style="red", markup=False, highlight=False)

    def _recount(self) -> None:
        self._counted_at = time.monotonic()
        if self._due is None:
            return
        try:
            self.total = self.done + self._due()
        except Exception:  # a progress line is not worth failing the run for: go on without a total
            self._due, self.total = None, None
            return
        if self._limit is not None:
            self.total = min(self.total, self._limit)

    def _describe(self) -> str:
        c = self.counts
        parts = []
        if self.total is not None:
            parts.append(f"{self.done:,}/{self.total:,} done")
        elapsed = time.monotonic() - self._started
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:,.1f} items/s")
            if self.total is not None and self.total > self.done:
                parts.append(f"about {format_duration((self.total - self.done) / rate)} left")
        parts.append(
            f"[green]{c['completed']} completed[/], [red]{c['failed']} failed[/], "
            f"[yellow]{c['retrying']} to retry[/]"
        )
        return " · ".join(parts)


def work_summary(summary: WorkSummary) -> None:
    """The last line of ``docq work`` on stdout (see `worklog.summary_text`)."""
    output.out().print(summary_text(summary))
