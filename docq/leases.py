"""The worker's side of the queue: claim, renew, finish and release leased items.

These functions run inside a transaction that `DocumentQueueService` opens; they are the
hot path, so they speak named SQL over the DB-API cursor (see `docq.queries`) and build
no ORM objects. Every change to an item a worker holds is fenced by its lease token.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from docq import queries as q
from docq.db import Tx
from docq.paths import from_db
from docq.retry import RetryPolicy
from docq.states import DocumentStatus, Outcome

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
class AttemptResult:
    """How one attempt ended, as the worker reports it to `finish`.

    ``ok`` with ``metadata`` stores an extraction (text and metadata on the document);
    ``ok`` without it stores a command's output (``text`` and ``note``). A failure carries
    ``error`` and whether it is ``permanent``. ``cancelled`` marks an attempt stopped on request.
    """

    lease: Lease
    ok: bool
    text: str | None = None
    metadata: dict[str, Any] | None = None
    note: str | None = None
    error: str | None = None
    permanent: bool = False
    cancelled: bool = False
    seconds: float | None = None  # how long the processing itself took


def new_worker_id(tag: str) -> str:
    """A worker id that names its host and process: ``host:pid:tag``."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}:{tag}"


def sweep_expired(tx: Tx, now: float, max_attempts: int) -> list[int]:
    """Move items whose lease expired back to pending (or failed, or cancelled), recording
    each lost attempt as ``abandoned``. Returns the ids of the items moved."""
    error = "transient: abandoned: the worker's lease expired (it died, hung or lost the database)"
    rows = tx.all(q.SWEEP_EXPIRED, {"now": now, "max_attempts": max_attempts, "error": error})
    if not rows:
        return []
    tx.executemany(
        q.RECORD_ATTEMPT,
        [
            {
                "item_id": item_id,
                "attempt": attempts,
                "worker": worker,
                "started_at": started_at,
                "now": now,
                "outcome": Outcome.ABANDONED.value,
                "error": "lease expired",
                "seconds": None,
            }
            for item_id, _doc, attempts, worker, started_at, _status in rows
        ],
    )
    for _item, document_id, _attempts, _worker, _started, status in rows:
        if status == "cancelled":
            restore_document_status(tx, document_id, now)
        else:
            set_document_status(tx, document_id, _mirror(status), now)
    return [row[0] for row in rows]


def claim(
    tx: Tx, *, lane: str, limit: int, lease_seconds: float, worker: str, token: str, now: float
) -> list[Lease]:
    """Take up to ``limit`` due items of ``lane`` for ``worker``, leased for ``lease_seconds``.

    Runs the expiry sweep first, so expired items are claimable by this same query.
    Leases come back in claim order (priority, then age).
    """
    params = {
        "lane": lane,
        "limit": limit,
        "lease": lease_seconds,
        "worker": worker,
        "token": token,
        "now": now,
    }
    sql = q.CLAIM_SQLITE if tx.backend == "sqlite" else q.CLAIM_POSTGRES
    rows = tx.all(sql, params)
    if not rows:
        return []
    leases = [
        Lease(
            item_id=row[0],
            document_id=row[1],
            operation=row[2],
            attempt=row[3],
            max_attempts=row[4],
            priority=row[5],
            path=from_db(row[7]),
            sha256=row[8],
            token=token,
            worker=worker,
            started_at=row[6],
        )
        for row in rows
    ]
    leases.sort(key=lambda lease: (-lease.priority, lease.item_id))
    tx.executemany(
        q.SET_DOCUMENT_STATUS,
        [
            {"status": DocumentStatus.PROCESSING.value, "now": now, "id": lease.document_id}
            for lease in leases
        ],
    )
    return leases


def renew(tx: Tx, tokens: Iterable[str], *, lease_seconds: float, now: float) -> set[int]:
    """Extend the leases held under ``tokens``; returns the ids of those items whose
    cancellation was requested meanwhile (the worker must stop them)."""
    cancelled: set[int] = set()
    for token in tokens:
        tx.execute(q.RENEW_LEASES, {"token": token, "lease": lease_seconds, "now": now})
        cancelled.update(row[0] for row in tx.all(q.CANCEL_REQUESTS, {"token": token}))
    return cancelled


