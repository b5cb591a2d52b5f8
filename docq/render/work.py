"""What ``docq work`` shows on a terminal: live counts and failures while it runs, and a summary."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from docq.render import output
from docq.render.worklog import item_line, summary_text

if TYPE_CHECKING:
    from rich.progress import Progress

    from docq.worker import ItemEvent, WorkSummary


class WorkDisplay:
    """What `docq work` shows on a terminal while it runs: a live line of counts, and each
    failure (off a terminal `docq.render.worklog` logs instead)."""

    def __init__(self, *, enabled: bool, quiet: bool = False) -> None:
        self.enabled = enabled
        self.quiet = quiet  # failures only
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
        failed = event.verdict in ("failed", "discarded")
        if self._progress is not None:
            self._progress.update(self._task, description=self._describe())
            if failed or (event.verdict == "retrying" and not self.quiet):
                output.err().print(item_line(event), style="red", markup=False, highlight=False)

    def _describe(self) -> str:
        c = self.counts
        return (
            f"working: [green]{c['completed']} completed[/], [red]{c['failed']} failed[/], "
            f"[yellow]{c['retrying']} to retry[/]"
        )


def work_summary(summary: WorkSummary) -> None:
    """The last line of ``docq work`` on stdout (see `worklog.summary_text`)."""
    output.out().print(summary_text(summary))
