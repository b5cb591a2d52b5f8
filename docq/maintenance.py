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

from docq import intake, leases
from docq import queries as q
from docq.backends import Tx
from docq.config import MAX_ID
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
        if ref.isascii() and ref.isdigit() and int(ref) <= MAX_ID:
            document_id = tx.scalar(q.DOCUMENT_EXISTS, {"id": int(ref)})
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
    return [row[0] for row in tx.all(q.FAILED_DOCUMENTS)]


def stale_documents(tx: Tx) -> list[int]:
    """Processed documents whose text came from an older extractor than today's."""
    from docq.processing import extractor_version

    rows = tx.all(q.PROCESSED_EXTRACTORS)
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
        path, sha256 = tx.one(q.DOCUMENT_PATH_AND_SHA256, {"id": document_id})
        active = tx.scalar(q.ACTIVE_ITEM, {"document_id": document_id, "lane": lane})
        if active is not None:
            changes.append(Change(active, document_id, from_db(path), "already queued", operation))
            continue
        item_id = None
        if not dry_run:
            item_id = intake.insert_item(
                tx,
                document_id,
                operation=operation,
                priority=priority,
                max_attempts=None,
                sha256=sha256,
                now=now,
            )
            leases.set_document_status(tx, document_id, DocumentStatus.PENDING, now)
        changes.append(Change(item_id, document_id, from_db(path), "queued", operation))
    return changes


# --- retry and cancel ----------------------------------------------------------------

Action = Literal["retry", "cancel"]
_ALLOWED: dict[str, tuple[str, ...]] = {
    "retry": ("failed", "cancelled"),
    "cancel": ("pending", "in_progress"),
}


def _check_items(tx: Tx, item_ids: Sequence[int], action: Action) -> list[tuple[int, int, str, str, str]]:
    rows = []
    missing = []
    for item_id in dict.fromkeys(item_ids):
        row = tx.one(q.ITEM_STATE, {"id": item_id}) if 0 <= item_id <= MAX_ID else None
        if row is None:
            missing.append(str(item_id))
        else:
            rows.append(row)
    if missing:
        documents = [
            ref
            for ref in missing
            if int(ref) <= MAX_ID and tx.one(q.DOCUMENT_EXISTS, {"id": int(ref)}) is not None
        ]
        hint = ""
        if documents:  # a document id where an item id belongs: the mix-up ids invite
            kind = "is a document id" if len(documents) == 1 else "are document ids"
            hint = f" ({', '.join(documents)} {kind}; `docq show {documents[0]}` lists its items)"
        raise NotFoundError(f"no queue item {', '.join(missing)}: nothing was changed{hint}")
    wrong = [row for row in rows if row[2] not in _ALLOWED[action]]
    if wrong:
        listed = ", ".join(f"item {row[0]} is {row[2]}" for row in wrong[:5])
        allowed = " or ".join(_ALLOWED[action])
        raise UsageError(f"cannot {action}: {listed}; only {allowed} items can be; nothing was changed")
    return rows


def retry(tx: Tx, item_ids: Sequence[int], *, now: float, dry_run: bool) -> list[Change]:
    """Put failed or cancelled items back to pending, due now, with a fresh attempt budget.
    An item whose document was queued again since (same lane) is left alone: "already queued"."""
    changes = []
    for item_id, document_id, _status, operation, path in _check_items(tx, item_ids, "retry"):
        active = tx.scalar(q.ACTIVE_ITEM, {"document_id": document_id, "lane": lane_of(operation)})
        if active is not None:
            changes.append(Change(active, document_id, from_db(path), "already queued", operation))
            continue
        if not dry_run:
            tx.execute(q.RETRY, {"id": item_id, "now": now})
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
                tx.execute(q.CANCEL_PENDING, {"id": item_id, "now": now})
                leases.restore_document_status(tx, document_id, now)
            else:
                tx.execute(q.REQUEST_CANCEL, {"id": item_id})
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

    def add(self, other: PurgeCount) -> None:
        """Count ``other`` (a batch) in."""
        self.items += other.items
        self.attempts += other.attempts
        self.documents += other.documents


def failed_items(tx: Tx, *, error: str | None) -> list[int]:
    """Failed items, oldest first; with ``error``, those whose last error contains it."""
    pattern = "%" + (error or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return [row[0] for row in tx.all(q.FAILED_ITEMS, {"pattern": pattern})]


def purgeable(tx: Tx, *, before: float, statuses: Sequence[str], limit: int | None) -> list[int]:
    """Ids of finished items in ``statuses`` that finished before ``before``."""
    params = {"before": before, "statuses": list(statuses), "limit": limit}
    return [row[0] for row in tx.all(q.ALL_PURGEABLE if limit is None else q.PURGEABLE, params)]


def count_purge(tx: Tx, item_ids: Sequence[int]) -> PurgeCount:
    """What deleting ``item_ids`` would remove: the items, their attempts, and the
    documents all of whose items are among them."""
    total = PurgeCount(items=len(item_ids))
    purged: Counter[int] = Counter()
    for chunk in _chunks(item_ids, PURGE_BATCH):
        total.attempts += tx.scalar(q.COUNT_ATTEMPTS_OF, {"ids": chunk})
        purged.update(row[0] for row in tx.all(q.DOCUMENTS_OF, {"ids": chunk}))
    for chunk in _chunks(list(purged), PURGE_BATCH):
        total.documents += sum(
            1
            for document_id, items in tx.all(q.ITEMS_PER_DOCUMENT, {"ids": chunk})
            if items == purged[document_id]
        )
    return total


def delete_items(tx: Tx, item_ids: Sequence[int], *, before: float, statuses: Sequence[str]) -> PurgeCount:
    """Delete finished items with their history and output, then the documents left
    with no items. Re-checks each item is still finished and old, since a worker or a
    retry may have touched it since it was selected."""
    params = {"ids": list(item_ids), "before": before, "statuses": list(statuses)}
    ids = [row[0] for row in tx.all(q.STILL_PURGEABLE, params)]
    if not ids:
        return PurgeCount()
    documents = sorted({row[0] for row in tx.all(q.DOCUMENTS_OF, {"ids": ids})})
    count = PurgeCount(items=len(ids))
    count.attempts = tx.execute(q.DELETE_ATTEMPTS_OF, {"ids": ids}).rowcount
    tx.execute(q.DELETE_OUTPUTS_OF, {"ids": ids})
    tx.execute(q.DELETE_ITEMS, {"ids": ids})
    count.documents = tx.execute(q.DELETE_EMPTY_DOCUMENTS, {"ids": documents}).rowcount
    return count


def _chunks(values: Sequence[int], size: int) -> list[list[int]]:
    return [list(values[i : i + size]) for i in range(0, len(values), size)]
