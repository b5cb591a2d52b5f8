"""The worker's child processes, and the claimed items waiting for one.

The crew hands claimed items to warm children in chunks, the least loaded child first
(a child that is still starting gets nothing: an item counts as started, and is charged
an attempt, only when a child that can run it takes it),
reads what they finish, kills a child whose item runs past the timeout or is cancelled,
and starts a fresh child for the next item when one dies. It never touches the database:
every finished attempt goes to ``on_finished`` and every item given back unstarted to
``on_returned``, and the loop (`docq.worker.loop`) records them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from docq.items import Lease, Result
from docq.worker import reaper
from docq.worker.child_handle import ChildHandle, Death, Received
from docq.worker.protocol import Handler

log = logging.getLogger("docq.worker")

OnFinished = Callable[[Lease, Result], None]
OnReturned = Callable[[list[Lease]], None]
OnStart = Callable[[list[Lease]], "set[int] | None"]
"""Records leases as started before a child gets them: the ids still held, or None when
the database could not be reached (then nothing is handed out this time)."""


class Crew:
    """``size`` child slots, filled on demand, and the backlog of items they will run."""

    def __init__(
        self,
        handler: Handler,
        *,
        size: int,
        timeout: float,
        memory_limit: int | None,
        quiet: bool,
        on_finished: OnFinished,
        on_returned: OnReturned,
        on_start: OnStart,
    ) -> None:
        self.handler = handler
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.quiet = quiet
        self.on_finished = on_finished
        self.on_returned = on_returned
        self.on_start = on_start
        self.children: list[ChildHandle | None] = [None] * size
        self.backlog: deque[Lease] = deque()  # claimed, not yet handed to a child
        self.cancelling: set[int] = set()  # asked a child to drop these; cancelled when it does
        self.chunk = 1  # items handed to a child at a time (the loop sets it from their speed)
        # Whether a child gets its next chunk while it runs one (quick items: it never
        # waits for the worker). Slow items stay in the backlog until a child is free, so
        # that a worker that dies has started, and is charged for, only what was running.
        self.queue_behind = False

    # --- what the loop asks ---------------------------------------------------------

    def running(self) -> int:
        """Items handed to children and not finished yet."""
        return sum(len(child.assigned) for child in self._live())

    def current_items(self) -> list[int]:
        """The item each busy child is running now."""
        return [child.assigned[0].item_id for child in self._live() if child.busy]

    def inboxes(self) -> list[Any]:
        """What to wait on for news from busy children and children starting up."""
        return [child.inbox for child in self._live() if child.busy or not child.ready]

    def deadlines(self) -> list[float]:
        """When each running item times out, and each starting child must be ready (monotonic)."""
        return [child.deadline(self.timeout) for child in self._live() if child.busy or not child.ready]

    def can_dispatch(self) -> bool:
        """Whether a claimed item is waiting and a child could take it (or be started) now."""
        return bool(self.backlog) and any(child is None or self._has_room(child) for child in self.children)

    # --- handing out and taking back --------------------------------------------------

    def add(self, leases: Iterable[Lease]) -> None:
        """Claimed items, to run after those already waiting."""
        self.backlog.extend(leases)

    def take_backlog(self) -> list[Lease]:
        """Remove and return every item not yet handed to a child."""
        waiting = list(self.backlog)
        self.backlog.clear()
        return waiting

    def dispatch(self) -> None:
        """Hand waiting items to children, the least loaded first, sharing them out so
        that every child runs something before any gets a second chunk."""
        for slot, child in enumerate(self.children):
            if child is None and self.backlog:  # it gets items once it is ready
                self.children[slot] = ChildHandle(self.handler, self.memory_limit, quiet=self.quiet)
        while self.backlog:
            open_slots = [slot for slot, child in enumerate(self.children) if self._has_room(child)]
            if not open_slots:
                return
            slot = min(open_slots, key=self._load)
            size = max(1, min(self.chunk, len(self.backlog) // len(open_slots)))
            chunk = [self.backlog.popleft() for _ in range(size)]
            held = self.on_start(chunk)  # an attempt counts once its item is handed over
            if held is None:  # the database is away: keep them, and try again later
                self.backlog.extendleft(reversed(chunk))
                return
            chunk = [lease for lease in chunk if lease.item_id in held]
            child = self.children[slot]
            if chunk and child is not None:
                child.assign(chunk)

    def receive(self, ready: list[Any]) -> None:
        """Read every child whose inbox is in ``ready``."""
        for slot, child in enumerate(self.children):
            if child is not None and child.inbox in ready:
                self._take(slot, child, child.receive())

    def finish_running_only(self) -> int:
        """At a graceful stop: ask every busy child to drop what it has not started.
        Returns how many items are running now."""
        busy = [child for child in self._live() if child.busy]
        for child in busy:
            child.skip(None)
        return len(busy)

    def shutdown(self) -> list[Lease]:
        """Stop every child (killing busy ones) and return the items they did not finish,
        with the backlog."""
        unfinished = self.take_backlog()
        idle = [child for child in self._live() if not child.busy]
        for child in idle:  # all at once: they exit side by side, not one after another
            child.ask_to_exit()
        for child in self._live():
            if child.busy:
                child.kill()
                unfinished.extend(child.assigned)
            else:
                child.stop()
        self.children = [None] * len(self.children)
        self._kill_strays()
        return unfinished

    # --- timeouts and cancels -------------------------------------------------------

    def enforce_timeouts(self, now: float) -> None:
        """Kill each child whose item ran past the timeout, or that did not become ready
        in time; the item fails (transient), and the child's queued items go back to the
        backlog."""
        for slot, child in enumerate(self.children):
            if child is None or not (child.busy or not child.ready) or now < child.deadline(self.timeout):
                continue
            child.kill()
            self.children[slot] = None
            self._kill_strays()
            if not child.busy:
                self._fail_next(f"worker child did not start within {now - child.spawned_at:.0f}s")
                continue
            lease = child.assigned.popleft()  # a busy child is a ready one
            error = f"timeout: stopped after {self.timeout:g}s"
            log.debug("item %d: %s (%s)", lease.item_id, error, lease.path)
            self.on_finished(lease, Result.failure(error).timed(child.running_for()))
            self.backlog.extendleft(reversed(child.assigned))

    def cancel(self, item_ids: set[int]) -> None:
        """Stop items whose cancellation was requested: kill the child that is running
        one; ask a child to drop one that waits in its queue."""
        for lease in [lease for lease in self.backlog if lease.item_id in item_ids]:
            self.backlog.remove(lease)
            self.on_finished(lease, Result.stopped())
        for slot, child in enumerate(self.children):
            if child is None:
                continue
            queued = [lease.item_id for lease in child.assigned if lease.item_id in item_ids]
            if not queued:
                continue
            running = child.assigned[0]
            if not (child.ready and running.item_id in item_ids):
                self.cancelling.update(queued)
                child.skip(queued)
                continue
            child.kill()
            self.children[slot] = None
            self._kill_strays()
            self.on_finished(running, Result.stopped(child.running_for()))
            rest = list(child.assigned)[1:]
            for lease in rest:
                if lease.item_id in item_ids:
                    self.on_finished(lease, Result.stopped())
            self.backlog.extendleft(reversed([lease for lease in rest if lease.item_id not in item_ids]))
            child.assigned.clear()

    # --- inside ---------------------------------------------------------------------

    def _kill_strays(self) -> None:
        """Kill what a killed or dead child's commands left behind outside their process
        group (adopted by this worker: see `reaper`); the live children are spared."""
        killed = reaper.kill_adopted(keep={child.process.pid for child in self._live()})
        if killed:
            log.debug("killed %d process(es) left behind by a command", killed)

    def _live(self) -> list[ChildHandle]:
        return [child for child in self.children if child is not None]

    def _load(self, slot: int) -> int:
        child = self.children[slot]
        return 0 if child is None else len(child.assigned)

    def _has_room(self, child: ChildHandle | None) -> bool:
        """A ready child is given a chunk when it is free or, for quick items, while it
        has at most one chunk to run, so the next chunk is already waiting in its pipe
        when it finishes the current one. A child still starting gets none yet."""
        if child is None or not child.ready:
            return False
        return len(child.assigned) <= self.chunk if self.queue_behind else not child.assigned

    def _take(self, slot: int, child: ChildHandle, received: Received) -> None:
        for lease, result in received.finished:
            self.cancelling.discard(lease.item_id)  # it had started before the cancel reached it
            self.on_finished(lease, result)
        if received.dropped:
            back = []
            for lease in received.dropped:
                if lease.item_id in self.cancelling:  # dropped because it was cancelled
                    self.cancelling.discard(lease.item_id)
                    self.on_finished(lease, Result.stopped())
                else:  # dropped because the worker is stopping
                    back.append(lease)
            if back:
                self.on_returned(back)
        if received.death is not None:
            self._lost(slot, child, received.death)

    def _fail_next(self, error: str) -> None:
        """A child died or hung while starting: the next waiting item, which it would have
        run, fails in its place (transient, so retried). A child that can never start
        thus fails items, as any broken child does, instead of being restarted forever."""
        if not self.backlog:
            return
        lease = self.backlog.popleft()
        held = self.on_start([lease])
        if held is None:  # the database is away: try again later
            self.backlog.appendleft(lease)
        elif lease.item_id in held:
            log.debug("item %d: %s (%s)", lease.item_id, error, lease.path)
            self.on_finished(lease, Result.failure(error))

    def _lost(self, slot: int, child: ChildHandle, death: Death) -> None:
        """A child died: its running item failed (transient); its queued items go back."""
        self.children[slot] = None
        self._kill_strays()
        if not child.ready:
            self._fail_next(f"{death.reason} before it was ready")
        elif death.blame_current and child.assigned:
            lease = child.assigned.popleft()
            log.debug("item %d: %s (%s)", lease.item_id, death.reason, lease.path)
            self.on_finished(lease, Result.failure(death.reason).timed(child.running_for()))
        self.backlog.extendleft(reversed(child.assigned))
        child.assigned.clear()
