"""``docq stats --watch`` / ``docq top``: a live dashboard of the queue.

Counts per status, completions per minute over the last ten minutes, the workers that
are alive with what they are running, and the most recent failures, redrawn in place
every few seconds until Ctrl-C. Every query reads an index (the counters, the recent
end of the finished-time index, the attempts' id order), so a refresh stays cheap on a
queue of millions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from docq import render
from docq.config import format_duration
from docq.db import Tx
from docq.errors import UsageError
from docq.paths import from_db
from docq.queue import DocumentQueueService
from docq.stats import QueueStats, read_stats

MINUTES = 10

THROUGHPUT = """
SELECT CAST(:now - finished_at AS INTEGER) / 60, count(*) FROM queue_items
WHERE finished_at >= :now - :window AND status = 'completed'
GROUP BY 1
"""

LIVE_WORKERS = """
SELECT id, current_items, items_done, heartbeat_at, lease_seconds FROM workers
WHERE stopped_at IS NULL AND heartbeat_at >= :now - lease_seconds
ORDER BY started_at
"""

CURRENT_PATH = "SELECT d.path FROM queue_items i JOIN documents d ON d.id = i.document_id WHERE i.id = :id"

RECENT_FAILURES = """
SELECT a.item_id, a.finished_at, a.outcome, a.error, d.path
FROM attempts a JOIN queue_items i ON i.id = a.item_id JOIN documents d ON d.id = i.document_id
WHERE a.outcome IN ('failed', 'abandoned')
ORDER BY a.id DESC LIMIT 6
"""


@dataclass(frozen=True)
class Snapshot:
    """Everything one frame of the dashboard shows."""

    stats: QueueStats
    per_minute: list[int]  # completions, oldest minute first
    workers: list[tuple[str, str, int, float]]  # id, current paths, items done, last heartbeat
    failures: list[tuple[int, float | None, str, str | None, str]]  # item, when, outcome, error, path


def snapshot(service: DocumentQueueService) -> Snapshot:
    """Read one frame, in one read transaction."""

    def read(tx: Tx) -> Snapshot:
        stats = read_stats(tx, service.clock())
        now = stats.now
        buckets = dict(tx.all(THROUGHPUT, {"now": now, "window": MINUTES * 60}))
        per_minute = [int(buckets.get(minute, 0)) for minute in reversed(range(MINUTES))]
        workers = []
        for worker_id, current, done, heartbeat, _lease in tx.all(LIVE_WORKERS, {"now": now}):
            paths = []
            for item_id in (current or "").split(","):
                if item_id:
                    path = tx.scalar(CURRENT_PATH, {"id": int(item_id)})
                    paths.append(render.shown_path(from_db(path)) if path else f"item {item_id}")
            workers.append((worker_id, ", ".join(paths) or "idle", int(done), float(heartbeat)))
        failures = [
            (row[0], row[1], row[2], row[3], render.shown_path(from_db(row[4])))
            for row in tx.all(RECENT_FAILURES)
        ]
        return Snapshot(stats, per_minute, workers, failures)

    return service.db.read(read)


def frame(shot: Snapshot) -> Any:
    """The Rich renderable of one frame."""
    from rich.console import Group
    from rich.markup import escape
    from rich.text import Text

    from docq.render_queue import stats_tables

    stats = shot.stats
    counts, facts, *_ = stats_tables(stats)
    peak = max(shot.per_minute) or 1
    bars = "".join(" ▁▂▃▄▅▆▇█"[min(8, round(8 * n / peak))] for n in shot.per_minute)
    rate = (
        f"completed per minute, last {MINUTES} min: {bars}  (now {shot.per_minute[-1]}/min, peak {peak}/min)"
    )
    workers = render.table("Worker", "Running", "Done", "Heartbeat")
    for worker_id, running, done, heartbeat in shot.workers:
        workers.add_row(
            worker_id, escape(running), str(done), f"{format_duration(stats.now - heartbeat)} ago"
        )
    failures = render.table("Item", "When", "Outcome", "Error", "Path")
    for item_id, finished, outcome, error, path in shot.failures:
        ago = "-" if finished is None else f"{format_duration(stats.now - finished)} ago"
        failures.add_row(str(item_id), ago, outcome, escape(error or ""), escape(path))
    title = Text.from_markup(f"[bold]docq[/] · {render.iso(stats.now, precise=False)} · Ctrl-C to quit")
    parts: list[Any] = [title, counts, facts, Text(rate)]
    parts.append(workers if shot.workers else Text("No live workers."))
    if shot.failures:
        parts.append(failures)
    return Group(*parts)


def run(service: DocumentQueueService, *, interval: float) -> None:
    """Redraw the dashboard every ``interval`` seconds until Ctrl-C (terminal only)."""
    if not render.out().is_terminal:
        raise UsageError("the live dashboard needs a terminal; in scripts use `docq stats --json`")
    from rich.live import Live

    with Live(frame(snapshot(service)), console=render.out(), auto_refresh=False, screen=False) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(frame(snapshot(service)), refresh=True)
        except KeyboardInterrupt:
            pass
