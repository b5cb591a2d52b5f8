"""Processes that escape their process group (a command that calls ``setsid`` or forks a
daemon) are adopted and killed instead of outliving their item.

On Linux a worker and each of its children mark themselves child subreapers
(``PR_SET_CHILD_SUBREAPER``): an orphan below them is re-parented to the nearest one
instead of to init. The child kills what it adopted when each command ends; the worker
kills what it adopted (the leftovers of a child it killed) after a timeout, a cancel or
a crash, and at exit. Only a process that became a subreaper (``docq work`` and its
children, never a program that embeds the library, whose other children are its own)
kills anything; elsewhere these calls do nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Collection

PR_SET_CHILD_SUBREAPER = 36
ROUNDS = 10  # a killed orphan's own children are adopted in turn; stop after this many

_own = False  # whether this process is a docq program of its own (see `own_process`)
_adopting = False  # whether this process became a subreaper


def own_process() -> None:
    """Declare this process a docq program of its own (the console script, a worker's
    child). Only such a process becomes a subreaper: a program that calls the library
    in-process, a test runner say, has children that are not the worker's to kill."""
    global _own
    _own = True


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants. False where the system cannot, or
    this process is not a docq program of its own."""
    if not _own or not sys.platform.startswith("linux"):
        return False
    import ctypes

    global _adopting
    _adopting = bool(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    return _adopting


def adopted(keep: Collection[int] = ()) -> list[int]:
    """The live children of this process other than ``keep`` (its own, known children)."""
    me = os.getpid()
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) in keep:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == me and fields[0] != b"Z":
            found.append(int(entry))
    return found


def kill_adopted(keep: Collection[int] = ()) -> int:
    """SIGKILL and reap every adopted process (not ``keep``); returns how many. Does
    nothing unless this process became a subreaper."""
    killed = 0
    if not _adopting:
        return killed
    for _ in range(ROUNDS):
        strays = adopted(keep)
        if not strays:
            break
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in strays:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        killed += len(strays)
    return killed