def finish(tx: Tx, results: Sequence[AttemptResult], policy: RetryPolicy, now: float) -> list[Verdict]:
    """Record how each attempt ended, fenced by its lease: completed, retrying (back to
    pending after the backoff delay), failed for good, or cancelled. A result whose lease
    was lost meanwhile is ``discarded`` and changes nothing."""
    completed, fresh = _complete_all(tx, [r for r in results if r.ok and not r.cancelled], now)
    verdicts: list[Verdict] = []
    history: list[dict[str, Any]] = []
    for result in results:
        if result.ok and not result.cancelled:
            verdict = completed[result.lease.item_id]
            if result.lease.item_id not in fresh:  # discarded, or recorded by an earlier commit
                verdicts.append(verdict)
                continue
        else:
            verdict = _finish_one(tx, result, policy, now)
        verdicts.append(verdict)
        if verdict == "discarded":
            continue
        lease = result.lease
        outcome = {
            "completed": Outcome.COMPLETED,
            "cancelled": Outcome.CANCELLED,
        }.get(verdict, Outcome.FAILED)
        error = None if result.ok else error_text(result, verdict)
        history.append(_history_row(lease, outcome, error, now, result.seconds))
    if history:
        tx.executemany(q.RECORD_ATTEMPT, history)
    return verdicts


def _complete_all(
    tx: Tx, results: Sequence[AttemptResult], now: float
) -> tuple[dict[int, Verdict], set[int]]:
    """Complete successful attempts, fenced, with one statement per lease token (a
    worker's group of results mostly shares one), then store their results in bulk.
    Returns each item's verdict, and the ids completed by this call (not earlier)."""
    by_token: dict[str, list[int]] = {}
    for result in results:
        by_token.setdefault(result.lease.token, []).append(result.lease.item_id)
    accepted: set[int] = set()
    for token, ids in by_token.items():
        marks = ", ".join(f":i{n}" for n in range(len(ids)))
        params: dict[str, Any] = {f"i{n}": item_id for n, item_id in enumerate(ids)}
        rows = tx.all(q.COMPLETE_MANY.format(ids=marks), {**params, "token": token, "now": now})
        accepted.update(row[0] for row in rows)
    verdicts: dict[int, Verdict] = {}
    stored = []
    for result in results:
        lease = result.lease
        if lease.item_id in accepted:
            verdicts[lease.item_id] = "completed"
            stored.append(result)
        else:
            verdicts[lease.item_id] = _recognise_own_commit(tx, lease)
    _store_results(tx, stored, now)
    return verdicts, accepted


def _finish_one(tx: Tx, result: AttemptResult, policy: RetryPolicy, now: float) -> Verdict:
    lease = result.lease
    fence = {"id": lease.item_id, "token": lease.token, "now": now}
    if result.cancelled:
        if tx.execute(q.CANCEL_RUNNING, fence).rowcount != 1:
            return "discarded"
        restore_document_status(tx, lease.document_id, now)
        return "cancelled"
    retry = policy.should_retry(lease.attempt, permanent=result.permanent, max_attempts=lease.max_attempts)
    if retry:
        delay = policy.delay(lease.attempt)
        params = {**fence, "delay": delay, "error": error_text(result, "retrying")}
        row = tx.one(q.RETRY_LATER, params)
        if row is None:
            return "discarded"
        if row[0] == "cancelled":
            restore_document_status(tx, lease.document_id, now)
            return "cancelled"
        set_document_status(tx, lease.document_id, DocumentStatus.PENDING, now)
        return "retrying"
    if tx.execute(q.FAIL, {**fence, "error": error_text(result, "failed")}).rowcount != 1:
        return "discarded"
    set_document_status(tx, lease.document_id, DocumentStatus.FAILED, now)
    return "failed"


def release(tx: Tx, leases: Sequence[Lease], now: float) -> int:
    """Give unfinished items back to pending at once without counting the attempt (the
    worker is shutting down). Returns how many were still held and given back."""
    released = 0
    for lease in leases:
        row = tx.one(q.RELEASE, {"id": lease.item_id, "token": lease.token, "now": now})
        if row is None:
            continue
        if row[0] == "cancelled":  # its cancel was requested: it stops here for good
            _record(tx, lease, Outcome.CANCELLED, "cancelled while its worker shut down", now)
            restore_document_status(tx, lease.document_id, now)
            continue
        released += 1
        error = "released: the worker shut down before it finished (not counted as an attempt)"
        _record(tx, lease, Outcome.RELEASED, error, now)
        set_document_status(tx, lease.document_id, DocumentStatus.PENDING, now)
    return released


