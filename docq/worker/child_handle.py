"""The worker's handle on one child process (the child runs `docq.worker.child_main`).

A `ChildHandle` is one warm process that runs jobs one after another. The worker hands
it a chunk of leased items, reads one `Done` per item, and knows which item is running
now and since when, so that it can kill the child (and any command's process group) when
that item times out or is cancelled. A child that dies takes only its current item with
it: the worker names the signal and starts a fresh child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection

from docq.items import Lease, Result
from docq.worker.commands import kill_group, signal_name
from docq.worker.protocol import (
    MEMORY_EXIT,
    Done,
    Exit,
    Handler,
    Job,
    Ready,
    Run,
    Setup,
    Skip,
    Skipped,
    Started,
    ToChild,
    ToWorker,
)


@dataclass(frozen=True)
class Received:
    """What a child has said since it was last asked: the items it finished (each with
    its result, timed), the queued items it dropped on request, and how it died, if it did."""

    finished: list[tuple[Lease, Result]]
    dropped: list[Lease]
    death: Death | None


@dataclass(frozen=True)
class Death:
    """How a child process ended: ``reason`` for the item it was running, and whether
    that item is to blame (False when the child reported its item and then exited)."""

    reason: str
    blame_current: bool = True


STARTUP_GRACE = 30.0
"""Seconds a new child may take to start (imports, a loaded machine) before its first
item's timeout starts counting down."""


class ChildHandle:
    """One child process and the leased items it has been given, in order."""

    def __init__(self, handler: Handler, memory_limit: int | None, *, quiet: bool = True) -> None:
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        sink = subprocess.DEVNULL if quiet else None
        program = "docq.worker.child_main"
        self.process = subprocess.Popen(
            [sys.executable, "-m", program, str(to_child_read), str(from_child_write), str(os.getpid())],
            pass_fds=(to_child_read, from_child_write),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,  # its own process group: killed as a whole, spared by Ctrl-C
        )
        os.close(to_child_read)
        os.close(from_child_write)
        self.inbox = Connection(from_child_read, writable=False)
        self._outbox = Connection(to_child_write, readable=False)
        self._send(Setup(handler, memory_limit))
        self.assigned: deque[Lease] = deque()
        self.spawned_at = time.monotonic()
        self.ready = False  # until the child says so, its start-up is not any item's time
        self.head_started = 0.0  # monotonic time the first assigned item started
        self.command_group: int | None = None

    @property
    def pid(self) -> int:
        """The child's process id (also its process group id)."""
        return self.process.pid

    @property
    def busy(self) -> bool:
        """Whether the child has items to run."""
        return bool(self.assigned)

    def _send(self, message: ToChild) -> None:
        self._outbox.send(message)

    def assign(self, leases: list[Lease]) -> None:
        """Send a chunk of items; the first starts now if the child was idle."""
        if not self.assigned and self.ready:
            self.head_started = time.monotonic()
        self.assigned.extend(leases)
        self._send(Run([Job.of(lease) for lease in leases]))

    def skip(self, item_ids: list[int] | None) -> None:
        """Ask the child to drop these queued items (None: all) unless they started; it
        answers `Skipped`, and `receive` takes them off ``assigned``."""
        self._send(Skip(None if item_ids is None else frozenset(item_ids)))

    def deadline(self, timeout: float) -> float:
        """When the running item times out (a child that never became ready gets
        ``STARTUP_GRACE`` more, counted from its start)."""
        if not self.ready:
            return self.spawned_at + timeout + STARTUP_GRACE
        return self.head_started + timeout

    def receive(self) -> Received:
        """Everything the child has sent so far (call when its inbox is readable), in the
        worker's terms. Items it has not finished or dropped stay in ``assigned``."""
        finished: list[tuple[Lease, Result]] = []
        dropped: list[Lease] = []
        try:
            while self.inbox.poll():
                message: ToWorker = self.inbox.recv()
                match message:
                    case Ready():
                        self.ready = True
                        self.head_started = time.monotonic()
                    case Started(_, pgid):
                        self.command_group = pgid
                    case Done(_, result):
                        self.command_group = None
                        now = time.monotonic()
                        if result.seconds is None:  # a child measures its items; else our estimate
                            result = result.timed(now - self.head_started)
                        finished.append((self.assigned.popleft(), result))
                        self.head_started = now  # the next item starts now
                    case Skipped(item_ids):
                        dropped.extend(self._drop(set(item_ids)))
        except (EOFError, OSError):
            return Received(finished, dropped, self._death())
        return Received(finished, dropped, None)

    def _drop(self, item_ids: set[int]) -> list[Lease]:
        head = self.assigned[0] if self.assigned else None
        dropped = [lease for lease in self.assigned if lease.item_id in item_ids]
        self.assigned = deque(lease for lease in self.assigned if lease.item_id not in item_ids)
        if self.assigned and self.assigned[0] is not head:  # the next item starts now
            self.head_started = time.monotonic()
        return dropped

    def running_for(self) -> float:
        """Seconds the item at the head of ``assigned`` has been running."""
        return time.monotonic() - self.head_started

    def kill(self) -> None:
        """Kill the child, its process group and any command's process group, at once."""
        if self.command_group is not None:
            kill_group(self.command_group)
        kill_group(self.process.pid)
        self._reap(timeout=5)

    def ask_to_exit(self) -> None:
        """Tell the child to exit once it has read what came before (see `stop`)."""
        try:
            self._send(Exit())
        except OSError:
            pass  # already gone

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the child to exit; kill it if it has not within ``timeout`` seconds."""
        self.ask_to_exit()
        if not self._reap(timeout=timeout):
            self.kill()

    def _reap(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        for connection in (self.inbox, self._outbox):
            connection.close()
        return True

    def _death(self) -> Death:
        """How the child died, for the error of the item it was running."""
        if self.command_group is not None:
            kill_group(self.command_group)  # never leave a command running headless
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.returncode
        if code is not None and code < 0:
            name = signal_name(-code)
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return Death(f"worker child crashed: killed by {name}{hint}")
        if code == MEMORY_EXIT:
            return Death("memory limit exceeded", blame_current=False)
        return Death(f"worker child exited unexpectedly with code {code}")
