"""The program a worker's child process runs: one handler over the jobs its worker sends.

Started as ``python -m docq.worker.child_main READ_FD WRITE_FD PARENT_PID`` by
`docq.worker.child_handle`, speaking `docq.worker.protocol`. It imports only what its
handler needs (never SQLAlchemy), lives in a process group of its own, caps its address
space when told to, and dies with its worker: Linux delivers it a signal when the worker
dies (``PR_SET_PDEATHSIG``), and a watchdog thread checks for the same thing everywhere else.

It ignores SIGINT, SIGTERM and SIGHUP, and so does a command it starts (an ignored signal
stays ignored across ``exec``): the worker owns shutdown. systemd's default
``KillMode=control-group`` sends SIGTERM to every process of the service at once; the
worker then lets the running items finish within ``--grace``, and kills their process
groups itself when it runs out.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection

from docq.items import Result
from docq.worker import reaper
from docq.worker.commands import kill_group
from docq.worker.handlers import run
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
)

_command_group: int | None = None  # the running command's process group, to kill on exit

IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEATH_SIGNAL = signal.SIGUSR1
"""What Linux sends a child running commands when its worker dies: SIGTERM is ignored."""


def main(argv: list[str]) -> int:
    """Serve jobs until the worker says exit or closes the pipe."""
    for signum in IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    read_fd, write_fd, parent_pid = (int(value) for value in argv[:3])
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    setup: Setup = inbox.recv()
    _die_with_parent(parent_pid, setup.handler)
    if setup.memory_limit:
        _cap_memory(setup.memory_limit)
    outbox.send(Ready(os.getpid()))
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
        # Timed here, not by the worker: a worker that reads Ready and Done in one go (it
        # was busy, or frozen) would see an instant item and take slow ones for quick.
        began = time.monotonic()
        result = _run_one(setup.handler, job, outbox)
        outbox.send(Done(job.item_id, result.timed(time.monotonic() - began)))


def _take(message: ToChild, jobs: deque[Job], outbox: Connection) -> bool:
    """Apply one message from the worker; False when it says exit."""
    match message:
        case Exit():
            return False
        case Run(new_jobs):
            jobs.extend(new_jobs)
        case Skip(wanted):
            skipped = [job.item_id for job in jobs if wanted is None or job.item_id in wanted]
            kept = [job for job in jobs if wanted is not None and job.item_id not in wanted]
            jobs.clear()
            jobs.extend(kept)
            outbox.send(Skipped(skipped))
    return True


def _run_one(handler: Handler, job: Job, outbox: Connection) -> Result:
    global _command_group

    def started(pid: int) -> None:
        global _command_group
        _command_group = pid
        outbox.send(Started(job.item_id, pid))

    try:
        return run(handler, job, on_started=started)
    except MemoryError:
        # The parser ran past the memory cap. This process may be in a bad state: report
        # and exit, and the worker starts a fresh child for the next job.
        outbox.send(Done(job.item_id, Result.failure("memory limit exceeded")))
        os._exit(MEMORY_EXIT)
    finally:
        _command_group = None


def _die_with_parent(parent_pid: int, handler: Handler) -> None:
    """Make sure this child, and any command it runs, stops when its worker dies."""
    if handler.runs_subprocesses:
        # Clean up the command's group first; a child waiting on a command is always
        # interruptible, so the handler runs at once.
        signal.signal(DEATH_SIGNAL, _exit_with_command)
        death_signal = DEATH_SIGNAL
    else:
        # A parser may be stuck inside C code where Python handlers never run: be killed.
        death_signal = signal.SIGKILL
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, int(death_signal), 0, 0, 0)
    if handler.runs_subprocesses:
        reaper.own_process()
        reaper.become_subreaper()  # what a command leaves behind dies with its item
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
