"""The status enums and the lane rule, importable without SQLAlchemy (the hot path, the
CLI's start-up and the worker's children stay light). `docq.models` re-exports them."""

from __future__ import annotations

import re
from enum import StrEnum

from docq.errors import UsageError


class ItemStatus(StrEnum):
    """Where a queue item is in its life."""

    PENDING = "pending"  # due now, or waiting for next_run_at after a failed attempt
    IN_PROGRESS = "in_progress"  # leased by one worker until lease_expires_at
    COMPLETED = "completed"
    FAILED = "failed"  # for good: attempts used up, or a permanent error
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (ItemStatus.PENDING, ItemStatus.IN_PROGRESS)
FINISHED_STATUSES = (ItemStatus.COMPLETED, ItemStatus.FAILED, ItemStatus.CANCELLED)


class DocumentStatus(StrEnum):
    """A document's status mirrors the queue item that changed most recently."""

    PENDING = "pending"
    PROCESSING = "processing"
    PROCESSED = "processed"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its only items were cancelled before they ran


class Outcome(StrEnum):
    """How one attempt ended (a row of the attempt history)."""

    COMPLETED = "completed"
    FAILED = "failed"  # the item was retried later or failed for good: see the item
    ABANDONED = "abandoned"  # the worker's lease expired (it died, hung or was cut off)
    RELEASED = "released"  # the worker shut down and gave the item back; not counted
    CANCELLED = "cancelled"


# The "lane" of an item says which kind of worker runs it: the built-in extraction
# runs both `process` and `reprocess`, so they share the empty lane; every other
# operation is a lane of its own. Claims scan one lane in priority order through
# ix_items_claim, which keeps a claim's cost flat however long the queue grows.
LANE_SQL = "CASE WHEN operation IN ('process', 'reprocess') THEN '' ELSE operation END"


def lane_of(operation: str) -> str:
    """The lane an operation's items are claimed from (see LANE_SQL)."""
    return "" if operation in ("process", "reprocess") else operation


_OPERATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_operation_name(operation: str) -> str:
    """``operation`` if it is a valid operation name (letters, digits, ``.``, ``_``, ``-``,
    at most 64); raises `UsageError` otherwise."""
    if not _OPERATION_NAME.fullmatch(operation):
        raise UsageError(f"invalid operation name {operation!r}: use letters, digits, '.', '_' or '-'")
    return operation
