"""The worker's side of its child processes (see `docq.child`).

A `Child` is one warm process that runs jobs one after another. The worker hands it a
chunk of leased items, reads one ``done`` message per item, and knows which item is
running now and since when, so that it can kill the child (and any command's process
group) when that item times out or is cancelled. A child that dies takes only its
current item with it: the worker names the signal and starts a fresh child.
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
from typing import Any

from docq.child import MEMORY_EXIT
from docq.leases import Lease
from docq.operations import Handler, Job, kill_group, signal_name


@dataclass(frozen=True)
class Death:
    """How a child process ended: ``reason`` for the item it was running, and whether
    that item is to blame (False when the child reported its item and then exited)."""

    reason: str
    blame_current: bool = True


STARTUP_GRACE = 30.0
"""Seconds a new child may take to start (imports, a loaded machine) before its first
item's timeout starts counting down."""


class Child:
    """One child process and the leased items it has been given, in order."""

    def __init__(self, handler: Handler, memory_limit: int | None, *, quiet: bool = True) -> None:
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        sink = subprocess.DEVNULL if quiet else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "docq.child", str(to_child_read), str(from_child_write), str(os.getpid())],
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
        self._outbox.send((handler, memory_limit))
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

    def assign(self, leases: list[Lease]) -> None:
        """Send a chunk of items; the first starts now if the child was idle."""
        if not self.assigned and self.ready:
            self.head_started = time.monotonic()
        self.assigned.extend(leases)
        jobs = [
            Job(lease.item_id, lease.document_id, lease.path, lease.attempt, lease.sha256) for lease in leases
        ]
        self._outbox.send(("run", jobs))

    def skip(self, item_ids: list[int] | None) -> None:
        """Ask the child to drop these queued items (None: all) unless they started; it
        answers with a ``("skipped", ids)`` message, and `receive` takes them off ``assigned``."""
        self._outbox.send(("skip", item_ids))

    def deadline(self, timeout: float) -> float:
        """When the running item times out (a child that never became ready gets
        ``STARTUP_GRACE`` more, counted from its start)."""
        if not self.ready:
            return self.spawned_at + timeout + STARTUP_GRACE
        return self.head_started + timeout

    def receive(self) -> tuple[list[tuple[Any, ...]], Death | None]:
        """Every message the child has sent so far (call when its inbox is readable),
        and how it died if it is gone. Its unfinished items stay in ``assigned``."""
        messages: list[tuple[Any, ...]] = []
        try:
            while self.inbox.poll():
                message = self.inbox.recv()
                kind = message[0]
                if kind == "ready":
                    self.ready = True
                    self.head_started = time.monotonic()
                elif kind == "started":
                    self.command_group = message[2]
                elif kind == "done":
                    self.command_group = None
                elif kind == "skipped":
                    self._drop(set(message[1]))
                messages.append(message)
        except (EOFError, OSError):
            return messages, self._death()
        return messages, None

    def _drop(self, item_ids: set[int]) -> None:
        head = self.assigned[0] if self.assigned else None
        kept = [lease for lease in self.assigned if lease.item_id not in item_ids]
        self.assigned = deque(kept)
        if self.assigned and self.assigned[0] is not head:  # the next item starts now
            self.head_started = time.monotonic()

    def finished_head(self) -> Lease:
        """Pop the item that just finished; the next one starts now."""
        lease = self.assigned.popleft()
        self.head_started = time.monotonic()
        return lease

    def kill(self) -> None:
        """Kill the child, its process group and any command's process group, at once."""
        if self.command_group is not None:
            kill_group(self.command_group)
        kill_group(self.process.pid)
        self._reap(timeout=5)

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the child to exit; kill it if it has not within ``timeout`` seconds."""
        try:
            self._outbox.send(("exit",))
        except OSError:
            pass  # already gone
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
