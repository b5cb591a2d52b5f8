"""``docq stats --watch`` / ``docq top``: the live dashboard, drawn with Rich.

Counts per status, completions per minute over the last ten minutes, the workers that
are alive with what they are running, and the most recent failures, redrawn in place
until Ctrl-C. The frame's data comes from `docq.stats.snapshot`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from docq.config import format_duration, iso
from docq.errors import UsageError
from docq.render import output
from docq.render.output import escape, shown_path
from docq.render.stats import stats_tables

if TYPE_CHECKING:
    from docq.stats import Snapshot


def frame(shot: Snapshot) -> Any:
    """The Rich renderable of one frame."""
    from rich.console import Group
    from rich.text import Text

    stats = shot.stats
    counts, facts, *_ = stats_tables(stats)
    minutes = len(shot.per_minute)
    rate = f"completed per minute, last {minutes} min: {sparkline(shot.per_minute)}"
    title = Text.from_markup(f"[bold]docq[/] · {iso(stats.now, precise=False)} · Ctrl-C to quit")
    return Group(title, counts, facts, Text(rate), *workers_and_failures(shot))


def workers_and_failures(shot: Snapshot) -> list[Any]:
    """The live workers with what they run, and the most recent failures (if any)."""
    from rich.text import Text

    now = shot.stats.now
    workers = output.table("Worker", "Running", "Done", "Heartbeat")
    for worker in shot.workers:
        running = ", ".join(shown_path(path) for path in worker.running) or "idle"
        heartbeat = f"{format_duration(now - worker.heartbeat_at)} ago"
        workers.add_row(worker.id, escape(running), str(worker.done), heartbeat)
    failures = output.table("Item", "When", "Outcome", "Error", "Path")
    for failure in shot.failures:
        ago = "-" if failure.finished_at is None else f"{format_duration(now - failure.finished_at)} ago"
        failures.add_row(
            str(failure.item_id),
            ago,
            failure.outcome,
            escape(failure.error or ""),
            output.PathCell(failure.path),
        )
    parts: list[Any] = [workers if shot.workers else Text("No live workers.")]
    if shot.failures:
        parts.append(failures)
    return parts


def sparkline(per_minute: list[int]) -> str:
    """``▁▂█▃  (now 3/min, peak 9/min)``: one bar a minute, scaled to the peak."""
    peak = max(per_minute, default=0) or 1
    bars = "".join(" ▁▂▃▄▅▆▇█"[min(8, round(8 * n / peak))] for n in per_minute)
    return f"{bars}  (now {per_minute[-1] if per_minute else 0}/min, peak {max(per_minute, default=0)}/min)"


def run(read: Callable[[], Snapshot], *, interval: float) -> None:
    """Redraw the dashboard from ``read()`` every ``interval`` seconds until Ctrl-C
    (terminal only)."""
    if not output.out().is_terminal:
        raise UsageError("the live dashboard needs a terminal; in scripts use `docq stats --json`")
    from rich.live import Live

    with Live(frame(read()), console=output.out(), auto_refresh=False, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(frame(read()), refresh=True)
        except KeyboardInterrupt:
            pass
