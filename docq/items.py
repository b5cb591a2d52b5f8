"""The shapes a queue item takes on its way through a worker, one typed class each.

A worker claims an item and holds it as a `Lease`; a child process runs it and reports a
`Result`; the queue records the result, fenced by the lease, and answers with a `Verdict`.
Nothing here touches the database or imports a driver, so the worker's children can use
these classes cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

Verdict = Literal["completed", "retrying", "failed", "cancelled", "released", "discarded"]
"""What became of a finished attempt. ``discarded``: the lease was lost, the result dropped."""


@dataclass(frozen=True)
class Lease:
    """An item a worker holds: what to run, on what, and the token that fences its result."""

    item_id: int
    document_id: int
    operation: str
    attempt: int
    max_attempts: int | None
    priority: int
    path: str
    sha256: str | None
    token: str
    worker: str
    started_at: float


@dataclass(frozen=True)
class Result:
    """How one attempt ended: the one result type from a child's handler to the queue.

    ``ok`` with ``metadata`` is an extraction (text and metadata go on the document);
    ``ok`` without it is a command's or a function's output (``text``, and ``note`` for
    what it said on stderr). A failure carries ``error`` and whether it is ``permanent``.
    ``cancelled`` marks an attempt stopped on request; ``seconds`` is how long the
    processing itself took, as the worker measured it.
    """

    ok: bool
    text: str | None = None
    metadata: dict[str, Any] | None = None
    note: str | None = None
    error: str | None = None
    permanent: bool = False
    cancelled: bool = False
    seconds: float | None = None

    @classmethod
    def failure(cls, error: str, *, permanent: bool = False, note: str | None = None) -> Result:
        """A failed attempt; transient (retried while attempts are left) unless ``permanent``."""
        return cls(ok=False, error=error, permanent=permanent, note=note)

    @classmethod
    def stopped(cls, seconds: float = 0.0) -> Result:
        """An attempt stopped because its item was cancelled."""
        return cls(ok=False, error="cancelled", cancelled=True, seconds=seconds)

    def timed(self, seconds: float) -> Result:
        """This result, with the processing time the worker measured."""
        return replace(self, seconds=seconds)

    @property
    def stored_error(self) -> str | None:
        """The error as the item's history keeps it: ``permanent: ...`` (not retried) or
        ``transient: ...`` (retried while attempts are left); None for a success."""
        if self.ok and not self.cancelled:
            return None
        if self.cancelled:
            return "cancelled while running"
        kind = "permanent" if self.permanent else "transient"
        text: str = storable(f"{kind}: {self.error or 'unknown error'}")
        return text


def storable(value: Any) -> Any:
    """``value`` (a string, or a dict or list of them) as a database can store it: without
    NUL characters (PostgreSQL's text refuses them, and they are no text) and without lone
    surrogates (which no UTF-8 encoder accepts: a file name that is not UTF-8 carries them
    into an error message). Everything a result stores passes here once: its text, note and
    metadata where they are stored, its error in `Result.stored_error`.
    """
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
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


@dataclass(frozen=True)
class WorkerProgress:
    """What a worker is running (item ids) and how many attempts it has recorded, for its
    row in the workers table."""

    worker: str
    current: tuple[int, ...]
    done: int

    def params(self) -> dict[str, Any]:
        return {"id": self.worker, "current": ",".join(map(str, self.current)) or None, "done": self.done}
