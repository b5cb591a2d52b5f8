"""What a worker and its child processes say to each other, as typed messages.

The worker (`docq.worker.child_handle`) sends a `Setup` once, then any of `Run` (more
jobs, run in order), `Skip` (drop those jobs, or all, if they have not started: a cancel
or a shutdown) and `Exit`. The child (`docq.worker.child_main`) answers `Ready` once, then
per job `Started` (commands only, so the worker can kill the command's process group) and
`Done`, and one `Skipped` per `Skip`. Messages are pickled over two pipes; the child reads
its messages between jobs, so a skip takes effect before the next job starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from docq.items import Lease, Result

MEMORY_EXIT = 3
"""Exit code of a child that reported a job which ran out of memory, then exited."""

HandlerKind = Literal["extract", "noop", "command", "python"]


@dataclass(frozen=True)
class Handler:
    """How to process one item: ``kind`` and, for commands, the argv template; for Python
    functions, ``target`` as ``module:function``. Built and checked by `handlers.handler_for`."""

    kind: HandlerKind
    argv: tuple[str, ...] = ()
    target: str = ""
    max_size: int = 256 * 1024 * 1024
    output_cap: int = 1024 * 1024
    permanent_exit_codes: frozenset[int] = field(default_factory=frozenset)
    pass_env: frozenset[str] = field(default_factory=frozenset)  # passed to commands all the same

    @property
    def runs_subprocesses(self) -> bool:
        """Whether the child must clean up a process group when its worker dies."""
        return self.kind == "command"


@dataclass(frozen=True)
class Job:
    """One leased item as a child process sees it (no lease token: fencing is the worker's)."""

    item_id: int
    document_id: int
    path: str
    attempt: int
    sha256: str | None

    @classmethod
    def of(cls, lease: Lease) -> Job:
        """The job for a leased item."""
        return cls(lease.item_id, lease.document_id, lease.path, lease.attempt, lease.sha256)


# --- worker to child ---------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """The first message: what this child runs, and its address-space cap (None: none)."""

    handler: Handler
    memory_limit: int | None


@dataclass(frozen=True)
class Run:
    """More jobs, to run after those already sent."""

    jobs: list[Job]


@dataclass(frozen=True)
class Skip:
    """Drop these jobs (None: every job) unless they have started."""

    item_ids: frozenset[int] | None


@dataclass(frozen=True)
class Exit:
    """Finish up and exit."""


ToChild = Setup | Run | Skip | Exit


# --- child to worker ---------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The child has started and set itself up; its first job's time starts now."""

    pid: int


@dataclass(frozen=True)
class Started:
    """A command started for a job, in process group ``pgid``."""

    item_id: int
    pgid: int


@dataclass(frozen=True)
class Done:
    """A job finished, well or not."""

    item_id: int
    result: Result


@dataclass(frozen=True)
class Skipped:
    """The jobs a `Skip` dropped."""

    item_ids: list[int]


ToWorker = Ready | Started | Done | Skipped
