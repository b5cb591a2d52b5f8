"""Turns SIGINT, SIGTERM and SIGHUP into something a worker's ``wait()`` can wake up on.

The worker counts signals (the first asks for a graceful stop, the second for an
immediate one) instead of letting Python raise KeyboardInterrupt in the middle of a
database transaction. The C-level handler writes to a socket pair (``set_wakeup_fd``),
so a worker asleep in ``wait()`` wakes at once.
"""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Each asks for a graceful stop (a hang-up too: a closed terminal or ssh session must not
leave items in progress until their leases expire); a second, for an immediate one."""


class Waker:
    """Counts stop signals and is readable (``fileno()``) once one has arrived."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self.signals = 0
        self.last_signal: int | None = None
        self._previous: dict[int, Any] = {}
        self._previous_fd: int | None = None

    def fileno(self) -> int:
        """The readable end, for ``multiprocessing.connection.wait``."""
        return self._read.fileno()

    def install(self) -> None:
        """Catch SIGINT, SIGTERM and SIGHUP (only possible in the main thread; elsewhere the
        caller's own signal handling stays in charge)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._previous_fd = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)

    def restore(self) -> None:
        """Put back the handlers that were there before `install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None
        self._read.close()
        self._write.close()

    def drain(self) -> None:
        """Empty the socket after a wake-up."""
        try:
            while self._read.recv(512):
                pass
        except BlockingIOError:
            pass

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        self.last_signal = signum
