"""`DocumentQueueService`: the only code that changes a queue item's or a document's status.

Every method runs its own short transaction (``BEGIN IMMEDIATE`` on SQLite) through
`docq.db.Database`, retried within the lock budget, so no write transaction is ever open
while a document is processed. What happens inside each transaction lives beside it, by
who asks: `docq.intake` (enqueue), `docq.leases` (workers: claim, renew, finish,
release), `docq.maintenance` (people: reprocess, retry, cancel, purge).

The seed API (``enqueue``, ``get_pending_items``, ``mark_in_progress``,
``mark_completed``, ``mark_failed``, ``get_queue_stats``) works on
`docq.models.QueueItem` objects; workers use the batch methods (``claim``, ``exchange``,
``heartbeat``, ``finish``, ``release``), which build no ORM objects.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from docq import intake, leases, maintenance
from docq import queries as q
from docq.backends import Tx
from docq.config import Settings
from docq.db import Database, DatabaseLike, open_database
from docq.errors import InvalidTransition, NotFoundError, UsageError
from docq.intake import Queued, Skipped
from docq.items import Lease, Result, Verdict, WorkerProgress
from docq.leases import Finished
from docq.maintenance import Change, PurgeCount
from docq.retry import RetryPolicy
from docq.states import FINISHED_STATUSES, DocumentStatus, ItemStatus, lane_of
from docq.stats import QueueStats, read_stats

if TYPE_CHECKING:
    from docq.models import QueueItem
    from docq.processing import FileFacts

__all__ = ["DocumentQueueService", "Queued", "Skipped"]


class DocumentQueueService:
    """The queue of documents: enqueue, claim, finish, retry, cancel and count.

    ``db`` is a path or URL (None: ``settings.db``, else the default queue; ``":memory:"``:
    a queue in memory), a SQLAlchemy Engine or Session (exactly that database), or a
    `Database` (which keeps its own connection settings; ``settings`` then sets the retry
    policy and leases). ``clock`` returns the time as Unix seconds (injectable for tests;
    given with a `Database`, it becomes that database's clock); on PostgreSQL the server's
    clock is used for everything stored.
    """

    def __init__(
        self,
        db: DatabaseLike = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings or (db.settings if isinstance(db, Database) else Settings())
        self.db = open_database(db if db is not None else self.settings.db, self.settings, clock=clock)
        self.policy = policy or RetryPolicy.from_settings(self.settings)
        self._worker_id: str | None = None

    @property
    def clock(self) -> Callable[[], float]:
        """The clock this queue's times come from (on SQLite; PostgreSQL uses its own)."""
        return self.db.clock

    @property
    def worker_id(self) -> str:
        """The owner id used by the seed API's ``mark_in_progress`` (``host:pid:tag``)."""
        if self._worker_id is None:
            self._worker_id = leases.new_worker_id(secrets.token_hex(4))
        return self._worker_id

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def now(self) -> float:
        """The queue's clock: the service's on SQLite, the server's on PostgreSQL."""
        return self.db.now()

    # --- enqueue ---------------------------------------------------------------------

    def add_documents(
        self,
        files: Sequence[FileFacts],
        *,
        operation: str = "process",
        priority: int = 0,
        force: bool = False,
        max_attempts: int | None = None,
    ) -> list[Queued | Skipped]:
        """Register ``files`` as documents and queue ``operation`` for each, in one transaction.

        A file whose document already has an active (pending or in-progress) item of the
        same lane is skipped as "already queued"; one whose lane last completed it with the
        same sha256 as "unchanged", or last failed on it for good with the same sha256 as
        "failed" (unless ``force``); changed content is queued again.
        """

        def add(tx: Tx) -> list[Queued | Skipped]:
            now = self.clock()
            outcomes = [
                intake.add_file(
                    tx,
                    facts,
                    operation=operation,
                    priority=priority,
                    force=force,
                    max_attempts=max_attempts,
                    now=now,
                )
                for facts in files
            ]
            if any(isinstance(outcome, Queued) for outcome in outcomes):
                self.db.announce(tx, lane_of(operation))
            return outcomes

        return self.db.write(add)

    def enqueue(self, document_id: int, operation: str = "process", priority: int = 0) -> QueueItem:
        """Queue ``operation`` for a registered document and return its item.

        If the document already has an active item of the same lane, that item is
        returned instead: a document is never queued twice. Raises `NotFoundError` for
        an unknown document.
        """
        item_id, _created = self.queue_again(document_id, operation=operation, priority=priority)
        return self.get_item(item_id)

    def queue_again(
        self,
        document_id: int,
        *,
        operation: str = "reprocess",
        priority: int = 0,
        max_attempts: int | None = None,
    ) -> tuple[int, bool]:
        """Queue ``operation`` for a registered document unless it has an active item of
        the same lane. Returns ``(item_id, created)``."""

        def run(tx: Tx) -> tuple[int, bool]:
            item_id, created = intake.queue_again(
                tx,
                document_id,
                operation=operation,
                priority=priority,
                max_attempts=max_attempts,
                now=self.clock(),
            )
            if created:
                self.db.announce(tx, lane_of(operation))
            return item_id, created

        return self.db.write(run)

    # --- what people ask for: reprocess, retry, cancel, purge --------------------------

    def reprocess(
        self,
        refs: Sequence[str] = (),
        *,
        operation: str = "reprocess",
        failed: bool = False,
        stale: bool = False,
        priority: int = 0,
        dry_run: bool = False,
    ) -> list[Change]:
        """Queue ``operation`` again for documents named by id or path in ``refs``, plus
        every failed document (``failed``) and every document processed by an older
        extractor (``stale``). Documents with an active item are left alone. Unknown refs
        raise `NotFoundError` and nothing is queued."""

        def run(tx: Tx) -> list[Change]:
            ids = maintenance.resolve_documents(tx, refs)
            if failed:
                ids += [i for i in maintenance.failed_documents(tx) if i not in ids]
            if stale:
                ids += [i for i in maintenance.stale_documents(tx) if i not in ids]
            changes = maintenance.requeue(
                tx, ids, operation=operation, priority=priority, now=self.clock(), dry_run=dry_run
            )
            if any(change.action == "queued" for change in changes) and not dry_run:
                self.db.announce(tx, lane_of(operation))
            return changes

        return self.db.write(run)

    def retry(
        self,
        item_ids: Sequence[int] = (),
        *,
        all_failed: bool = False,
        error: str | None = None,
        dry_run: bool = False,
    ) -> list[Change]:
        """Put failed (or cancelled) items back to pending, due now, with a fresh attempt
        budget (their history stays): those in ``item_ids``, plus every failed item
        (``all_failed``) or the failed ones whose last error contains ``error``. Raises
        `NotFoundError`/`UsageError`, changing nothing, if an id is unknown or its item is
        neither failed nor cancelled."""

        def run(tx: Tx) -> list[Change]:
            ids = list(dict.fromkeys(item_ids))
            if all_failed or error is not None:
                ids += [i for i in maintenance.failed_items(tx, error=error) if i not in ids]
            changes = maintenance.retry(tx, ids, now=self.clock(), dry_run=dry_run)
            if not dry_run:
                for lane in {lane_of(change.operation or "process") for change in changes}:
                    self.db.announce(tx, lane)
            return changes

        return self.db.write(run)

    def cancel(self, item_ids: Sequence[int], *, dry_run: bool = False) -> list[Change]:
        """Cancel pending items; ask the workers running in-progress ones to stop them.
        Raises, changing nothing, if an id is unknown or its item already finished."""
        return self.db.write(lambda tx: maintenance.cancel(tx, item_ids, now=self.clock(), dry_run=dry_run))

    def purge(
        self,
        *,
        older_than: float,
        statuses: Sequence[str] = FINISHED_STATUSES,
        dry_run: bool = False,
    ) -> PurgeCount:
        """Delete items that finished more than ``older_than`` seconds ago in ``statuses``,
        with their history, and the documents left with no items. Works in batches of
        a few hundred items, one short transaction each."""
        if not statuses or set(statuses) - set(FINISHED_STATUSES):
            allowed = ", ".join(sorted(FINISHED_STATUSES))
            raise UsageError(f"purge --status takes finished statuses only: {allowed}")
        before = self.now() - older_than
        if dry_run:

            def count(tx: Tx) -> PurgeCount:
                ids = maintenance.purgeable(tx, before=before, statuses=statuses, limit=None)
                return maintenance.count_purge(tx, ids)

            return self.db.read(count)
        total = PurgeCount()
        while True:

            def batch(tx: Tx) -> tuple[int, PurgeCount]:
                ids = maintenance.purgeable(
                    tx, before=before, statuses=statuses, limit=maintenance.PURGE_BATCH
                )
                removed = maintenance.delete_items(tx, ids, before=before, statuses=statuses)
                return len(ids), removed

            selected, removed = self.db.write(batch)
            total.add(removed)
            if selected < maintenance.PURGE_BATCH:
                return total

    def vacuum(self) -> None:
        """Give the space freed by a purge back to the file system."""
        self.db.vacuum()

    # --- the seed API's single-item transitions -------------------------------------

    def get_item(self, item_id: int) -> QueueItem:
        """The queue item ``item_id``; raises `NotFoundError` if there is none."""
        from docq.models import QueueItem

        rows = self.db.read(lambda tx: tx.dicts(q.ITEM, {"id": item_id}))
        if not rows:
            raise NotFoundError(f"no queue item with id {item_id}")
        return QueueItem.model_validate(rows[0])

    def get_pending_items(self, limit: int = 10, operation: str = "process") -> list[QueueItem]:
        """Up to ``limit`` items of ``operation``'s lane that are due now, in claim order
        (priority, then age). Nothing is claimed: see `mark_in_progress`."""
        from docq.models import QueueItem

        params = {"lane": lane_of(operation), "limit": limit}
        rows = self.db.read(lambda tx: tx.dicts(q.DUE_ITEMS, {**params, "now": self.clock()}))
        return [QueueItem.model_validate(row) for row in rows]

    def mark_in_progress(self, queue_item: QueueItem, *, lease_seconds: float | None = None) -> bool:
        """Claim ``queue_item`` for this process: a compare-and-set that exactly one caller
        wins. Returns True if this caller won; the item then carries its lease."""
        token = secrets.token_hex(8)
        lease = lease_seconds or self.settings.lease

        def run(tx: Tx) -> Any:
            now = self.clock()
            leases.sweep_expired(tx, now, self.policy.max_attempts)
            params = {
                "id": queue_item.id,
                "token": token,
                "worker": self.worker_id,
                "lease": lease,
                "now": now,
            }
            row = tx.one(q.CLAIM_ONE, params)
            if row is not None:
                leases.set_document_status(tx, queue_item.document_id, DocumentStatus.PROCESSING, now)
            return row

        row = self.db.write(run)
        if row is None:
            return False
        queue_item.status = ItemStatus.IN_PROGRESS
        queue_item.attempts, queue_item.started_at, queue_item.lease_expires_at = row
        queue_item.lease_token = token
        queue_item.worker_id = self.worker_id
        return True

    def mark_completed(
        self, queue_item: QueueItem, *, text: str | None = None, metadata: dict[str, Any] | None = None
    ) -> bool:
        """Complete an item this process holds, storing ``text`` and ``metadata`` (an
        extraction) on its document. Returns False, changing nothing, if the lease was
        lost to another worker meanwhile. Raises `InvalidTransition` if it was never claimed."""
        # Always an extraction here: text and metadata go on the document (metadata {} if none).
        result = Result(ok=True, text=text, metadata=metadata or {})
        verdict = self.finish([(self._lease_of(queue_item), result)])[0]
        if verdict == "completed":
            queue_item.status = ItemStatus.COMPLETED
        return verdict == "completed"

    def mark_failed(
        self, queue_item: QueueItem, error_message: str, *, permanent: bool = False
    ) -> str | None:
        """Record a failed attempt of an item this process holds and apply the retry
        policy: back to pending after the backoff delay while attempts are left, else (or
        if ``permanent``) failed for good. Returns the item's new status (``pending`` or
        ``failed``), or None if the lease was lost meanwhile."""
        result = Result.failure(error_message, permanent=permanent)
        verdict = self.finish([(self._lease_of(queue_item), result)])[0]
        status = {"retrying": ItemStatus.PENDING, "failed": ItemStatus.FAILED}.get(verdict)
        if status is not None:
            queue_item.status = status
        return status.value if status is not None else None

    def _lease_of(self, item: QueueItem) -> Lease:
        if item.status != ItemStatus.IN_PROGRESS or not item.lease_token or item.id is None:
            raise InvalidTransition(f"queue item {item.id} is {item.status}, not claimed by this process")
        return Lease(
            item_id=item.id,
            document_id=item.document_id,
            operation=item.operation,
            attempt=item.attempts,
            max_attempts=item.max_attempts,
            priority=item.priority,
            path="",
            sha256=item.sha256,
            token=item.lease_token,
            worker=item.worker_id or self.worker_id,
            started_at=item.started_at or self.clock(),
        )

    def get_queue_stats(self) -> QueueStats:
        """Counts per status and operation, retries waiting, age of the oldest pending
        item, throughput of the last hour and who holds the in-progress items."""
        return self.db.read(read_stats)

    # --- the worker's batch methods --------------------------------------------------

    def claim(
        self, *, operation: str = "process", limit: int = 1, worker: str, lease_seconds: float
    ) -> list[Lease]:
        """Lease up to ``limit`` due items of ``operation``'s lane to ``worker`` (after
        moving expired leases on). Atomic: no two workers ever get the same item."""
        return self.exchange(
            [], operation=operation, limit=limit, worker=worker, lease_seconds=lease_seconds
        )[1]

    def exchange(
        self,
        finished: Sequence[Finished],
        *,
        operation: str = "process",
        limit: int = 0,
        worker: str,
        lease_seconds: float,
        started: bool = True,
        progress: WorkerProgress | None = None,
    ) -> tuple[list[Verdict], list[Lease]]:
        """Record finished attempts and claim up to ``limit`` more, in one transaction (one
        commit instead of two: what makes a worker fast at ``synchronous=FULL``). With
        ``started`` false the claimed items wait for `start` (see `leases.claim`). With
        ``progress``, the worker's row says what it runs and has done, in the same commit."""
        lane = lane_of(operation)

        def run(tx: Tx) -> tuple[list[Verdict], list[Lease]]:
            # A fresh token per try: if a commit went through but its answer was lost, the
            # items it claimed are not renewed by this worker and expire to another.
            token = secrets.token_hex(8)
            now = self.clock()
            verdicts = leases.finish(tx, finished, self.policy, now) if finished else []
            if progress is not None:
                tx.execute(q.WORKER_PROGRESS, progress.params())
            claimed: list[Lease] = []
            if limit > 0:
                leases.sweep_expired(tx, now, self.policy.max_attempts)
                claimed = leases.claim(
                    tx,
                    lane=lane,
                    limit=limit,
                    lease_seconds=lease_seconds,
                    worker=worker,
                    token=token,
                    now=now,
                    started=started,
                )
            return verdicts, claimed

        return self.db.write(run)

    def heartbeat(
        self, worker: str, tokens: Iterable[str], *, lease_seconds: float, current: Sequence[int], done: int
    ) -> set[int]:
        """Extend the leases ``worker`` holds under ``tokens`` and refresh its row in the
        workers table. Returns the ids of held items whose cancellation was requested."""
        token_list = list(tokens)
        params = {"id": worker, "current": ",".join(map(str, current)) or None, "done": done}

        def run(tx: Tx) -> set[int]:
            now = self.clock()
            tx.execute(q.WORKER_HEARTBEAT, {**params, "now": now})
            return leases.renew(tx, token_list, lease_seconds=lease_seconds, now=now)

        return self.db.write(run)

    def finish(self, finished: Sequence[Finished]) -> list[Verdict]:
        """Record a group of finished attempts in one transaction (see `leases.finish`)."""
        if not finished:
            return []
        return self.db.write(lambda tx: leases.finish(tx, finished, self.policy, self.clock()))

    def start(self, handed: Sequence[Lease], *, progress: WorkerProgress | None = None) -> set[int]:
        """Record that these items, claimed ahead, were handed to a child: from now on a
        lost lease charges their attempt. Returns the ids still held (see `leases.start`);
        the others must not run. With ``progress``, the worker's row too (see `exchange`)."""
        if not handed:
            return set()

        def run(tx: Tx) -> set[int]:
            held = leases.start(tx, handed, self.clock())
            if progress is not None:
                tx.execute(q.WORKER_PROGRESS, progress.params())
            return held

        return self.db.write(run)

    def release(self, held: Sequence[Lease]) -> int:
        """Give unfinished items back to pending without counting the attempt."""
        if not held:
            return 0
        return self.db.write(lambda tx: leases.release(tx, held, self.clock()))

    def next_due_in(self, operation: str = "process") -> float | None:
        """Seconds until the next pending item of ``operation``'s lane is due (0 or less:
        due now; None: no pending items). Idle workers sleep no longer than this."""
        params = {"lane": lane_of(operation)}
        due = self.db.read(lambda tx: tx.scalar(q.NEXT_DUE_IN, {**params, "now": self.clock()}))
        return None if due is None else float(due)

    def count_due(self, operation: str = "process") -> int:
        """Items of ``operation``'s lane left to do now: pending and due, or leased."""
        params = {"lane": lane_of(operation)}
        return int(self.db.read(lambda tx: tx.scalar(q.COUNT_DUE, {**params, "now": self.clock()})) or 0)

    # --- workers ---------------------------------------------------------------------

    def register_worker(self, worker: str, *, operation: str, lease_seconds: float = 60.0) -> None:
        """Record a starting worker, so that `docq workers` can list it."""
        host, pid, _tag = worker.split(":", 2)
        params = {
            "id": worker,
            "host": host,
            "pid": int(pid),
            "lane": lane_of(operation),
            "lease": lease_seconds,
            "now": self.clock(),
        }
        self.db.write(lambda tx: tx.execute(q.REGISTER_WORKER, params))

    def worker_stopped(self, worker: str, *, done: int) -> None:
        """Mark a worker's row as stopped."""
        params = {"id": worker, "done": done, "now": self.clock()}
        self.db.write(lambda tx: tx.execute(q.WORKER_STOPPED, params))
