"""The queue changes people ask for: reprocess, retry, cancel and purge.

Each function runs inside one transaction that `DocumentQueueService` opens. Input is
checked before anything changes: an unknown id or an item in the wrong state raises,
and the transaction rolls back, so a bad command line never half-applies.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from docq import leases
from docq import queries as q
from docq.db import Tx
from docq.errors import NotFoundError, UsageError
from docq.paths import from_db, to_db
from docq.states import DocumentStatus, lane_of


@dataclass(frozen=True)
class Change:
    """What happened (or, in a dry run, would happen) to one item or document."""

    item_id: int | None
    document_id: int
    path: str
    action: str  # queued, already queued, retried, cancelled, stopping
    operation: str | None = None


# --- reprocess -----------------------------------------------------------------------


def resolve_documents(tx: Tx, refs: Sequence[str]) -> list[int]:
    """Document ids for ``refs`` (ids or paths), in order; raises `NotFoundError` naming
    every ref that matches no document."""
    found: list[int] = []
    missing: list[str] = []
    for ref in refs:
        document_id = None
        if ref.isdigit():
            document_id = tx.scalar("SELECT id FROM documents WHERE id = :id", {"id": int(ref)})
        if document_id is None:
            document_id = tx.scalar(q.FIND_DOCUMENT, {"path": to_db(os.path.realpath(ref))})
        if document_id is None:
            missing.append(ref)
        elif document_id not in found:
            found.append(document_id)
    if missing:
        raise NotFoundError(f"no document {', '.join(map(repr, missing))}: nothing was queued")
    return found


def failed_documents(tx: Tx) -> list[int]:
    """Documents whose latest item failed for good."""
    return [row[0] for row in tx.all("SELECT id FROM documents WHERE status = 'failed' ORDER BY id")]


def stale_documents(tx: Tx) -> list[int]:
    """Processed documents whose text came from an older extractor than today's."""
    from docq.processing import extractor_version

    rows = tx.all("SELECT id, mime_type, extractor FROM documents WHERE status = 'processed' ORDER BY id")
    return [doc_id for doc_id, mime, used in rows if used is not None and used != extractor_version(mime)]


def requeue(
    tx: Tx,
    document_ids: Sequence[int],
    *,
    operation: str,
    priority: int,
    now: float,
    dry_run: bool = False,
) -> list[Change]:
    """Queue ``operation`` for each document unless it has an active item of that lane."""
    lane = lane_of(operation)
    changes: list[Change] = []
    for document_id in document_ids:
        path, sha256 = tx.one("SELECT path, sha256 FROM documents WHERE id = :id", {"id": document_id})
        active = tx.scalar(q.ACTIVE_ITEM, {"document_id": document_id, "lane": lane})
        if active is not None:
            changes.append(Change(active, document_id, from_db(path), "already queued", operation))
            continue
        item_id = None
        if not dry_run:
            params = {
                "document_id": document_id,
                "operation": operation,
                "priority": priority,
                "max_attempts": None,
                "sha256": sha256,
                "now": now,
            }
            item_id = tx.scalar(q.INSERT_ITEM, params)
            leases.set_document_status(tx, document_id, DocumentStatus.PENDING, now)
        changes.append(Change(item_id, document_id, from_db(path), "queued", operation))
    return changes


# --- retry and cancel ----------------------------------------------------------------

ITEM_STATE = """
SELECT i.id, i.document_id, i.status, i.operation, d.path
FROM queue_items i JOIN documents d ON d.id = i.document_id WHERE i.id = :id
"""

# A failed item starts over: due now, with a fresh attempt budget. Its earlier
# attempts stay in the history.
RETRY = """
UPDATE queue_items SET status = 'pending', attempts = 0, next_run_at = :now, finished_at = NULL,
    lease_expires_at = NULL, cancel_requested = FALSE
WHERE id = :id AND status = 'failed'
"""

CANCEL_PENDING = """
UPDATE queue_items SET status = 'cancelled', finished_at = :now
WHERE id = :id AND status = 'pending'
"""

# A running item cannot be stopped from here: flag it, and its worker kills the child
# and records the cancellation at its next heartbeat (or the expiry sweep does).
REQUEST_CANCEL = """
UPDATE queue_items SET cancel_requested = TRUE WHERE id = :id AND status = 'in_progress'
"""

Action = Literal["retry", "cancel"]
_ALLOWED: dict[str, tuple[str, ...]] = {"retry": ("failed",), "cancel": ("pending", "in_progress")}


def _check_items(tx: Tx, item_ids: Sequence[int], action: Action) -> list[tuple[int, int, str, str, str]]:
    rows = []
    missing = []
    for item_id in dict.fromkeys(item_ids):
        row = tx.one(ITEM_STATE, {"id": item_id})
        if row is None:
            missing.append(str(item_id))
        else:
            rows.append(row)
    if missing:
        raise NotFoundError(f"no queue item {', '.join(missing)}: nothing was changed")
    wrong = [row for row in rows if row[2] not in _ALLOWED[action]]
    if wrong:
        listed = ", ".join(f"item {row[0]} is {row[2]}" for row in wrong[:5])
        allowed = " or ".join(_ALLOWED[action])
        raise UsageError(f"cannot {action}: {listed}; only {allowed} items can be; nothing was changed")
    return rows


