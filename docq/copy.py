"""``docq copy``: move a queue, history included, into another database (typically from
SQLite to PostgreSQL when workers move to several hosts).

The whole copy is one transaction on the target, so it is all or nothing, and the
target must hold no documents yet. Ids are kept, so item numbers people have noted
stay valid; the target's id counters continue from the source's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from docq import queries as q
from docq.backends import Tx
from docq.db import Database
from docq.errors import UsageError

BATCH = 2000

# Ids are never reused, even those of purged items: the target's counters continue
# from the source's, not from the largest id that happens to be left.
COUNTED = ("documents", "queue_items", "attempts")


@dataclass
class CopyCount:
    """Rows copied per table, and items that were in progress in the source."""

    rows: dict[str, int] = field(default_factory=dict)
    in_progress: int = 0


def _columns() -> tuple[dict[str, list[str]], set[str]]:
    """Stored columns per table, in copy order (parents before children), and the names
    of boolean columns (SQLite stores them as 0/1, PostgreSQL wants true/false).
    Computed columns (the lane) are left for the target to compute; the schema's own
    tables (its version, its migrations) belong to the target."""
    from sqlalchemy import Boolean

    from docq import models

    tables = (models.Document, models.QueueItem, models.Attempt, models.ItemOutput, models.Worker)
    columns: dict[str, list[str]] = {}
    booleans: set[str] = set()
    for model in tables:
        table = getattr(model, "__table__")  # noqa: B009 - set by SQLModel's metaclass
        stored = [column for column in table.columns if column.computed is None]
        columns[table.name] = [column.name for column in stored]
        booleans.update(column.name for column in stored if isinstance(column.type, Boolean))
    return columns, booleans


def copy_queue(
    source: Database, target: Database, *, on_table: Callable[[str, int], None] | None = None
) -> CopyCount:
    """Copy every document, item, attempt, output and worker from ``source`` to ``target``."""
    columns, booleans = _columns()
    count = CopyCount()
    count.in_progress = int(source.read(lambda tx: tx.scalar(q.COUNT_IN_PROGRESS)))
    next_ids = source.read(_next_ids)

    def copy_all(tx: Tx) -> None:
        if tx.scalar(q.HOLDS_A_QUEUE):
            raise UsageError(
                f"{target.target.display} already holds a queue: copy only into an empty database"
            )
        for table, names in columns.items():
            insert = q.copy_insert(table, names)
            copied = 0
            last = None
            while True:
                rows = source.read(functools.partial(_page, table=table, names=names, after=last))
                if not rows:
                    break
                records = [dict(zip(names, row, strict=True)) for row in rows]
                for record in records:
                    for name in booleans.intersection(record):
                        record[name] = bool(record[name])
                tx.executemany(insert, records)
                copied += len(rows)
                last = rows[-1][0]
            count.rows[table] = copied
            if on_table is not None:
                on_table(table, copied)
        for table, next_id in next_ids.items():
            tx.execute(q.ADD_ID_COUNTER, {"table": table})
            tx.execute(q.SET_ID_COUNTER, {"table": table, "next": next_id})

    target.write(copy_all)
    return count


def _next_ids(tx: Tx) -> dict[str, int]:
    """The id the next new row of each counted table would get."""
    return {
        table: max(int(tx.scalar(q.largest_id(table))), int(tx.scalar(q.ID_COUNTER, {"table": table}))) + 1
        for table in COUNTED
    }


def _page(tx: Tx, *, table: str, names: list[str], after: Any) -> list[tuple[Any, ...]]:
    key = names[0]  # id, or item_id for outputs
    sql = q.copy_page(table, names, key, first=after is None)
    return [tuple(row) for row in tx.all(sql, {"after": after, "limit": BATCH})]
