"""How ``docq work`` logs when no one watches: ``docq work >> work.log 2>&1``, cron, systemd.

Off a terminal every line on stderr starts with an ISO-8601 UTC timestamp, or, with
``--log-format json``, is one JSON object (``ts``, ``level``, ``event``, ``message``, and
for items ``item``, ``document``, ``path``, ``outcome``, ``duration_ms``, ``error``). A
start line (version, database with any password hidden, operation, concurrency, pid) and
a stop line (why, and the summary) frame a run; in once mode (cron) they are written only
if the run logs anything, so a run with nothing due prints nothing at all. ``quiet``
keeps errors only; ``verbose`` adds the library's debug messages.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from docq.config import format_duration
from docq.render import output
from docq.render.output import plural, shown_path

if TYPE_CHECKING:
    from docq.worker import ItemEvent, WorkSummary

LogFormat = Literal["text", "json"]

LEVELS = {"completed": logging.INFO, "cancelled": logging.INFO, "retrying": logging.WARNING}
"""An item's log level by verdict; anything else (failed, discarded) is an error."""


class WorkLog:
    """The log of one ``docq work`` run (see the module's docstring)."""

    def __init__(
        self, *, log_format: LogFormat, threshold: int, announce: bool, start: dict[str, Any] | None
    ) -> None:
        """``start`` holds the start line's facts; None: no start and stop lines at all
        (``--json``, whose summary is the output)."""
        self.format = log_format
        self.threshold = threshold
        self.start_fields = start
        self.started = False
        if announce:
            self._start()

    # --- what the run reports ----------------------------------------------------------

    def item(self, event: ItemEvent) -> None:
        """One recorded attempt."""
        level = LEVELS.get(event.verdict, logging.ERROR)
        lease = event.lease
        fields = {
            "item": lease.item_id,
            "document": lease.document_id,
            "path": lease.path,
            "outcome": event.verdict,
            "duration_ms": round(event.seconds * 1000),
            "error": event.error,
        }
        self._emit(level, "item", item_line(event), fields)

    def record(self, record: logging.LogRecord) -> None:
        """A message of the library's (a lost lease, the database away...)."""
        self._emit(record.levelno, "message", f"docq: {record.getMessage()}", {})

    def stop(self, summary: WorkSummary) -> None:
        """The stop line: why the run ended, and what it did (only once something was logged,
        unless the run announced itself at the start)."""
        if not self.started:
            return
        why = summary.reason or "stopped"
        fields = {**summary.to_dict(), "reason": why}
        self._emit(logging.INFO, "stop", f"docq: stopped ({why}): {summary_text(summary)}", fields)

    # --- lines -------------------------------------------------------------------------

    def _start(self) -> None:
        self.started = True
        f = self.start_fields or {}
        message = (
            f"docq {f['version']} started: database {f['database']}, operation {f['operation']}, "
            f"concurrency {f['concurrency']}, pid {f['pid']}"
        )
        self._emit(logging.INFO, "start", message, dict(f), start=False)

    def _emit(
        self, level: int, event: str, message: str, fields: dict[str, Any], *, start: bool = True
    ) -> None:
        if level < self.threshold:
            return
        if start and not self.started and self.start_fields is not None:
            self._start()
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        if self.format == "json":
            data = {
                "ts": stamp,
                "level": logging.getLevelName(level).lower(),
                "event": event,
                "message": message,
            }
            text = json.dumps({**data, **fields}, ensure_ascii=False)
        else:
            text = f"{stamp} {message}".replace("\n", " ")
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


class _Router(logging.Handler):
    """Sends the library's messages to the run's log instead of the plain stderr lines."""

    def __init__(self, log: WorkLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        self.log.record(record)


def route_library_messages(log: WorkLog) -> logging.Handler:
    """Make the ``docq`` logger's messages lines of ``log`` (call `output.restore_diagnostics`
    with the result to undo)."""
    return output.replace_diagnostics(_Router(log))


def item_line(event: ItemEvent) -> str:
    """``docq: completed item 12 .../a.pdf (95ms)``, with the error of a failure."""
    verdict = {"retrying": "failed, will retry", "discarded": "discarded (lease lost)"}.get(
        event.verdict, event.verdict
    )
    took = format_duration(event.seconds)
    line = f"docq: {verdict} item {event.lease.item_id} {shown_path(event.lease.path)} ({took})"
    if event.error and event.verdict in ("failed", "retrying"):
        line += f": {event.error}"
    return line


def summary_text(summary: WorkSummary) -> str:
    """``Processed 7 items: 6 completed, 1 failed, 0 to retry later.``: each item once, by
    how its last attempt of the run ended (the counts add up to the items), then what was
    given back or discarded."""
    parts = [
        f"{summary.completed} completed",
        f"{summary.failed} failed",
        f"{summary.retried} to retry later",
    ]
    if summary.cancelled:
        parts.append(f"{summary.cancelled} cancelled")
    apart = []
    if summary.released:
        apart.append(f"{plural(summary.released, 'item')} given back unstarted")
    if summary.discarded:
        apart.append(f"{plural(summary.discarded, 'result')} discarded (lease lost)")
    attempts = "" if summary.processed == summary.items else f" in {plural(summary.processed, 'attempt')}"
    tail = f"; {', '.join(apart)}" if apart else ""
    return f"Processed {plural(summary.items, 'item')}{attempts}: {', '.join(parts)}{tail}."


def did_nothing(summary: WorkSummary) -> bool:
    """Whether the run had nothing to do: no attempt, nothing given back or discarded."""
    return not (summary.processed or summary.released or summary.discarded)


def same_file(first: int, second: int) -> bool:
    """Whether two file descriptors write to the same file (``>> work.log 2>&1``)."""
    try:
        a, b = os.fstat(first), os.fstat(second)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
