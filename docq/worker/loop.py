"""`process_document_queue()`: claim due items, process them in child processes, record
the results. Once mode (for cron) and loop mode (for systemd) run the same loop.

One thread drives everything: it claims items (a lease per item), hands them in chunks
to warm child processes, renews the leases every third of the lease, records finished
attempts in groups (one commit for a group of results and the next claim), kills a child
whose item runs past ``--timeout`` or is cancelled, and on the first SIGINT, SIGTERM or SIGHUP stops
claiming, lets running items finish within ``--grace`` and gives the rest back. A second
signal stops at once. One bad document never stops the worker: it fails alone.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from typing import Any

from docq.config import GiB, Settings, plural
from docq.db import DatabaseLike
from docq.errors import DatabaseBusy, DatabaseReplaced, DatabaseUnreachable
from docq.items import Lease, Result, Verdict, WorkerProgress
from docq.leases import new_worker_id
from docq.queue import DocumentQueueService
from docq.worker.commands import signal_name
from docq.worker.crew import Crew
from docq.worker.handlers import handler_for
from docq.worker.protocol import Handler
from docq.worker.waker import Waker

log = logging.getLogger("docq.worker")

FLUSH_SIZE = 256  # record results in groups of at most this many...
FLUSH_DELAY = 0.05  # ...and never hold a result longer than this (seconds)
CHUNK_TARGET = 0.02  # hand a child about this many seconds of work at a time
MAX_CHUNK = 64
SLOW_ITEM = 0.5  # seconds: items this slow are not claimed further ahead than needed
DEFAULT_MEMORY_LIMIT = 1 * GiB


@dataclass
class WorkSummary:
    """What one run of a worker did. ``processed`` counts the attempts recorded and
    ``items`` the distinct items they were made on; each item is counted once, by how its
    last attempt of the run ended: ``completed + failed + retried + cancelled == items``
    (``retried``: waiting for a retry when the run ended). ``discarded`` results and
    items ``released`` unstarted are counted apart."""

    processed: int = 0
    completed: int = 0
    failed: int = 0
    retried: int = 0
    cancelled: int = 0
    discarded: int = 0  # results dropped because the lease had been lost
    released: int = 0  # items given back unfinished at shutdown
    items: int = 0  # distinct items among the attempts (an item retried in the run counts once)
    stopped_by: int | None = None  # the signal that forced an immediate stop, if any
    reason: str = ""  # why the run ended: "nothing due", "SIGTERM", "--max-items"...

    def to_dict(self) -> dict[str, int]:
        """The ``docq work --json`` form."""
        return {k: v for k, v in asdict(self).items() if k not in ("stopped_by", "reason")}


@dataclass(frozen=True)
class ItemEvent:
    """One attempt, recorded: the item, how the attempt ended, and what became of it."""

    lease: Lease
    result: Result
    verdict: Verdict

    @property
    def error(self) -> str | None:
        """The error as stored in the item's history (None for a success)."""
        return self.result.stored_error

    @property
    def seconds(self) -> float:
        """How long the attempt ran."""
        return self.result.seconds or 0.0


@dataclass(frozen=True)
class WorkOptions:
    """What to run and for how long (the rest comes from `Settings`)."""

    operation: str = "process"
    command: tuple[str, ...] = ()
    handler: str | None = None
    loop: bool = False
    max_items: int | None = None
    max_seconds: float | None = None
    quiet_children: bool = True
    pass_env: tuple[str, ...] = ()  # environment variables commands get despite their names


def process_document_queue(
    db: DatabaseLike = None,
    *,
    settings: Settings | None = None,
    options: WorkOptions | None = None,
    on_event: Callable[[ItemEvent], None] | None = None,
) -> WorkSummary:
    """Process due items until none is due (or, with ``options.loop``, until a signal).

    Opens its own connection to ``db`` (default: ``settings.db``, else the user's
    default queue), claims items, runs the built-in extraction (`docq.processing.extract`)
    or the operation's command or function on each in a child process, and marks each
    completed or failed. Returns the counts. ``on_event`` is called once per recorded
    attempt, after it is committed.

    Raises `UsageError` before touching the database if the operation cannot run (a
    custom operation without a command, an unknown placeholder, a handler that does not
    import).
    """
    settings = settings or Settings()
    options = options or WorkOptions()
    handler = handler_for(
        options.operation,
        command=list(options.command),
        target=options.handler,
        max_size=settings.max_size,
        output_cap=settings.output_cap,
        permanent_exit_codes=settings.permanent_exit_codes,
        pass_env=frozenset(options.pass_env),
    )
    service = DocumentQueueService(db if db is not None else settings.db, settings=settings)
    try:
        return WorkLoop(service, settings, options, handler, on_event=on_event).run()
    finally:
        service.close()


