"""The worker's side of the queue: claim, renew, finish and release leased items.

These functions run inside a transaction that `DocumentQueueService` opens; they are the
hot path, so they speak named SQL over the DB-API cursor (see `docq.queries`) and build
no ORM objects. Every change to an item a worker holds is fenced by its lease token.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from docq import queries as q
from docq.backends import Tx
from docq.items import Lease, Result, Verdict, storable
from docq.paths import from_db
from docq.retry import RetryPolicy
from docq.states import DocumentStatus, ItemStatus, Outcome

Finished = tuple[Lease, Result]
"""An attempt a worker finished: the item it held, and how the attempt ended."""


def new_worker_id(tag: str) -> str:
    """A worker id that names its host and process: ``host:pid:tag``."""
    import os

    return f"{socket.gethostname()}:{os.getpid()}:{tag}"


def sweep_expired(tx: Tx, now: float, max_attempts: int) -> list[int]:
    """Move items whose lease expired back to pending (or failed, or cancelled): those that
    started with their lost attempt recorded as ``abandoned`` (and counted), those claimed
    ahead and never started as if never claimed. Returns the ids of the items moved."""
    unstarted = tx.all(q.SWEEP_UNSTARTED, {"now": now})
    for _item, document_id, status in unstarted:
        if status == "cancelled":
            restore_document_status(tx, document_id, now)
        else:
            set_document_status(tx, document_id, DocumentStatus.PENDING, now)
    error = "transient: abandoned: the worker's lease expired (it died, hung or lost the database)"
    rows = tx.all(q.SWEEP_EXPIRED, {"now": now, "max_attempts": max_attempts, "error": error})
    if not rows:
        return [row[0] for row in unstarted]
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
    return [row[0] for row in unstarted] + [row[0] for row in rows]


def start(tx: Tx, leases: Sequence[Lease], now: float) -> set[int]:
    """Mark items claimed ahead as started (handed to a child): from now on a lost lease
    charges their attempt. Returns the ids this worker still held (fenced by the
    lease token); the others were taken over and must not run."""
    by_token: dict[str, list[int]] = {}
    for lease in leases:
        by_token.setdefault(lease.token, []).append(lease.item_id)
    started: set[int] = set()
    for token, ids in by_token.items():
        started.update(row[0] for row in tx.all(q.START, {"ids": ids, "token": token, "now": now}))
    return started


def claim(
    tx: Tx,
    *,
    lane: str,
    limit: int,
    lease_seconds: float,
    worker: str,
    token: str,
    now: float,
    started: bool = True,
) -> list[Lease]:
    """Take up to ``limit`` due items of ``lane`` for ``worker``, leased for ``lease_seconds``.

    Each claim charges an attempt. With ``started`` false the items are claimed ahead: a
    lost lease or a release gives them back uncharged until `start` marks them started.

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
        "started": started,
    }
    rows = tx.all(q.CLAIM, params)
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


def finish(tx: Tx, finished: Sequence[Finished], policy: RetryPolicy, now: float) -> list[Verdict]:
    """Record how each attempt ended, fenced by its lease: completed, retrying (back to
    pending after the backoff delay), failed for good, or cancelled. A result whose lease
    was lost meanwhile is ``discarded`` and changes nothing."""
    succeeded = [(lease, result) for lease, result in finished if result.ok and not result.cancelled]
    completed, fresh = _complete_all(tx, succeeded, now)
    verdicts: list[Verdict] = []
    history: list[dict[str, Any]] = []
    for lease, result in finished:
        if result.ok and not result.cancelled:
            verdict = completed[lease.item_id]
            if lease.item_id not in fresh:  # discarded, or recorded by an earlier commit
                verdicts.append(verdict)
                continue
        else:
            verdict = _finish_one(tx, lease, result, policy, now)
        verdicts.append(verdict)
        if verdict == "discarded":
            continue
        outcome = {
            "completed": Outcome.COMPLETED,
            "cancelled": Outcome.CANCELLED,
        }.get(verdict, Outcome.FAILED)
        history.append(_history_row(lease, outcome, result.stored_error, now, result.seconds))
    if history:
        tx.executemany(q.RECORD_ATTEMPT, history)
    return verdicts


