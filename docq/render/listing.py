"""How the listings look: ``docq list`` (queue items) and ``docq workers``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from docq.config import iso
from docq.render import output
from docq.render.output import escape, shown_path, styled

if TYPE_CHECKING:
    from docq.models import Worker
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
        "claimed_ahead": item.status == "in_progress" and not item.started,
        "last_error": item.last_error,
        "next_run_at": iso(item.next_run_at) if item.status == "pending" else None,
        "created_at": iso(item.created_at),
        "finished_at": iso(item.finished_at),
    }


def status_label(item: Any) -> str:
    """An item's status for people: ``retrying`` for a pending item that failed before,
    ``claimed ahead`` for a leased one no child has started yet."""
    if item.status == "pending" and item.attempts:
        return "retrying"
    if item.status == "in_progress" and not item.started:
        return "claimed ahead"
    return str(item.status)


def item_list(rows: Sequence[ItemRow], *, as_json: bool) -> None:
    """``docq list``."""
    if as_json:
        output.print_json([item_row_dict(row) for row in rows])
        return
    if not rows:
        output.out().print("No matching items.")
        return
    now = time.time()
    grid = output.table("Item", "Doc", "Operation", "Status", "Try", "Queued", "Path", "Last error")
    for row in rows:
        item = row.item
        status = status_label(item)
        grid.add_row(
            str(item.id),
            str(item.document_id),
            item.operation,
            styled(status),
            str(item.attempts),
            output.ago(item.created_at, now),
            output.PathCell(row.path),
            escape(item.last_error or ""),
        )
    output.print_table(grid)


def cut_at_limit(shown: int, matching: int) -> None:
    """A listing stopped at its limit: say so on stderr, where a script's data is not."""
    if matching > shown:
        output.warn(f"showing {shown:,} of {matching:,}: --limit N or --all for more")


def worker_dicts(rows: Sequence[Worker], ahead: Mapping[str, int], now: float) -> list[dict[str, Any]]:
    """Workers in ``docq workers --json`` form; ``ahead`` counts the items each holds, claimed ahead."""
    return [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "operation": w.lane or "process",
            "started_at": iso(w.started_at),
            "heartbeat_at": iso(w.heartbeat_at),
            "stopped_at": iso(w.stopped_at),
            "current_items": [int(i) for i in (w.current_items or "").split(",") if i],
            "claimed_ahead": ahead.get(w.id, 0),
            "items_done": w.items_done,
            "state": worker_state(w, now),
        }
        for w in rows
    ]


def workers(rows: Sequence[Worker], ahead: Mapping[str, int], *, now: float, as_json: bool) -> None:
    """``docq workers``; ``ahead`` counts the items each holds, claimed ahead."""
    data = worker_dicts(rows, ahead, now)
    if as_json:
        output.print_json(data)
        return
    if not rows:
        output.out().print("No workers running. Start one with `docq work --loop`.")
        return
    grid = output.table(
        "Worker",
        "Host",
        "PID",
        "Operation",
        "Started",
        "Heartbeat",
        "Running items",
        "Items ahead",
        "Done",
        "State",
    )
    for w, row in zip(rows, data, strict=True):
        state = str(row["state"])
        grid.add_row(
            w.id,
            w.host,
            str(w.pid),
            str(row["operation"]),
            output.when(w.started_at, now),
            output.when(w.heartbeat_at, now),
            (w.current_items or "-").replace(",", ", "),
            str(row["claimed_ahead"]),
            str(w.items_done),
            {"alive": "[green]alive[/]", "dead": "[red]dead[/]"}.get(state, state),
        )
    output.print_table(grid)


def worker_state(worker: Worker, now: float) -> str:
    """``alive``, ``stopped`` (signed off), or ``dead`` (silent past its lease)."""
    if worker.stopped_at is not None:
        return "stopped"
    return "dead" if now - worker.heartbeat_at > worker.lease_seconds else "alive"
