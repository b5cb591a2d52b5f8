"""The schema: SQLModel tables (the status enums live in `docq.states`). No queries here.

Times are stored as seconds since the Unix epoch (a float, UTC), which both SQLite and
PostgreSQL compare and index cheaply; the CLI shows them as ISO 8601. On PostgreSQL the
queue's own times come from the server's clock, so workers with skewed clocks agree.

Statuses are stored as their lowercase words (a plain ``VARCHAR``, no database enum type,
so that a new state needs no type change) and read back as the `docq.states` enums.
A change here is a schema change: it needs a migration (see `docq.migrations`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, Computed, Dialect, Index, String, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from docq.states import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    LANE_SQL,
    DocumentStatus,
    ItemStatus,
    Outcome,
    lane_of,
)

__all__ = [
    "ACTIVE_STATUSES",
    "FINISHED_STATUSES",
    "LANE_SQL",
    "Attempt",
    "Document",
    "DocumentStatus",
    "ItemOutput",
    "ItemStatus",
    "Meta",
    "MigrationRecord",
    "Outcome",
    "QueueCount",
    "QueueItem",
    "Worker",
    "lane_of",
]


class StatusWord(TypeDecorator[StrEnum]):
    """A status enum, stored as its word in a VARCHAR and read back as the enum."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


class Document(SQLModel, table=True):
    """A file docq knows, identified by its resolved absolute path."""

    __tablename__ = "documents"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused after a purge

    id: int | None = Field(default=None, primary_key=True)
    path: str = Field(unique=True)
    size: int = Field(sa_type=BigInteger)
    sha256: str
    mime_type: str
    status: DocumentStatus = Field(default=DocumentStatus.PENDING, sa_type=StatusWord(DocumentStatus))
    metadata_json: str | None = None  # the extraction's metadata, a JSON object
    text: str | None = None  # the extracted text
    extractor: str | None = None  # extractor version that produced text/metadata
    created_at: float
    updated_at: float
    processed_at: float | None = None


class QueueItem(SQLModel, table=True):
    """One operation to run on one document, and where it stands."""

    __tablename__ = "queue_items"
    __table_args__ = (
        # Claims: due pending items of one lane, highest priority first, then FIFO.
        Index(
            "ix_items_claim",
            "lane",
            text("priority DESC"),
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # Expired leases, probed at every claim; only in-progress rows are indexed.
        Index(
            "ix_items_lease",
            "lease_expires_at",
            sqlite_where=text("status = 'in_progress'"),
            postgresql_where=text("status = 'in_progress'"),
        ),
        # Pending items that failed before: the "retrying" count and the next retry.
        Index(
            "ix_items_retrying",
            "next_run_at",
            sqlite_where=text("status = 'pending' AND attempts > 0"),
            postgresql_where=text("status = 'pending' AND attempts > 0"),
        ),
        # The oldest pending item (stats); only pending rows are indexed, so finishing an
        # item costs nothing here and the index stays as small as the backlog.
        Index(
            "ix_items_pending",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_items_finished",
            "finished_at",
            sqlite_where=text("finished_at IS NOT NULL"),
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
        Index("ix_items_document", "document_id", "operation"),
        # The invariant behind "already queued": at most one active item per document and
        # lane, whatever runs concurrently (on PostgreSQL a racing enqueue is retried).
        Index(
            "ux_items_active",
            "document_id",
            "lane",
            unique=True,
            sqlite_where=text("status IN ('pending', 'in_progress')"),
            postgresql_where=text("status IN ('pending', 'in_progress')"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    document_id: int = Field(foreign_key="documents.id")
    operation: str = Field(default="process")
    lane: str | None = Field(default=None, sa_column=Column(String, Computed(LANE_SQL, persisted=True)))
    priority: int = 0
    status: ItemStatus = Field(default=ItemStatus.PENDING, sa_type=StatusWord(ItemStatus))
    attempts: int = 0  # attempts started (released ones are given back)
    max_attempts: int | None = None  # None: the worker's --max-attempts
    sha256: str | None = None  # the document's content when this item was queued
    next_run_at: float
    lease_token: str | None = None  # kept after completion, to recognise our own commit
    lease_expires_at: float | None = None
    worker_id: str | None = None  # owner of the current or last attempt: host:pid:tag
    started_at: float | None = None
    cancel_requested: bool = False
    last_error: str | None = None
    created_at: float
    finished_at: float | None = None
    # Whether the current attempt has started (the item was handed to a child or a
    # command): only then does it count, and does a lost lease charge it.
    started: bool = Field(default=False, sa_column_kwargs={"server_default": text("FALSE")})


class Attempt(SQLModel, table=True):
    """One finished attempt at a queue item: the item's history."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_item", "item_id", "id"),
        Index("ix_attempts_finished", "finished_at"),  # mean processing time of the last hour
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="queue_items.id")
    attempt: int
    worker_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    outcome: Outcome = Field(sa_type=StatusWord(Outcome))
    error: str | None = None
    seconds: float | None = None  # time spent processing, as the worker measured it


class ItemOutput(SQLModel, table=True):
    """What a custom operation's command printed: stdout as the result, stderr's tail as a note."""

    __tablename__ = "item_outputs"

    item_id: int = Field(primary_key=True, foreign_key="queue_items.id")
    text: str | None = None
    note: str | None = None


class Worker(SQLModel, table=True):
    """A `docq work` process, registered when it starts and kept fresh by its heartbeat."""

    __tablename__ = "workers"

    id: str = Field(primary_key=True)
    host: str
    pid: int
    lane: str = ""
    lease_seconds: float = 60.0  # heartbeats come every third of this; silence past it means dead
    started_at: float
    heartbeat_at: float
    stopped_at: float | None = None
    current_items: str | None = None  # comma-separated queue item ids
    items_done: int = 0


class QueueCount(SQLModel, table=True):
    """Items per (operation, status), kept by triggers on SQLite so that stats never
    scan the finished history. PostgreSQL counts with a query instead (see
    `docq.queries.COUNTS`)."""

    __tablename__ = "queue_counts"

    operation: str = Field(primary_key=True)
    status: str = Field(primary_key=True)
    n: int = 0


class Meta(SQLModel, table=True):
    """Key/value facts about the database itself, such as its schema version."""

    __tablename__ = "docq_meta"

    key: str = Field(primary_key=True)
    value: str


class MigrationRecord(SQLModel, table=True):
    """A schema migration applied to this database (see `docq.migrations`)."""

    __tablename__ = "docq_migrations"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    name: str
    applied_at: float | None = None  # None: applied before migrations were recorded


TABLES = (Document, QueueItem, Attempt, ItemOutput, Worker, QueueCount, Meta, MigrationRecord)
"""Every table, parents before children (the order they are created and copied in)."""