def _complete_all(tx: Tx, succeeded: Sequence[Finished], now: float) -> tuple[dict[int, Verdict], set[int]]:
    """Complete successful attempts, fenced, with one statement per lease token (a
    worker's group of results mostly shares one), then store their results in bulk.
    Returns each item's verdict, and the ids completed by this call (not earlier)."""
    by_token: dict[str, list[int]] = {}
    for lease, _result in succeeded:
        by_token.setdefault(lease.token, []).append(lease.item_id)
    accepted: set[int] = set()
    for token, ids in by_token.items():
        rows = tx.all(q.COMPLETE_MANY, {"ids": ids, "token": token, "now": now})
        accepted.update(row[0] for row in rows)
    verdicts: dict[int, Verdict] = {}
    stored = []
    for lease, result in succeeded:
        if lease.item_id in accepted:
            verdicts[lease.item_id] = "completed"
            stored.append((lease, result))
        else:
            verdicts[lease.item_id] = _recognise_own_commit(tx, lease)
    _store_results(tx, stored, now)
    return verdicts, accepted


def _finish_one(tx: Tx, lease: Lease, result: Result, policy: RetryPolicy, now: float) -> Verdict:
    fence = {"id": lease.item_id, "token": lease.token, "now": now}
    if result.cancelled:
        if tx.execute(q.CANCEL_RUNNING, fence).rowcount != 1:
            return "discarded"
        restore_document_status(tx, lease.document_id, now)
        return "cancelled"
    retry = policy.should_retry(lease.attempt, permanent=result.permanent, max_attempts=lease.max_attempts)
    if retry:
        delay = policy.delay(lease.attempt)
        params = {**fence, "delay": delay, "error": result.stored_error}
        row = tx.one(q.RETRY_LATER, params)
        if row is None:
            return "discarded"
        if row[0] == "cancelled":
            restore_document_status(tx, lease.document_id, now)
            return "cancelled"
        set_document_status(tx, lease.document_id, DocumentStatus.PENDING, now)
        return "retrying"
    if tx.execute(q.FAIL, {**fence, "error": result.stored_error}).rowcount != 1:
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
        started = bool(row[1])
        if row[0] == "cancelled":  # its cancel was requested: it stops here for good
            if started:
                _record(tx, lease, Outcome.CANCELLED, "cancelled while its worker shut down", now)
            restore_document_status(tx, lease.document_id, now)
            continue
        released += 1
        if started:  # an item only claimed ahead leaves no trace in the history
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


def _store_results(tx: Tx, succeeded: Sequence[Finished], now: float) -> None:
    """Store completed attempts' results: an extraction's text and metadata on the
    document; a command's output beside the item; and the document marked processed.
    Every stored text passes `storable` here, whoever produced it (errors pass it in
    `Result.stored_error`)."""
    extractions = []
    outputs = []
    plain = []
    for lease, result in succeeded:
        if result.metadata is not None:
            metadata = storable(result.metadata)
            extractions.append(
                {
                    "id": lease.document_id,
                    "text": storable(result.text),
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
                {"item_id": lease.item_id, "text": storable(result.text), "note": storable(result.note)}
            )
        plain.append({"status": DocumentStatus.PROCESSED.value, "now": now, "id": lease.document_id})
    if extractions:
        tx.executemany(q.STORE_EXTRACTION, extractions)
    if outputs:
        tx.executemany(q.STORE_OUTPUT, outputs)
    if plain:
        tx.executemany(q.SET_DOCUMENT_STATUS, plain)


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
    ItemStatus.PENDING: DocumentStatus.PENDING,
    ItemStatus.IN_PROGRESS: DocumentStatus.PROCESSING,
    ItemStatus.COMPLETED: DocumentStatus.PROCESSED,
    ItemStatus.FAILED: DocumentStatus.FAILED,
    ItemStatus.CANCELLED: DocumentStatus.CANCELLED,
}


def _mirror(item_status: str) -> DocumentStatus:
    """The document status that mirrors an item in ``item_status``."""
    return _MIRROR[ItemStatus(item_status)]