def _record(tx: Tx, lease: Lease, outcome: Outcome, error: str | None, now: float) -> None:
    """One row of the attempt history, for an attempt that ended without a result."""
    tx.execute(q.RECORD_ATTEMPT, _history_row(lease, outcome, error, now))


def _history_row(
    lease: Lease, outcome: Outcome, error: str | None, now: float, seconds: float | None = None
) -> dict[str, Any]:
    return {
        "item_id": lease.item_id,
        "attempt": lease.attempt,
        "worker": lease.worker,
        "started_at": lease.started_at,
        "now": now,
        "outcome": outcome.value,
        "error": error,
        "seconds": seconds,
    }


def _recognise_own_commit(tx: Tx, lease: Lease) -> Verdict:
    # The fenced update matched nothing. If the item is completed under our own token,
    # an earlier commit of this very result went through before the connection dropped.
    row = tx.one(q.LEASE_STATE, {"id": lease.item_id})
    if row is not None and row[0] == "completed" and row[1] == lease.token:
        return "completed"
    return "discarded"


def _store_results(tx: Tx, results: Sequence[AttemptResult], now: float) -> None:
    """Store completed attempts' results: an extraction's text and metadata on the
    document; a command's output beside the item; and the document marked processed."""
    extractions = []
    outputs = []
    plain = []
    for result in results:
        lease = result.lease
        if result.metadata is not None:
            metadata = result.metadata
            extractions.append(
                {
                    "id": lease.document_id,
                    "text": _storable(result.text),
                    "metadata": json.dumps(metadata, ensure_ascii=False),
                    "sha256": metadata.get("sha256"),
                    "size": metadata.get("size"),
                    "mime_type": metadata.get("mime_type"),
                    "extractor": metadata.get("extractor_version"),
                    "now": now,
                }
            )
            continue
        if result.text is not None or result.note is not None:  # a command's output (no-ops have none)
            outputs.append(
                {"item_id": lease.item_id, "text": _storable(result.text), "note": _storable(result.note)}
            )
        plain.append({"status": DocumentStatus.PROCESSED.value, "now": now, "id": lease.document_id})
    if extractions:
        tx.executemany(q.STORE_EXTRACTION, extractions)
    if outputs:
        tx.executemany(q.STORE_OUTPUT, outputs)
    if plain:
        tx.executemany(q.SET_DOCUMENT_STATUS, plain)


def _storable(text: str | None) -> str | None:
    """Text without NUL characters, which PostgreSQL cannot store (workers' children
    already strip them; library callers may not)."""
    return text.replace("\x00", "") if text and "\x00" in text else text


def error_text(result: AttemptResult, verdict: str) -> str:
    """The stored error says which kind of failure it was: ``permanent: ...`` (not retried)
    or ``transient: ...`` (retried while attempts are left)."""
    if result.cancelled:
        return "cancelled while running"
    kind = "permanent" if result.permanent else "transient"
    return f"{kind}: {result.error or 'unknown error'}"


def set_document_status(tx: Tx, document_id: int, status: DocumentStatus | str, now: float) -> None:
    """Mirror an item's new state on its document."""
    tx.execute(q.SET_DOCUMENT_STATUS, {"status": str(status), "now": now, "id": document_id})


def restore_document_status(tx: Tx, document_id: int, now: float) -> None:
    """After a cancel: the document takes the state of its latest item that was not
    cancelled, or ``cancelled`` if it never had one."""
    latest = tx.scalar(q.LATEST_LIVE_ITEM_STATUS, {"id": document_id})
    status = _mirror(latest) if latest is not None else DocumentStatus.CANCELLED
    set_document_status(tx, document_id, status, now)


_MIRROR = {
    "pending": DocumentStatus.PENDING,
    "in_progress": DocumentStatus.PROCESSING,
    "completed": DocumentStatus.PROCESSED,
    "failed": DocumentStatus.FAILED,
    "cancelled": DocumentStatus.CANCELLED,
}


def _mirror(item_status: str) -> DocumentStatus:
    return _MIRROR[item_status]
