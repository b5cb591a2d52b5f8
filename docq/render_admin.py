"""Rendering for the administration commands: list, purge, workers, doctor, export."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from docq import render
from docq.maintenance import PurgeCount
from docq.render import shown_path, styled
from docq.views import ItemRow


def item_row_dict(row: ItemRow) -> dict[str, Any]:
    """An item in ``docq list --json`` form."""
    item = row.item
    return {
        "id": item.id,
        "document_id": item.document_id,
        "path": shown_path(row.path),
        "operation": item.operation,
        "status": item.status,
        "priority": item.priority,
        "attempts": item.attempts,
        "last_error": item.last_error,
        "next_run_at": render.iso(item.next_run_at) if item.status == "pending" else None,
        "created_at": render.iso(item.created_at),
        "finished_at": render.iso(item.finished_at),
    }


def item_list(rows: Sequence[ItemRow], *, as_json: bool) -> None:
    """``docq list``."""
    if as_json:
        render.print_json([item_row_dict(row) for row in rows])
        return
    if not rows:
        render.out().print("No matching items.")
        return
    now = time.time()
    grid = render.table("Item", "Doc", "Operation", "Status", "Try", "Queued", "Last error", "Path")
    for row in rows:
        item = row.item
        status = "retrying" if item.status == "pending" and item.attempts else item.status
        grid.add_row(
            str(item.id),
            str(item.document_id),
            item.operation,
            styled(status),
            str(item.attempts),
            render.when(item.created_at, now),
            _escape(item.last_error or ""),
            _escape(shown_path(row.path)),
        )
    render.print_table(grid)


def purge_result(
    count: PurgeCount, *, as_json: bool, dry_run: bool, to_stderr: bool = False, cancelled: bool = False
) -> None:
    """What ``docq purge`` removed (or would remove)."""
    if as_json:
        render.print_json(
            {
                "dry_run": dry_run,
                "items": count.items,
                "attempts": count.attempts,
                "documents": count.documents,
            }
        )
        return
    verb = "Would delete" if dry_run else "Deleted"
    text = f"{verb} {count.items} items, {count.attempts} attempts and {count.documents} documents."
    if cancelled:
        text = "Nothing deleted."
    elif count.items == 0:
        text = "Nothing to purge."
    if to_stderr:
        render.warn(text)
    else:
        render.out().print(text)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
