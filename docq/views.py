"""Read-only views of the queue for people and scripts: a document with its items and
their history, item listings with filters, workers, the documents an export streams.

The one module of ORM queries: each is a SQLModel ``select()`` run through
`Database.session`, which gives it the lock budget and the error translation of every
other read. Nothing here changes the queue.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, and_, col, func, or_, select

from docq.config import MAX_ID
from docq.db import Database
from docq.errors import NotFoundError, UsageError
from docq.models import Attempt, Document, ItemOutput, QueueItem, Worker
from docq.paths import from_db, to_db
from docq.states import ItemStatus


@dataclass(frozen=True)
class ItemView:
    """A queue item with its attempt history (and a custom command's output)."""

    item: QueueItem
    history: list[Attempt]
    output: ItemOutput | None


@dataclass(frozen=True)
class DocumentView:
    """A document, its extraction and all its queue items, newest last."""

    document: Document
    items: list[ItemView]

    @property
    def metadata(self) -> dict[str, Any]:
        """The extraction's metadata (empty before the first extraction)."""
        raw = self.document.metadata_json
        return json.loads(raw) if raw else {}

    @property
    def path(self) -> str:
        """The document's path as the file system names it."""
        return from_db(self.document.path)


def find_document(session: Session, ref: str) -> Document:
    """The document named by ``ref``: its id, or a path (resolved as enqueue resolves it).

    Raises `NotFoundError` if there is none.
    """
    import os

    number = _id_in(ref)
    if number is not None:
        document = session.get(Document, number)
        if document is not None:
            return document
    document = session.exec(select(Document).where(Document.path == to_db(os.path.realpath(ref)))).first()
    if document is None:
        item = session.get(QueueItem, number) if number is not None else None
        if item is not None:  # an item id where a document id belongs: say which it is
            raise NotFoundError(
                f"no document {ref}: {ref} is a queue item (of document {item.document_id}):"
                f" `docq show --item {ref}` shows it, `docq show {item.document_id}` its document"
            )
        raise NotFoundError(f"no document {ref!r}: give a document id or a path that was enqueued")
    return document


def _id_in(ref: str) -> int | None:
    """The id ``ref`` spells (ASCII digits, within `MAX_ID`), else None."""
    if ref.isascii() and ref.isdigit() and int(ref) <= MAX_ID:
        return int(ref)
    return None


def show_document(db: Database, ref: str) -> DocumentView:
    """Everything known about one document (see `find_document` for ``ref``)."""

    def read(session: Session) -> DocumentView:
        document = find_document(session, ref)
        items = session.exec(
            select(QueueItem).where(QueueItem.document_id == document.id).order_by(col(QueueItem.id))
        ).all()
        return DocumentView(document, [_item_view(session, item) for item in items])

    return db.session(read)


def show_item(db: Database, item_id: int) -> tuple[DocumentView, ItemView]:
    """One queue item, with its document."""

    def read(session: Session) -> tuple[DocumentView, ItemView]:
        item = session.get(QueueItem, item_id) if 0 <= item_id <= MAX_ID else None
        if item is None:
            if 0 <= item_id <= MAX_ID and session.get(Document, item_id) is not None:  # a document's id
                raise NotFoundError(
                    f"no queue item {item_id}: {item_id} is a document: `docq show {item_id}` shows it"
                )
            raise NotFoundError(f"no queue item {item_id}")
        document = session.get(Document, item.document_id)
        assert document is not None
        view = _item_view(session, item)
        return DocumentView(document, [view]), view

    return db.session(read)


def _item_view(session: Session, item: QueueItem) -> ItemView:
    history = session.exec(select(Attempt).where(Attempt.item_id == item.id).order_by(col(Attempt.id))).all()
    return ItemView(item, list(history), session.get(ItemOutput, item.id))


@dataclass(frozen=True)
class ItemFilter:
    """Which items a listing (or a retry, cancel or export) covers."""

    statuses: tuple[str, ...] = ()
    operation: str | None = None
    error: str | None = None  # substring of the last error
    since: float | None = None  # created at or after (Unix time)
    limit: int | None = 50
    text: str | None = None  # substring of the document's path or of the last error
    before: int | None = None  # only items with a smaller id: the next page, newest first

    def __post_init__(self) -> None:
        known = {s.value for s in ItemStatus} | {"retrying"}
        for status in self.statuses:
            if status not in known:
                raise UsageError(f"unknown status {status!r}: use one of {', '.join(sorted(known))}")
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be at least 1")
        if self.limit is not None and self.limit > MAX_ID:  # more than a queue can hold: all
            object.__setattr__(self, "limit", None)

    def apply(self, query: Any) -> Any:
        """``query`` (a select over QueueItem) narrowed by this filter."""
        clauses = []
        for status in self.statuses:
            if status == "retrying":  # not a stored status: pending items that failed before
                clauses.append(and_(col(QueueItem.status) == "pending", col(QueueItem.attempts) > 0))
            else:
                clauses.append(col(QueueItem.status) == status)
        if clauses:
            query = query.where(or_(*clauses))
        if self.operation:
            query = query.where(QueueItem.operation == self.operation)
        if self.error:
            query = query.where(col(QueueItem.last_error).contains(self.error, autoescape=True))
        if self.since is not None:
            query = query.where(col(QueueItem.created_at) >= self.since)
        if self.before is not None:  # keyset paging: the primary key, never an OFFSET
            query = query.where(col(QueueItem.id) < self.before)
        if self.text:
            path_ids = select(Document.id).where(col(Document.path).contains(self.text, autoescape=True))
            query = query.where(
                or_(
                    col(QueueItem.last_error).contains(self.text, autoescape=True),
                    col(QueueItem.document_id).in_(path_ids),
                )
            )
        return query


@dataclass(frozen=True)
class ItemRow:
    """A line of ``docq list``."""

    item: QueueItem
    path: str


def list_items(db: Database, where: ItemFilter) -> list[ItemRow]:
    """Items matching ``where``, newest first."""
    query = select(QueueItem, Document.path).join(Document, col(Document.id) == QueueItem.document_id)
    query = where.apply(query).order_by(col(QueueItem.id).desc())
    if where.limit is not None:
        query = query.limit(where.limit)
    return db.session(
        lambda session: [ItemRow(item, from_db(path)) for item, path in session.exec(query).all()]
    )


def count_items(db: Database, where: ItemFilter) -> int:
    """How many items match ``where`` (its limit aside)."""
    query = where.apply(select(func.count()).select_from(QueueItem))
    return db.session(lambda session: int(session.exec(query).one()))


def complete_ids(
    db: Database, prefix: str, *, items: bool, statuses: Sequence[str] = (), limit: int = 50
) -> list[tuple[int, str]]:
    """Ids that start with ``prefix`` (digits), newest first, with their document's path:
    queue items (of ``statuses``, if given) or documents. For shell completion, so it must
    stay cheap on a large queue: a prefix becomes ranges of the primary key (``12`` is 12,
    120-129, 1200-1299, ... up to the largest id) instead of a scan of every id as text."""
    if prefix and (not prefix.isdigit() or prefix.startswith("0")):
        return []
    key = col(QueueItem.id) if items else col(Document.id)

    def read(session: Session) -> list[tuple[int, str]]:
        query = select(key, Document.path)
        if items:
            query = query.join(Document, col(Document.id) == QueueItem.document_id)
            if statuses:
                query = query.where(col(QueueItem.status).in_(statuses))
        if prefix:
            largest = session.exec(select(func.max(key))).one() or 0
            low = high = int(prefix)
            ranges = []
            while low <= largest:
                ranges.append(key.between(low, min(high, largest)))
                low, high = low * 10, high * 10 + 9
            if not ranges:
                return []
            query = query.where(or_(*ranges))
        rows = session.exec(query.order_by(key.desc()).limit(limit)).all()
        return [(int(row[0] or 0), from_db(row[1])) for row in rows]

    return db.session(read)


def list_workers(db: Database, *, include_stopped: bool = False, limit: int = 100) -> list[Worker]:
    """Registered workers, most recently seen first."""
    query = select(Worker)
    if not include_stopped:
        query = query.where(col(Worker.stopped_at).is_(None))
    query = query.order_by(col(Worker.heartbeat_at).desc()).limit(limit)
    return db.session(lambda session: list(session.exec(query).all()))


def claimed_ahead_by_worker(db: Database) -> dict[str, int]:
    """How many items each worker holds that it has not handed to a child yet."""
    query = (
        select(QueueItem.worker_id, func.count())
        .where(QueueItem.status == ItemStatus.IN_PROGRESS.value, col(QueueItem.started).is_(False))
        .group_by(QueueItem.worker_id)
    )
    return db.session(lambda session: {str(worker): int(n) for worker, n in session.exec(query).all()})


def iter_documents(
    db: Database, where: ItemFilter, *, processed_only: bool = False, batch: int = 500
) -> Iterator[tuple[Document, Sequence[QueueItem], dict[int, ItemOutput]]]:
    """Documents that have items matching ``where`` (all documents without a filter),
    oldest first, with those items and their custom operations' outputs (by item id);
    streamed in batches, each its own short read, so exports of any size fit in memory."""
    last_id = 0
    while True:
        read = functools.partial(
            _document_page, where=where, after=last_id, processed_only=processed_only, batch=batch
        )
        page = db.session(read)
        if not page:
            return
        yield from page
        last_id = page[-1][0].id or last_id


def _document_page(
    session: Session, *, where: ItemFilter, after: int, processed_only: bool, batch: int
) -> list[tuple[Document, Sequence[QueueItem], dict[int, ItemOutput]]]:
    query = select(Document).where(col(Document.id) > after)
    if processed_only:
        query = query.where(Document.status == "processed")
    filtered = where.statuses or where.operation or where.error or where.since is not None
    if filtered:
        matching = where.apply(select(QueueItem.document_id))
        query = query.where(col(Document.id).in_(matching))
    documents = session.exec(query.order_by(col(Document.id)).limit(batch)).all()
    if not documents:
        return []
    ids = [document.id for document in documents]
    items = session.exec(
        where.apply(select(QueueItem)).where(col(QueueItem.document_id).in_(ids)).order_by(col(QueueItem.id))
    ).all()
    by_document: dict[int, list[QueueItem]] = {}
    for item in items:
        by_document.setdefault(item.document_id, []).append(item)
    item_ids = [item.id for item in items]
    outputs = {
        output.item_id: output
        for output in session.exec(select(ItemOutput).where(col(ItemOutput.item_id).in_(item_ids))).all()
    }
    return [(document, by_document.get(document.id or 0, []), outputs) for document in documents]
