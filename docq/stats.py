"""Queue statistics and the live dashboard's frame, read without scanning the history.

The per-status counts come from counters kept as items change (see
`docq.queries.COUNTS`); everything else reads partial indexes that hold only active
items, or the last hour of finished ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from docq import queries as q
from docq.backends import Tx
from docq.paths import from_db
from docq.states import ItemStatus

if TYPE_CHECKING:
    from docq.db import Database

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
    started: bool = True  # False: claimed ahead, waiting for a child of its worker


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
    claimed_ahead: int = 0  # of in_progress: held by a worker, not handed to a child yet
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


def read_stats(tx: Tx) -> QueueStats:
    """Read a `QueueStats` snapshot inside one read transaction."""
    now = tx.now()
    # the default operation is always there, so that a script reads by_operation.process.pending
    # on any queue; every status of an operation is present, zeros too
    by_operation: dict[str, dict[str, int]] = {"process": dict.fromkeys((s.value for s in ItemStatus), 0)}
    totals = dict.fromkeys((s.value for s in ItemStatus), 0)
    for operation, status, n in tx.all(q.COUNTS):
        counts = by_operation.setdefault(operation, dict.fromkeys((s.value for s in ItemStatus), 0))
        counts[status] = int(n)
        totals[status] = totals.get(status, 0) + int(n)
    retrying, next_retry_at = tx.one(q.RETRYING)
    oldest = tx.scalar(q.OLDEST_PENDING)
    finished, completed = tx.one(q.RECENT, {"since": now - RECENT_WINDOW})
    mean = tx.scalar(q.MEAN_SECONDS, {"since": now - RECENT_WINDOW})
    holders = [
        LeaseInfo(row[0], row[1], row[2], row[3], row[4], from_db(row[5]), bool(row[6]))
        for row in tx.all(q.HOLDERS, {"limit": MAX_LEASES_SHOWN})
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
        claimed_ahead=int(tx.scalar(q.CLAIMED_AHEAD) or 0),
        by_operation=by_operation,
        leases=holders,
    )


# --- the live dashboard ----------------------------------------------------------------

DASHBOARD_MINUTES = 10
"""The dashboard's throughput covers this many minutes."""
FAILURES_SHOWN = 6


@dataclass(frozen=True)
class LiveWorker:
    """A worker whose heartbeat is fresh, and what it runs."""

    id: str
    running: list[str]  # the paths of its current items
    done: int
    heartbeat_at: float


@dataclass(frozen=True)
class RecentFailure:
    """A failed or abandoned attempt."""

    item_id: int
    finished_at: float | None
    outcome: str
    error: str | None
    path: str


@dataclass(frozen=True)
class Snapshot:
    """Everything one frame of the live dashboard shows."""

    stats: QueueStats
    per_minute: list[int]  # completions, oldest minute first
    failed_per_minute: list[int]  # items that failed for good, oldest minute first
    workers: list[LiveWorker]
    failures: list[RecentFailure]


def snapshot(db: Database, *, minutes: int = DASHBOARD_MINUTES) -> Snapshot:
    """Read one frame of the dashboard, in one read transaction. Every query reads an index
    (the counters, the recent end of the finished-time index, the attempts' id order), so
    a refresh stays cheap on a queue of millions."""

    def read(tx: Tx) -> Snapshot:
        stats = read_stats(tx)
        now = stats.now
        buckets = {
            (int(minute), status): int(n)
            for minute, status, n in tx.all(q.THROUGHPUT, {"now": now, "window": minutes * 60})
        }
        per_minute = [buckets.get((minute, "completed"), 0) for minute in reversed(range(minutes))]
        failed_per_minute = [buckets.get((minute, "failed"), 0) for minute in reversed(range(minutes))]
        workers = []
        for worker_id, current, done, heartbeat, _lease in tx.all(q.LIVE_WORKERS, {"now": now}):
            paths = []
            for item_id in (current or "").split(","):
                if item_id:
                    path = tx.scalar(q.ITEM_PATH, {"id": int(item_id)})
                    paths.append(from_db(path) if path else f"item {item_id}")
            workers.append(LiveWorker(worker_id, paths, int(done), float(heartbeat)))
        failures = [
            RecentFailure(row[0], row[1], row[2], row[3], from_db(row[4]))
            for row in tx.all(q.RECENT_FAILURES, {"limit": FAILURES_SHOWN})
        ]
        return Snapshot(stats, per_minute, failed_per_minute, workers, failures)

    return db.read(read)
