"""Reading a file once: its facts (path, size, SHA-256, type), and its bytes when wanted."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass

from docq.errors import TooLarge
from docq.processing.detect import detect_type

_CHUNK = 1024 * 1024
_FIRST_READ = 64 * 1024
"""At least this much is read first, even where the size says less (files still growing,
files in /proc that claim a size of 0), so that type detection sees enough of the start."""
# O_NONBLOCK: opening a FIFO must not wait for a writer (it has no effect on regular files).
# O_NOCTTY: opening a terminal must not make it ours.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
# Linux names an open file's resolved path in one readlink, where os.path.realpath
# costs an lstat per path component: most of inspect_file's time on a small file.
_FD_LINKS = "/proc/self/fd"
_HAS_FD_LINKS = os.path.isdir(_FD_LINKS)

_KINDS = (
    (stat.S_ISFIFO, "inode/fifo"),
    (stat.S_ISCHR, "inode/chardevice"),
    (stat.S_ISBLK, "inode/blockdevice"),
    (stat.S_ISSOCK, "inode/socket"),
)


@dataclass(frozen=True)
class FileFacts:
    """What enqueue records about a file, read cheaply.

    ``path`` is absolute with symbolic links resolved; ``sha256`` is hex; ``mime_type``
    comes from the content (see `detect_type`).
    """

    path: str
    size: int
    sha256: str
    mime_type: str


@dataclass(frozen=True)
class Scan:
    """A file's facts, and its whole content when the scan was asked to keep it."""

    facts: FileFacts
    content: bytes | None


class NotARegularFile(OSError):
    """The path names a FIFO, a device or a socket: nothing to read as a document.

    ``kind`` names what it is, as ``inode/fifo``, ``inode/chardevice``, ``inode/blockdevice``
    or ``inode/socket``.
    """

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"not a regular file ({kind}): {path}")
        self.path = path
        self.kind = kind

    def __reduce__(self) -> tuple[type[NotARegularFile], tuple[str, str]]:
        # Rebuilt from path and kind, so that it survives the trip out of a child process.
        return NotARegularFile, (self.path, self.kind)


def inspect_file(path: str) -> FileFacts:
    """Stat, hash and type the file at ``path`` in one open and, for a small file, one read.

    Raises the `OSError` the system gives (`FileNotFoundError`, `PermissionError`,
    `IsADirectoryError`...), and `NotARegularFile` for a FIFO, device or socket, which
    it never blocks on.
    """
    return scan(path).facts


def scan(path: str, *, max_size: int | None = None, keep: Collection[str] = ()) -> Scan:
    """Read the file at ``path`` to its end, hashing it; keep its bytes if its type is in ``keep``.

    Raises what `inspect_file` raises, and `TooLarge` (before reading) when the file
    is larger than ``max_size`` bytes.
    """
    fd = _open(path)
    try:
        status = os.fstat(fd)
        _require_regular(path, status.st_mode)
        if max_size is not None and status.st_size > max_size:
            raise TooLarge(
                f"too large: {os.path.basename(path)} is {status.st_size} bytes, over the {max_size}-byte cap"
            )
        # Asking for more than the size makes the end show as a short read, at once.
        wanted = min(max(status.st_size + 1, _FIRST_READ), _CHUNK)
        head = os.read(fd, wanted)
        mime_type = detect_type(head, path)
        digest = hashlib.sha256(head)
        size = len(head)
        kept = [head] if mime_type in keep else None
        if size == wanted:  # not at the end yet: a large file, or one still growing
            while chunk := os.read(fd, _CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if kept is not None:
                    kept.append(chunk)
        resolved = _resolve(fd, path)
    finally:
        os.close(fd)
    content = None if kept is None else b"".join(kept)
    return Scan(FileFacts(resolved, size, digest.hexdigest(), mime_type), content)


def _open(path: str) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except OSError as error:
        # A socket cannot be opened at all (ENXIO): say what it is rather than "no such device".
        if error.errno == errno.ENXIO and _is_socket(path):
            raise NotARegularFile(path, "inode/socket") from error
        raise


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _require_regular(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    for test, kind in _KINDS:
        if test(mode):
            raise NotARegularFile(path, kind)
    raise NotARegularFile(path, "inode/unknown")


def _resolve(fd: int, path: str) -> str:
    """``path`` made absolute with symbolic links resolved, as `os.path.realpath` gives it."""
    if _HAS_FD_LINKS:
        try:
            link = os.readlink(f"{_FD_LINKS}/{fd}")
        except OSError:
            link = ""
        # The kernel marks a file unlinked since it was opened; realpath then gives the path as named.
        if link.startswith("/") and not link.endswith(" (deleted)"):
            return link
    return os.path.realpath(path)