def retry(tx: Tx, item_ids: Sequence[int], *, now: float, dry_run: bool) -> list[Change]:
    """Put failed items back to pending, due now, with a fresh attempt budget. An item
    whose document was queued again since (same lane) is left alone: "already queued"."""
    changes = []
    for item_id, document_id, _status, operation, path in _check_items(tx, item_ids, "retry"):
        active = tx.scalar(q.ACTIVE_ITEM, {"document_id": document_id, "lane": lane_of(operation)})
        if active is not None:
            changes.append(Change(active, document_id, from_db(path), "already queued", operation))
            continue
        if not dry_run:
            tx.execute(RETRY, {"id": item_id, "now": now})
            leases.set_document_status(tx, document_id, DocumentStatus.PENDING, now)
        changes.append(Change(item_id, document_id, from_db(path), "retried", operation))
    return changes


def cancel(tx: Tx, item_ids: Sequence[int], *, now: float, dry_run: bool) -> list[Change]:
    """Cancel pending items now; flag in-progress ones for their worker to stop."""
    changes = []
    for item_id, document_id, status, operation, path in _check_items(tx, item_ids, "cancel"):
        action = "cancelled" if status == "pending" else "stopping"
        if not dry_run:
            if status == "pending":
                tx.execute(CANCEL_PENDING, {"id": item_id, "now": now})
                leases.restore_document_status(tx, document_id, now)
            else:
                tx.execute(REQUEST_CANCEL, {"id": item_id})
        changes.append(Change(item_id, document_id, from_db(path), action, operation))
    return changes


# --- purge ---------------------------------------------------------------------------

PURGE_BATCH = 500
"""Items deleted per transaction, so that a purge never holds the write lock for long."""


@dataclass
class PurgeCount:
    """What a purge removed (or would remove)."""

    items: int = 0
    attempts: int = 0
    documents: int = 0


def purgeable(tx: Tx, *, before: float, statuses: Sequence[str], limit: int | None) -> list[int]:
    """Ids of finished items in ``statuses`` that finished before ``before``."""
    marks = ", ".join(f":s{i}" for i in range(len(statuses)))
    params: dict[str, object] = {f"s{i}": status for i, status in enumerate(statuses)}
    sql = f"""SELECT id FROM queue_items
              WHERE finished_at < :before AND status IN ({marks}) ORDER BY finished_at"""
    if limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = limit
    return [row[0] for row in tx.all(sql, {**params, "before": before})]


def count_purge(tx: Tx, item_ids: Sequence[int]) -> PurgeCount:
    """What deleting ``item_ids`` would remove: the items, their attempts, and the
    documents all of whose items are among them."""
    total = PurgeCount(items=len(item_ids))
    purged: Counter[int] = Counter()
    for chunk in _chunks(item_ids, PURGE_BATCH):
        marks, params = _in_list(chunk)
        total.attempts += tx.scalar(f"SELECT count(*) FROM attempts WHERE item_id IN ({marks})", params)
        purged.update(
            row[0] for row in tx.all(f"SELECT document_id FROM queue_items WHERE id IN ({marks})", params)
        )
    for chunk in _chunks(list(purged), PURGE_BATCH):
        marks, params = _in_list(chunk)
        sql = f"""SELECT document_id, count(*) FROM queue_items
                  WHERE document_id IN ({marks}) GROUP BY document_id"""
        total.documents += sum(
            1 for document_id, items in tx.all(sql, params) if items == purged[document_id]
        )
    return total


def delete_items(tx: Tx, item_ids: Sequence[int], *, before: float, statuses: Sequence[str]) -> PurgeCount:
    """Delete finished items with their history and output, then the documents left
    with no items. Re-checks each item is still finished and old, since a worker or a
    retry may have touched it since it was selected."""
    marks, params = _in_list(item_ids)
    status_marks = ", ".join(f":st{i}" for i in range(len(statuses)))
    params.update({f"st{i}": status for i, status in enumerate(statuses)})
    params["before"] = before
    still = f"id IN ({marks}) AND finished_at < :before AND status IN ({status_marks})"
    ids = [row[0] for row in tx.all(f"SELECT id FROM queue_items WHERE {still}", params)]
    if not ids:
        return PurgeCount()
    marks, id_params = _in_list(ids)
    documents = [
        row[0]
        for row in tx.all(f"SELECT DISTINCT document_id FROM queue_items WHERE id IN ({marks})", id_params)
    ]
    count = PurgeCount(items=len(ids))
    count.attempts = tx.execute(f"DELETE FROM attempts WHERE item_id IN ({marks})", id_params).rowcount
    tx.execute(f"DELETE FROM item_outputs WHERE item_id IN ({marks})", id_params)
    tx.execute(f"DELETE FROM queue_items WHERE id IN ({marks})", id_params)
    doc_marks, doc_params = _in_list(documents)
    count.documents = tx.execute(
        f"""DELETE FROM documents WHERE id IN ({doc_marks})
            AND NOT EXISTS (SELECT 1 FROM queue_items WHERE queue_items.document_id = documents.id)""",
        doc_params,
    ).rowcount
    return count


def _in_list(values: Sequence[int]) -> tuple[str, dict[str, object]]:
    marks = ", ".join(f":v{i}" for i in range(len(values)))
    return marks, {f"v{i}": value for i, value in enumerate(values)}


def _chunks(values: Sequence[int], size: int) -> list[Sequence[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
