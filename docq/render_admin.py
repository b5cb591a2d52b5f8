"""Rendering for the administration commands: list, purge, workers, doctor, export."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from docq import render
from docq.doctor import Check
from docq.maintenance import PurgeCount
from docq.models import Worker
from docq.render import shown_path, styled
from docq.views import ItemRow

if TYPE_CHECKING:
    from docq.bench import Report


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
    grid = render.table("Item", "Doc", "Operation", "Status", "Try", "Queued", "Path", "Last error")
    for row in rows:
        item = row.item
        status = "retrying" if item.status == "pending" and item.attempts else item.status
        grid.add_row(
            str(item.id),
            str(item.document_id),
            item.operation,
            styled(status),
            str(item.attempts),
            render.ago(item.created_at, now),
            _escape(shown_path(row.path)),
            _escape(item.last_error or ""),
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


def workers(rows: Sequence[Worker], *, now: float, as_json: bool) -> None:
    """``docq workers``."""
    data = [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "operation": w.lane or "process",
            "started_at": render.iso(w.started_at),
            "heartbeat_at": render.iso(w.heartbeat_at),
            "stopped_at": render.iso(w.stopped_at),
            "current_items": [int(i) for i in (w.current_items or "").split(",") if i],
            "items_done": w.items_done,
            "state": worker_state(w, now),
        }
        for w in rows
    ]
    if as_json:
        render.print_json(data)
        return
    if not rows:
        render.out().print("No workers running. Start one with `docq work --loop`.")
        return
    grid = render.table(
        "Worker", "Host", "PID", "Operation", "Started", "Heartbeat", "Current", "Done", "State"
    )
    for w, row in zip(rows, data, strict=True):
        state = str(row["state"])
        grid.add_row(
            w.id,
            w.host,
            str(w.pid),
            str(row["operation"]),
            render.when(w.started_at, now),
            render.when(w.heartbeat_at, now),
            (w.current_items or "-").replace(",", ", "),
            str(w.items_done),
            {"alive": "[green]alive[/]", "dead": "[red]dead[/]"}.get(state, state),
        )
    render.print_table(grid)


def worker_state(worker: Worker, now: float) -> str:
    """``alive``, ``stopped`` (signed off), or ``dead`` (silent past its lease)."""
    if worker.stopped_at is not None:
        return "stopped"
    return "dead" if now - worker.heartbeat_at > worker.lease_seconds else "alive"


def doctor(checks: Sequence[Check], *, as_json: bool) -> None:
    """``docq doctor``: one line per check."""
    if as_json:
        render.print_json([{"check": c.name, "level": c.level, "detail": c.detail} for c in checks])
        return
    console = render.out()
    colours = {"pass": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        label = f"[{colours[check.level]}]{check.level:4}[/]" if console.is_terminal else f"{check.level:4}"
        detail = " ".join(check.detail.split())  # one line per check
        console.print(f"{label}  {check.name}: {_escape(detail)}", soft_wrap=True)


def bench_progress(*, enabled: bool) -> Callable[[str], None]:
    """Where ``docq bench`` says what it is measuring: a line on stderr."""

    def say(message: str) -> None:
        if enabled:
            render.warn(f"bench: {message}")

    return say


def bench_dict(report: Report) -> dict[str, Any]:
    """The ``docq bench --json`` form."""
    return {
        "machine": report.machine,
        "measures": [
            {
                "section": m.section,
                "name": m.name,
                "value": None if m.value is None else round(m.value, 3),
                "unit": m.unit,
                "target": m.target or None,
                "ok": m.ok,
                "note": m.note or None,
            }
            for m in report.measures
        ],
    }


def bench_report(report: Report) -> None:
    """``docq bench``: one table, grouped by section."""
    machine = report.machine
    render.out().print(
        f"docq bench · Python {machine['python']} · SQLite {machine['sqlite']} · {machine['cpus']} CPUs · "
        f"{machine['platform']}"
    )
    grid = render.table("Measure", "Result", "Target", "")
    section = None
    for m in report.measures:
        if m.section != section:
            section = m.section
            grid.add_row(f"[bold]{_escape(section)}[/]", "", "", "")
        value = "-" if m.value is None else _number(m.value, m.unit)
        verdict = {True: "[green]met[/]", False: "[red]missed[/]", None: ""}[m.ok]
        note = f" ({_escape(m.note)})" if m.note else ""
        grid.add_row(f"  {_escape(m.name)}", value + note, m.target, verdict)
    render.print_table(grid)


def _number(value: float, unit: str) -> str:
    if unit in ("%", "x"):
        return f"{value:.1f}{'' if unit == '%' else ' '}{unit}" if unit == "%" else f"{value:.2f}x"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
