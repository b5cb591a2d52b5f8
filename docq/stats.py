"""Queue statistics, read without scanning the finished history.

On SQLite the per-status counts come from ``queue_counts`` (kept by triggers); on
PostgreSQL from a grouped count. Everything else reads partial indexes that hold only
active items, or the last hour of finished ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from docq.db import Tx
from docq.states import ItemStatus

RECENT_WINDOW = 3600.0
"""Throughput and mean processing time cover the items finished in this many seconds."""

MAX_LEASES_SHOWN = 50


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds an in-progress item, and until when."""

    item_id: int
    operation: str
    worker: str | None
    started_at: float | None
    lease_expires_at: float | None
    path: str


@dataclass(frozen=True)
class QueueStats:
    """A snapshot of the queue. Times are Unix seconds; ``now`` is the queue's clock."""

    now: float
    pending: int
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    retrying: int  # pending items that failed before and wait for their next attempt
    next_retry_at: float | None
    oldest_pending_at: float | None
    finished_last_hour: int
    completed_last_hour: int
    mean_processing_seconds: float | None
    by_operation: dict[str, dict[str, int]] = field(default_factory=dict)
    leases: list[LeaseInfo] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Items in the queue, whatever their status."""
        return self.pending + self.in_progress + self.completed + self.failed + self.cancelled

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form (times stay Unix seconds here; the CLI formats them)."""
        data = asdict(self)
        data["total"] = self.total
        return data


COUNTS_SQLITE = "SELECT operation, status, n FROM queue_counts WHERE n <> 0"
COUNTS_POSTGRES = "SELECT operation, status, count(*) FROM queue_items GROUP BY operation, status"

RETRYING = """
SELECT count(*), min(next_run_at) FROM queue_items {hint} WHERE status = 'pending' AND attempts > 0
"""
# Without statistics, SQLite's planner may pick another index over pending items and
# count every one of them; these partial indexes hold just the rows asked for.
# PostgreSQL, which keeps statistics, plans these well by itself.
RETRYING_HINT = {"sqlite": "INDEXED BY ix_items_retrying", "postgresql": ""}

OLDEST_PENDING = """
SELECT created_at FROM queue_items {hint} WHERE status = 'pending' ORDER BY id LIMIT 1
"""
OLDEST_HINT = {"sqlite": "INDEXED BY ix_items_pending", "postgresql": ""}

RECENT = """
SELECT count(*), sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END)
FROM queue_items WHERE finished_at >= :since
"""

# Processing time as workers measured it (not counting time an item waited in a worker).
MEAN_SECONDS = """
SELECT avg(seconds) FROM attempts WHERE finished_at >= :since AND outcome = 'completed'
"""

HOLDERS = """
SELECT i.id, i.operation, i.worker_id, i.started_at, i.lease_expires_at, d.path
FROM queue_items i JOIN documents d ON d.id = i.document_id
WHERE i.status = 'in_progress' ORDER BY i.lease_expires_at LIMIT :limit
"""


def read_stats(tx: Tx, now: float) -> QueueStats:
    """Read a `QueueStats` snapshot inside one read transaction."""
    from docq.paths import from_db

    if tx.backend == "postgresql":
        now = float(tx.scalar("SELECT :now"))
    by_operation: dict[str, dict[str, int]] = {}
    totals = dict.fromkeys((s.value for s in ItemStatus), 0)
    for operation, status, n in tx.all(COUNTS_SQLITE if tx.backend == "sqlite" else COUNTS_POSTGRES):
        by_operation.setdefault(operation, {})[status] = int(n)
        totals[status] = totals.get(status, 0) + int(n)
    retrying, next_retry_at = tx.one(RETRYING.format(hint=RETRYING_HINT[tx.backend]))
    oldest = tx.scalar(OLDEST_PENDING.format(hint=OLDEST_HINT[tx.backend]))
    finished, completed = tx.one(RECENT, {"since": now - RECENT_WINDOW})
    mean = tx.scalar(MEAN_SECONDS, {"since": now - RECENT_WINDOW})
    holders = [
        LeaseInfo(row[0], row[1], row[2], row[3], row[4], from_db(row[5]))
        for row in tx.all(HOLDERS, {"limit": MAX_LEASES_SHOWN})
    ]
    return QueueStats(
        now=now,
        pending=totals["pending"],
        in_progress=totals["in_progress"],
        completed=totals["completed"],
        failed=totals["failed"],
        cancelled=totals["cancelled"],
        retrying=int(retrying or 0),
        next_retry_at=next_retry_at,
        oldest_pending_at=oldest,
        finished_last_hour=int(finished or 0),
        completed_last_hour=int(completed or 0),
        mean_processing_seconds=float(mean) if mean is not None else None,
        by_operation=by_operation,
        leases=holders,
    )
