"""Documents and items coming in: registering files and queueing operations for them.

These functions run inside a transaction that `DocumentQueueService` opens (enqueue,
reprocess, the seed API's ``enqueue``). The rules of "already queued" (a document has at
most one active item per lane, which a unique index enforces), "unchanged" (the lane
last completed the same content) and "failed" (the lane last failed for good on the same
content: a cron job queueing a folder every few minutes must not run a corrupt file
again each time) live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from docq import leases
from docq import queries as q
from docq.backends import Tx
from docq.errors import NotFoundError
from docq.paths import to_db
from docq.states import DocumentStatus, lane_of

if TYPE_CHECKING:
    from docq.processing import FileFacts

SkipReason = Literal["already queued", "unchanged", "failed"]


@dataclass(frozen=True)
class Queued:
    """A document that got a new queue item."""

    document_id: int
    item_id: int
    path: str


@dataclass(frozen=True)
class Skipped:
    """A document left alone: it has an active item, or its lane last completed it, or
    failed on it for good, with the same content."""

    document_id: int
    path: str
    reason: SkipReason


def add_file(
    tx: Tx,
    facts: FileFacts,
    *,
    operation: str,
    priority: int,
    force: bool,
    max_attempts: int | None,
    now: float,
) -> Queued | Skipped:
    """Register ``facts`` as a document (or refresh a known one) and queue ``operation``
    for it, unless it is already queued, or (without ``force``) unchanged since that lane
    last completed it or failed on it for good (``docq retry`` runs a failed one again)."""
    lane = lane_of(operation)
    stored_path = to_db(facts.path)
    values = {"size": facts.size, "sha256": facts.sha256, "mime_type": facts.mime_type, "now": now}
    document_id = tx.scalar(q.INSERT_DOCUMENT, {**values, "path": stored_path})
    if document_id is None:  # a known path
        document_id = tx.scalar(q.FIND_DOCUMENT, {"path": stored_path})
        key = {"document_id": document_id, "lane": lane}
        if tx.one(q.ACTIVE_ITEM, key) is not None:
            return Skipped(document_id, facts.path, "already queued")
        last = None if force else tx.one(q.LAST_FINISHED_CONTENT, key)
        if last is not None and last[1] == facts.sha256:
            return Skipped(document_id, facts.path, "unchanged" if last[0] == "completed" else "failed")
        tx.execute(q.UPDATE_DOCUMENT_FACTS, {**values, "document_id": document_id})
    item_id = insert_item(
        tx,
        document_id,
        operation=operation,
        priority=priority,
        max_attempts=max_attempts,
        sha256=facts.sha256,
        now=now,
    )
    return Queued(document_id, item_id, facts.path)


def queue_again(
    tx: Tx, document_id: int, *, operation: str, priority: int, max_attempts: int | None, now: float
) -> tuple[int, bool]:
    """Queue ``operation`` for a registered document unless it has an active item of the
    same lane. Returns ``(item_id, created)``; raises `NotFoundError` for an unknown one."""
    sha256 = tx.scalar(q.DOCUMENT_SHA256, {"id": document_id})
    if sha256 is None:
        raise NotFoundError(f"no document with id {document_id}")
    active = tx.scalar(q.ACTIVE_ITEM, {"document_id": document_id, "lane": lane_of(operation)})
    if active is not None:
        return active, False
    item_id = insert_item(
        tx,
        document_id,
        operation=operation,
        priority=priority,
        max_attempts=max_attempts,
        sha256=sha256,
        now=now,
    )
    leases.set_document_status(tx, document_id, DocumentStatus.PENDING, now)
    return item_id, True


def insert_item(
    tx: Tx,
    document_id: int,
    *,
    operation: str,
    priority: int,
    max_attempts: int | None,
    sha256: str | None,
    now: float,
) -> int:
    """A new pending item, due now; ``sha256`` is the content it is queued for."""
    params = {
        "document_id": document_id,
        "operation": operation,
        "priority": priority,
        "max_attempts": max_attempts,
        "sha256": sha256,
        "now": now,
    }
    item_id: int = tx.scalar(q.INSERT_ITEM, params)
    return item_id
