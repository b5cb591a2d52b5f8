"""Settings, resolved once and passed down as one frozen object.

Resolution order is option, then ``DOCQ_*`` environment variable, then default. The
CLI does the first two (Typer reads the environment variables named in ``--help``);
library callers build `Settings` themselves. Nothing below the CLI reads
``os.environ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from docq.errors import UsageError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

Synchronous = Literal["full", "normal"]

BUILTIN_OPERATIONS = ("process", "reprocess")
"""Operations a worker without ``--operation`` runs: text and metadata extraction."""

NOOP_OPERATION = "noop"
"""A built-in operation that completes without touching the file (for benchmarks)."""


@dataclass(frozen=True)
class Settings:
    """Everything a command or a worker needs to know, in one place.

    Durations are seconds, sizes are bytes. ``memory_limit`` caps each processing
    child's address space: None picks the default (1 GiB for the built-in extraction and
    Python handlers, no cap for commands, whose needs docq cannot know); 0 means no cap.
    """

    db: str | None = None
    lock_timeout: float = 30.0
    synchronous: Synchronous = "full"
    max_attempts: int = 5
    retry_delay: float = 30.0
    retry_max_delay: float = 3600.0
    lease: float = 60.0
    concurrency: int = 1
    timeout: float = 300.0
    memory_limit: int | None = None  # None: 1 GiB for extraction and Python handlers, none for commands
    grace: float = 30.0
    poll_interval: float = 1.0
    max_size: int = 256 * MiB
    output_cap: int = 1 * MiB
    permanent_exit_codes: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        checks = [
            (self.lock_timeout >= 0, "lock timeout must not be negative"),
            (self.max_attempts >= 1, "max attempts must be at least 1"),
            (self.retry_delay >= 0, "retry delay must not be negative"),
            (self.retry_max_delay >= 0, "retry max delay must not be negative"),
            (
                self.retry_max_delay >= self.retry_delay,
                "retry max delay must not be shorter than the retry delay",
            ),
            (self.lease > 0, "lease must be longer than 0 s"),
            (self.concurrency >= 1, "concurrency must be at least 1"),
            (self.timeout > 0, "timeout must be longer than 0 s"),
            (self.grace >= 0, "grace must not be negative"),
            (self.poll_interval > 0, "poll interval must be longer than 0 s"),
            (self.max_size > 0, "max size must be more than 0 bytes"),
            (self.output_cap >= 0, "output cap must not be negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[arg-type]


def default_database_path() -> Path:
    """``docq.db`` in the user's data directory, so that cron and every shell share one queue."""
    import platformdirs

    return Path(platformdirs.user_data_dir("docq", appauthor=False)) / "docq.db"


_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``1.5``, ``500ms``, ``10m``, ``2h``, ``7d``, ``1w``.

    Raises `UsageError` for anything else, negative numbers included.
    """
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"invalid duration {text!r}: use a number of seconds or e.g. 90s, 10m, 2h, 7d")
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[(unit or "s").lower()]


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}


def parse_size(text: str) -> int:
    """Bytes in ``text``: ``1048576``, ``512K``, ``256M``, ``256MiB``, ``1G``, ``1GiB``.

    Units are binary (K = 1024). Raises `UsageError` for anything else.
    """
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"invalid size {text!r}: use a number of bytes or e.g. 512K, 256M, 1G")
    number, unit, _suffix = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def iso(timestamp: float | None, *, precise: bool = True) -> str | None:
    """A Unix time as ISO 8601 in UTC (``2026-11-28T21:17:48.123Z``); None stays None."""
    if timestamp is None:
        return None
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(float(timestamp), UTC)
    if precise:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


MAX_ID = 2**63 - 1
"""The largest id a queue can hold (a signed 64-bit integer, in SQLite and PostgreSQL alike):
a larger number names nothing, and is answered "not found" before it reaches the database."""


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 document``, ``3 documents`` (``words`` for an irregular plural)."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def format_duration(seconds: float) -> str:
    """A short human form of a duration: ``850ms``, ``42s``, ``3m 20s``, ``2h 5m``, ``3d 4h``."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
