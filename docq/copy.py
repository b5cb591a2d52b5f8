"""``docq copy``: move a queue, history included, into another database (typically from
SQLite to PostgreSQL when workers move to several hosts).

The whole copy is one transaction on the target, so it is all or nothing, and the
target must hold no documents yet. Ids are kept, so item numbers people have noted
stay valid; PostgreSQL's id sequences are moved past the copied ids.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from docq.db import Database, Tx
from docq.errors import UsageError

BATCH = 2000


@dataclass
class CopyCount:
    """Rows copied per table, and items that were in progress in the source."""

    rows: dict[str, int] = field(default_factory=dict)
    in_progress: int = 0


def _columns() -> tuple[dict[str, list[str]], set[str]]:
    """Stored columns per table, in copy order (parents before children), and the names
    of boolean columns (SQLite stores them as 0/1, PostgreSQL wants true/false).
    Computed columns (the lane) are left for the target to compute."""
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
    count.in_progress = int(
        source.read(lambda tx: tx.scalar("SELECT count(*) FROM queue_items WHERE status = 'in_progress'"))
    )

    def copy_all(tx: Tx) -> None:
        if tx.scalar("SELECT count(*) FROM documents") or tx.scalar("SELECT count(*) FROM queue_items"):
            raise UsageError(
                f"{target.target.display} already holds a queue: copy only into an empty database"
            )
        for table, names in columns.items():
            key = names[0]  # id, or item_id for outputs
            copied = 0
            last = None
            while True:
                rows = source.read(functools.partial(_page, table=table, names=names, key=key, after=last))
                if not rows:
                    break
                placeholders = ", ".join(f":{name}" for name in names)
                records = [dict(zip(names, row, strict=True)) for row in rows]
                for record in records:
                    for name in booleans.intersection(record):
                        record[name] = bool(record[name])
                tx.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})", records)
                copied += len(rows)
                last = rows[-1][0]
            count.rows[table] = copied
            if on_table is not None:
                on_table(table, copied)
        _carry_id_counters(tx, next_ids)

    next_ids = source.read(_next_ids)
    target.write(copy_all)
    return count


# Ids are never reused, even those of purged items: the target's counters continue
# from the source's, not from the largest id that happens to be left.
COUNTED = ("documents", "queue_items", "attempts")


def _next_ids(tx: Tx) -> dict[str, int]:
    """The id the next new row of each table would get."""
    result = {}
    for table in COUNTED:
        largest = int(tx.scalar(f"SELECT COALESCE(max(id), 0) FROM {table}"))
        if tx.backend == "sqlite":
            seq = tx.scalar("SELECT seq FROM sqlite_sequence WHERE name = :name", {"name": table})
        else:
            sequence = tx.scalar("SELECT pg_get_serial_sequence(:table, 'id')", {"table": table})
            seq = tx.scalar(
                f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {sequence}"
            )
        result[table] = max(largest, int(seq or 0)) + 1
    return result


def _carry_id_counters(tx: Tx, next_ids: dict[str, int]) -> None:
    for table, next_id in next_ids.items():
        if tx.backend == "postgresql":
            tx.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"GREATEST(:next, COALESCE((SELECT max(id) FROM {table}), 0) + 1), false)",
                {"next": next_id},
            )
        elif tx.scalar("SELECT count(*) FROM sqlite_sequence WHERE name = :name", {"name": table}):
            tx.execute(
                "UPDATE sqlite_sequence SET seq = max(seq, :seq) WHERE name = :name",
                {"seq": next_id - 1, "name": table},
            )
        elif table != "attempts":  # the attempts table has no AUTOINCREMENT counter
            tx.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES (:name, :seq)",
                {"name": table, "seq": next_id - 1},
            )


def _page(tx: Tx, *, table: str, names: list[str], key: str, after: object) -> list[tuple[object, ...]]:
    where = "" if after is None else f"WHERE {key} > :after"
    sql = f"SELECT {', '.join(names)} FROM {table} {where} ORDER BY {key} LIMIT {BATCH}"
    return [tuple(row) for row in tx.all(sql, {"after": after})]
