"""The files under an SQLite queue, as the operating system sees them.

A WAL-mode database is three files: ``q.db``, ``q.db-wal`` (the commits not yet copied
into ``q.db``) and ``q.db-shm`` (the WAL's index). A connection keeps each of them open.
If an operator deletes or replaces one while a process holds it, that process goes on
reading and writing the file it holds, which no other process can see: its commits are
acknowledged and then lost. SQLite cannot notice; these functions can, by inode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

SUFFIXES = ("", "-wal", "-shm")


FileIdentity = dict[str, tuple[int, int]]
"""File name -> (device, inode), for the database's files that exist."""


def file_identity(path: str) -> FileIdentity:
    """The (device, inode) of the database file and of its ``-wal`` and ``-shm`` files,
    for those that exist now."""
    found: FileIdentity = {}
    for suffix in SUFFIXES:
        try:
            stat = os.stat(path + suffix)
        except OSError:
            continue
        found[path + suffix] = (stat.st_dev, stat.st_ino)
    return found


def replaced_files(before: FileIdentity, now: FileIdentity) -> list[str]:
    """The files of ``before`` that are gone from disk or are another file now.

    While any connection is open, SQLite neither deletes nor recreates the WAL (only the
    last connection to close removes it), so a change under an open connection is
    always someone else's doing."""
    return [name for name, identity in before.items() if now.get(name) != identity]


@dataclass(frozen=True)
class Holder:
    """A process that holds a deleted file of the database open."""

    pid: int
    file: str
    command: str


def holders_of_deleted(path: str) -> Iterator[Holder]:
    """Processes (of this user; others' are not readable) that hold one of the database's
    files open after it was deleted from disk (Linux ``/proc``; nothing elsewhere)."""
    wanted = {os.path.realpath(path) + suffix + " (deleted)": path + suffix for suffix in SUFFIXES}
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or another user's
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in wanted:
                yield Holder(pid, wanted[target], _command_line(pid))
                break


def _command_line(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            words = file.read().split(b"\0")
    except OSError:
        return "?"
    return " ".join(word.decode(errors="replace") for word in words if word)[:120] or "?"