@dataclass(frozen=True)
class _Finished:
    """A finished attempt waiting to be recorded, and when it finished (monotonic)."""

    lease: Lease
    result: Result
    at: float


class WorkLoop:
    """The loop behind `process_document_queue`. Use once: construct, then `run`.

    It owns the talk with the database (claims, results, heartbeats, giving items back)
    and the decision to stop; its `Crew` owns the child processes.
    """

    def __init__(
        self,
        service: DocumentQueueService,
        settings: Settings,
        options: WorkOptions,
        handler: Handler,
        *,
        on_event: Callable[[ItemEvent], None] | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.options = options
        self.on_event = on_event
        self.id = new_worker_id(secrets.token_hex(4))
        self.summary = WorkSummary()
        self.crew = Crew(
            handler,
            size=settings.concurrency,
            timeout=settings.timeout,
            memory_limit=_memory_limit(settings, handler),
            quiet=options.quiet_children,
            on_finished=self._finished,
            on_returned=self._give_back,
            on_start=self._start,
        )
        self.held: dict[int, Lease] = {}  # every item we hold a lease on, by id
        self.unstarted: set[int] = set()  # held, claimed ahead, not yet handed to a child
        self.results: list[_Finished] = []  # finished, not yet recorded
        self.claimed_total = 0
        self.reported: tuple[tuple[int, ...], int] = ((), 0)  # the worker row's running items and done
        self.mean_seconds: float | None = None
        self.next_claim_at = 0.0
        self.next_heartbeat_at = 0.0
        self.db_retry_at = 0.0
        self.db_failures = 0
        self.claim_came_back_empty = False
        self.seen: set[int] = set()  # items with a recorded attempt in this run
        self.waiting_retry: set[int] = set()  # of those, the ones whose last attempt is to be retried
        self.stopping = False
        self.files_lost = False  # the database's files were replaced under us: write nothing more
        self.grace_deadline = 0.0
        self.waker = Waker()

    # --- the loop ------------------------------------------------------------------

    def run(self) -> WorkSummary:
        """Run until drained (once mode), stopped, or out of items or time."""
        self.service.register_worker(
            self.id, operation=self.options.operation, lease_seconds=self.settings.lease
        )
        listener = self.service.db.listener() if self.options.loop else None
        self.waker.install()
        started = time.monotonic()
        try:
            while self._step(started, listener):
                pass
        except DatabaseReplaced:
            self.files_lost = True
            raise
        finally:
            self.waker.restore()
            self._shutdown()
            if listener is not None:
                listener.close()
        return self.summary

    def _step(self, started: float, listener: Any) -> bool:
        """One turn of the loop; returns False when the worker should stop."""
        now = time.monotonic()
        if self.waker.signals >= 2:
            self.summary.stopped_by = self.waker.last_signal
            self.summary.reason = f"a second {signal_name(self.waker.last_signal or 0)}: stopped at once"
            return False
        max_seconds = self.options.max_seconds
        if not self.stopping and (self.waker.signals == 1 or (max_seconds and now - started >= max_seconds)):
            self.summary.reason = (
                signal_name(self.waker.last_signal or 0)
                if self.waker.signals
                else f"--max-seconds {max_seconds:g}"
            )
            self._begin_stop(now)
        if self.stopping and (not self.crew.running() or now >= self.grace_deadline):
            return False
        if now >= self.db_retry_at:
            self._exchange(now)
        if now >= self.db_retry_at:  # handing items out records them as started
            self.crew.dispatch()
        if not self.held and not self.stopping:
            out_of_items = self.options.max_items is not None and self.claimed_total >= self.options.max_items
            if out_of_items or (self.claim_came_back_empty and not self.options.loop):
                self.summary.reason = (
                    f"--max-items {self.options.max_items}" if out_of_items else "nothing more due"
                )
                return False
        if now >= self.next_heartbeat_at and now >= self.db_retry_at:
            self._heartbeat(now)
        waitables: list[Any] = [*self.crew.inboxes(), self.waker.fileno()]
        if listener is not None:
            waitables.append(listener)
        ready = wait(waitables, self._sleep_for(time.monotonic()))
        if listener is not None and (listener in ready or not listener.connected) and listener.drain():
            self.next_claim_at = 0.0  # an enqueue was announced: claim now
        if self.waker.fileno() in ready:
            self.waker.drain()
        self.crew.receive(ready)
        self.crew.enforce_timeouts(time.monotonic())
        return True

    def _sleep_for(self, now: float) -> float:
        """Seconds until the loop has something to do (a child's message wakes it sooner)."""
        db_ready = max(self.db_retry_at, now)  # while the database is away, do not spin
        deadlines = [max(self.next_heartbeat_at, db_ready), *self.crew.deadlines()]
        if self.results:
            deadlines.append(max(self.results[0].at + FLUSH_DELAY, db_ready))
        if self._claim_room() > 0:
            deadlines.append(max(self.next_claim_at, db_ready))
        if self.stopping:
            deadlines.append(self.grace_deadline)
        if self.crew.can_dispatch():
            deadlines.append(db_ready)
        return max(0.0, min(deadlines) - now)

    # --- talking to the database ----------------------------------------------------

    def _claim_room(self) -> int:
        """How many more items to claim now: enough that no child waits for work."""
        if self.stopping:
            return 0
        want = self.settings.concurrency * self.crew.chunk
        waiting = len(self.crew.backlog)
        if waiting >= want:
            return 0
        # Each child runs a chunk with one more queued behind it, so it never waits for
        # the worker. Quick items keep one chunk more in hand, to ride out a slow commit;
        # slow ones do not, so that other workers (other hosts) find them waiting.
        quick = self.mean_seconds is not None and self.mean_seconds < SLOW_ITEM
        room = (3 if quick else 2) * want - waiting - self.crew.running()
        if self.options.max_items is not None:
            room = min(room, self.options.max_items - self.claimed_total)
        return max(room, 0)

    def _exchange(self, now: float) -> None:
        """Record finished results and claim more, in one transaction, when either is due."""
        flush_due = bool(self.results) and (
            len(self.results) >= FLUSH_SIZE
            or now - self.results[0].at >= FLUSH_DELAY
            or not self.crew.running()
            or self.stopping
        )
        room = self._claim_room()
        limit = room if room and (flush_due or now >= self.next_claim_at) else 0
        if not flush_due and not limit:
            return
        batch = self.results if flush_due else []
        # An attempt is charged when its item starts. Slow items (or items of unknown
        # speed) wait in the backlog uncharged and are marked started one by one as a
        # child takes them; quick ones are charged at the claim (they start within a
        # few chunks' time, and a commit per chunk would cost more than they take).
        ahead = not self._quick()
        progress = self._progress(done=self.summary.processed + len(batch))
        outcome = self._guard(
            lambda: self.service.exchange(
                [(f.lease, f.result) for f in batch],
                operation=self.options.operation,
                limit=limit,
                worker=self.id,
                lease_seconds=self.settings.lease,
                started=not ahead,
                progress=progress,
            )
        )
        if outcome is None:
            return
        verdicts, claimed = outcome
        if batch:
            self.results = []
            self._report(batch, verdicts)
        if limit:
            self.claimed_total += len(claimed)
            self.held.update((lease.item_id, lease) for lease in claimed)
            if ahead:
                self.unstarted.update(lease.item_id for lease in claimed)
            self.crew.add(claimed)
            self.claim_came_back_empty = not claimed
            self.next_claim_at = now if len(claimed) == limit else now + self._idle_wait()

    def _idle_wait(self) -> float:
        """How long to wait before claiming again after a claim found less than asked."""
        if not self.options.loop:
            return 0.05
        due = self._guard(lambda: self.service.next_due_in(self.options.operation))
        return self.settings.poll_interval if due is None else min(self.settings.poll_interval, due)

    def _heartbeat(self, now: float) -> None:
        self.next_heartbeat_at = now + self.settings.lease / 3
        self.service.db.check_files()  # raises DatabaseReplaced: the worker must stop
        tokens = {lease.token for lease in self.held.values()}
        self.reported = (tuple(sorted(self.crew.current_items())), self.summary.processed)
        cancelled = self._guard(
            lambda: self.service.heartbeat(
                self.id,
                tokens,
                lease_seconds=self.settings.lease,
                current=self.crew.current_items(),
                done=self.summary.processed,
            )
        )
        if cancelled:
            self.crew.cancel(cancelled)

    def _guard(self, call: Callable[[], Any]) -> Any:
        """Run a database call; if the database is busy or unreachable past the lock
        budget, log it, back off and return None (the worker carries on and retries)."""
        try:
            result = call()
        except (DatabaseBusy, DatabaseUnreachable) as exc:
            self.db_failures += 1
            delay = min(30.0, 0.5 * 2 ** min(self.db_failures, 6))
            self.db_retry_at = time.monotonic() + delay
            reason = str(exc).split("; ")[0]  # the command's advice to rerun is not for a worker
            log.warning("%s; the worker carries on and tries again in %.0fs", reason, delay)
            return None
        if self.db_failures:
            log.warning("database reachable again")
            self.db_failures = 0
        return result

    def _report(self, batch: list[_Finished], verdicts: list[Verdict]) -> None:
        counters = {
            "completed": "completed",
            "failed": "failed",
            "retrying": "retried",
            "cancelled": "cancelled",
        }
        for finished, verdict in zip(batch, verdicts, strict=True):
            lease = finished.lease
            self.held.pop(lease.item_id, None)
            if verdict == "discarded":
                self.summary.discarded += 1
                log.warning(
                    "item %d: result discarded: its lease expired and another worker took it over "
                    "(this attempt ran %.1fs; consider a longer --lease)",
                    lease.item_id,
                    finished.result.seconds or 0.0,
                )
            else:
                self.summary.processed += 1
                if lease.item_id not in self.seen:
                    self.seen.add(lease.item_id)
                    self.summary.items += 1
                elif lease.item_id in self.waiting_retry:  # retried in this run: counted anew
                    self.waiting_retry.discard(lease.item_id)
                    self.summary.retried -= 1
                if verdict == "retrying":
                    self.waiting_retry.add(lease.item_id)
                name = counters[verdict]
                setattr(self.summary, name, getattr(self.summary, name) + 1)
            if self.on_event is not None:
                self.on_event(ItemEvent(lease, finished.result, verdict))

    def _progress(self, *, done: int, starting: Sequence[int] = ()) -> WorkerProgress | None:
        """The worker's row as it should read now (its children's items, ``starting`` too),
        or None if it reads so already: written with the next commit, never with one of its
        own (a failed commit is set right by the next heartbeat, which always writes it)."""
        current = tuple(sorted({*self.crew.current_items(), *starting}))
        if (current, done) == self.reported:
            return None
        self.reported = (current, done)
        return WorkerProgress(self.id, current, done)

    def _quick(self) -> bool:
        """Whether items have been taking less than ``SLOW_ITEM`` seconds each."""
        return self.mean_seconds is not None and self.mean_seconds < SLOW_ITEM

    def _start(self, handed: list[Lease]) -> set[int] | None:
        """Record items claimed ahead as started before a child gets them (None when the
        database is away); forget those that were taken over meanwhile."""
        waiting = [lease for lease in handed if lease.item_id in self.unstarted]
        if not waiting:
            return {lease.item_id for lease in handed}
        running = [lease.item_id for lease in handed]
        progress = self._progress(done=self.summary.processed, starting=running)
        held: set[int] | None = self._guard(lambda: self.service.start(waiting, progress=progress))
        if held is None:
            return None
        for lease in waiting:
            self.unstarted.discard(lease.item_id)
            if lease.item_id not in held:
                self.held.pop(lease.item_id, None)  # not ours any more: it must not run
        lost = {lease.item_id for lease in waiting} - held
        return {lease.item_id for lease in handed} - lost

    def _finished(self, lease: Lease, result: Result) -> None:
        """Keep a finished attempt to record with the next group, and learn how fast items
        go: quick items are handed to children in chunks of about ``CHUNK_TARGET`` seconds."""
        self.results.append(_Finished(lease, result, time.monotonic()))
        seconds = result.seconds or 0.0
        self.mean_seconds = seconds if self.mean_seconds is None else 0.8 * self.mean_seconds + 0.2 * seconds
        self.crew.chunk = max(1, min(MAX_CHUNK, int(CHUNK_TARGET / max(self.mean_seconds, 1e-6))))
        self.crew.queue_behind = self._quick()

    # --- stopping -------------------------------------------------------------------

    def _begin_stop(self, now: float) -> None:
        """Stop claiming; give back what has not started; let running items finish."""
        self.stopping = True
        self.grace_deadline = now + self.settings.grace
        running = self.crew.finish_running_only()
        if self.waker.signals:
            log.warning(
                "stopping: letting %s finish (up to %gs); signal again to stop now",
                plural(running, "running item"),
                self.settings.grace,
            )
        self._give_back(self.crew.take_backlog())

    def _give_back(self, leases: list[Lease]) -> None:
        """Release items that never started (or must not finish) without charging an attempt."""
        if not leases:
            return
        released = self._guard(lambda: self.service.release(leases))
        for lease in leases:
            self.held.pop(lease.item_id, None)
            self.unstarted.discard(lease.item_id)
        if released:
            self.summary.released += released

    def _shutdown(self) -> None:
        """Stop the children, record what finished, give back the rest, sign off."""
        unfinished = self.crew.shutdown()
        if self.files_lost:  # nothing written now would reach the queue
            return
        if self.results:
            batch, self.results = self.results, []
            outcome = self._guard(
                lambda: self.service.exchange(
                    [(f.lease, f.result) for f in batch], worker=self.id, lease_seconds=self.settings.lease
                )
            )
            if outcome is not None:
                self._report(batch, outcome[0])
        self._give_back(unfinished)
        self._guard(lambda: self.service.worker_stopped(self.id, done=self.summary.processed))


def _memory_limit(settings: Settings, handler: Handler) -> int | None:
    """The children's address-space cap: the parsers get the default, a user's own
    command none, unless ``--memory-limit`` says otherwise (0: none)."""
    limit = settings.memory_limit
    if limit is None:
        return None if handler.kind == "command" else DEFAULT_MEMORY_LIMIT
    return limit or None
