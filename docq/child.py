"""A worker's child process: runs one handler over the jobs its worker sends.

Started as ``python -m docq.child READ_FD WRITE_FD PARENT_PID`` by `docq.pool`. It
imports only what its handler needs (never SQLAlchemy), lives in a process group of its
own, caps its address space when told to, and dies with its worker: Linux delivers it a
signal when the worker dies (``PR_SET_PDEATHSIG``), and a watchdog thread checks for
the same thing everywhere else.

Protocol (pickled tuples over two pipes):

* worker to child: ``(handler, memory_limit)`` once, then any of ``("run", [Job, ...])``
  (more work, run in order), ``("skip", [item_id, ...] or None)`` (drop those jobs, or all,
  if they have not started: a cancel, or a shutdown) and ``("exit",)``;
* child to worker: ``("ready", pid)`` once, then per job ``("started", item_id, pgid)``
  (commands only, so the worker can kill the command's group) and
  ``("done", item_id, HandlerOutcome)``, and ``("skipped", [item_id, ...])`` per skip.

The child reads its messages between jobs, so a skip takes effect before the next job.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from docq.operations import Handler, HandlerOutcome, Job, kill_group, run

MEMORY_EXIT = 3
"""Exit code of a child that reported a job which ran out of memory, then exited."""

_command_group: int | None = None  # the running command's process group, to kill on exit


def main(argv: list[str]) -> int:
    """Serve jobs until the worker says exit or closes the pipe."""
    read_fd, write_fd, parent_pid = (int(value) for value in argv[:3])
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    handler, memory_limit = inbox.recv()
    _die_with_parent(parent_pid, handler)
    if memory_limit:
        _cap_memory(memory_limit)
    outbox.send(("ready", os.getpid()))
    jobs: deque[Job] = deque()
    while True:
        try:
            # Wait for work when there is none; otherwise only take what has arrived.
            while not jobs or inbox.poll():
                if not _take(inbox.recv(), jobs, outbox):
                    return 0
        except EOFError:  # the worker closed the pipe: it is gone or done
            return 0
        job = jobs.popleft()
        outbox.send(("done", job.item_id, _run_one(handler, job, outbox)))


def _take(message: tuple[Any, ...], jobs: deque[Job], outbox: Connection) -> bool:
    """Apply one message from the worker; False when it says exit."""
    kind = message[0]
    if kind == "exit":
        return False
    if kind == "run":
        jobs.extend(message[1])
    elif kind == "skip":
        wanted = None if message[1] is None else set(message[1])
        skipped = [job.item_id for job in jobs if wanted is None or job.item_id in wanted]
        kept = [job for job in jobs if wanted is not None and job.item_id not in wanted]
        jobs.clear()
        jobs.extend(kept)
        outbox.send(("skipped", skipped))
    return True


def _run_one(handler: Handler, job: Job, outbox: Connection) -> HandlerOutcome:
    global _command_group

    def started(pid: int) -> None:
        global _command_group
        _command_group = pid
        outbox.send(("started", job.item_id, pid))

    try:
        outcome = run(handler, job, on_started=started)
    except MemoryError:
        # The parser ran past the memory cap. This process may be in a bad state: report
        # and exit, and the worker starts a fresh child for the next job.
        outbox.send(("done", job.item_id, HandlerOutcome(ok=False, error="memory limit exceeded")))
        os._exit(MEMORY_EXIT)
    finally:
        _command_group = None
    return _clean_outcome(outcome)


def _clean_outcome(outcome: HandlerOutcome) -> HandlerOutcome:
    """Text the database can store: no NUL characters, no lone surrogates."""
    if outcome.text is None and outcome.metadata is None:
        return outcome
    return HandlerOutcome(
        ok=outcome.ok,
        text=_clean(outcome.text),
        metadata=_clean(outcome.metadata),
        note=_clean(outcome.note),
        error=outcome.error,
        permanent=outcome.permanent,
    )


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "")
        if value.isascii():  # the common case, checked in C without a copy
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _die_with_parent(parent_pid: int, handler: Handler) -> None:
    """Make sure this child, and any command it runs, stops when its worker dies."""
    if handler.runs_subprocesses:
        # Clean up the command's group first; a child waiting on a command is always
        # interruptible, so the handler runs at once.
        signal.signal(signal.SIGTERM, _exit_with_command)
        death_signal = signal.SIGTERM
    else:
        # A parser may be stuck inside C code where Python handlers never run: be killed.
        death_signal = signal.SIGKILL
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(death_signal), 0, 0, 0)
    if os.getppid() != parent_pid:  # the worker died before we asked to follow it
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watchdog").start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    _exit_with_command()


def _exit_with_command(*_args: object) -> None:
    if _command_group is not None:
        kill_group(_command_group)
    os._exit(1)


def _cap_memory(limit: int) -> None:
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):  # a hard limit below ours already applies; keep it
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
