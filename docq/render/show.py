"""Rendering for ``docq show``: a document, its items and every attempt."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from docq.config import format_duration, iso
from docq.paths import from_db
from docq.render import output
from docq.render.output import escape, shown_path, styled

if TYPE_CHECKING:
    from docq.views import DocumentView, ItemView

TEXT_PREVIEW_LINES = 12


def item_dict(view: ItemView) -> dict[str, Any]:
    """A queue item in ``--json`` form, with its history."""
    item = view.item
    data: dict[str, Any] = {
        "id": item.id,
        "operation": item.operation,
        "priority": item.priority,
        "status": item.status,
        "attempts": item.attempts,
        "max_attempts": item.max_attempts,
        "last_error": item.last_error,
        "next_run_at": iso(item.next_run_at) if item.status == "pending" else None,
        "created_at": iso(item.created_at),
        "finished_at": iso(item.finished_at),
        "worker": item.worker_id if item.status == "in_progress" else None,
        "lease_expires_at": iso(item.lease_expires_at) if item.status == "in_progress" else None,
        "cancel_requested": bool(item.cancel_requested),
        "history": [
            {
                "attempt": attempt.attempt,
                "worker": attempt.worker_id,
                "started_at": iso(attempt.started_at),
                "finished_at": iso(attempt.finished_at),
                "seconds": attempt.seconds,
                "outcome": attempt.outcome,
                "error": attempt.error,
            }
            for attempt in view.history
        ],
        # what a custom operation's command printed (null for the built-in operation)
        "output": None if view.output is None else {"text": view.output.text, "note": view.output.note},
    }
    return data


def document_dict(view: DocumentView) -> dict[str, Any]:
    """A document in ``--json`` form."""
    document = view.document
    return {
        "id": document.id,
        "path": document.path,
        "status": document.status,
        "sha256": document.sha256,
        "mime_type": document.mime_type,
        "size": document.size,
        "created_at": iso(document.created_at),
        "processed_at": iso(document.processed_at),
        "metadata": view.metadata,
        "text": document.text,
        "queue_items": [item_dict(item) for item in view.items],
    }


def item_with_document(view: DocumentView, item_view: ItemView) -> dict[str, Any]:
    """An item in ``docq show --item --json`` form: with its history and its document."""
    document = view.document
    return {
        **item_dict(item_view),
        "document": {"id": document.id, "path": document.path, "status": document.status},
    }


def document(view: DocumentView, *, as_json: bool, full_text: bool) -> None:
    """``docq show DOC``."""
    if as_json:
        output.print_json(document_dict(view))
        return
    if full_text:  # verbatim: page breaks, tabs and all, as a script would want it
        sys.stdout.write(view.document.text or "")
        sys.stdout.flush()
        return
    _header(view)
    for item in view.items:
        _item_block(item)
    _text_preview(view)


def item(view: DocumentView, item_view: ItemView, *, as_json: bool) -> None:
    """``docq show --item ID``."""
    if as_json:
        output.print_json(item_with_document(view, item_view))
        return
    _header(view)
    _item_block(item_view)
    if item_view.output is not None:
        console = output.out()
        console.print("[bold]Output[/]")
        console.print(item_view.output.text or "(no output)", markup=False, highlight=False)
        if item_view.output.note:
            console.print(f"[dim]stderr: {escape(item_view.output.note)}[/]")


def _header(view: DocumentView) -> None:
    document = view.document
    metadata = view.metadata
    grid = output.table("", "")
    grid.show_header = False
    grid.add_row("document", str(document.id))
    grid.add_row("path", escape(shown_path(from_db(document.path))))
    grid.add_row("status", styled(document.status))
    grid.add_row("type", document.mime_type)
    grid.add_row("size", f"{document.size:,} bytes")
    grid.add_row("sha256", document.sha256)
    for key in (
        "title",
        "author",
        "created",
        "pages",
        "words",
        "characters",
        "extractor",
        "extractor_version",
    ):
        if metadata.get(key) not in (None, ""):
            grid.add_row(key.replace("_", " "), escape(str(metadata[key])))
    flags = [name for name in ("encrypted", "needs_ocr") if metadata.get(name)]
    if flags:
        grid.add_row("flags", ", ".join(flags))
    output.print_table(grid)


def _item_block(view: ItemView) -> None:
    item = view.item
    now = time.time()
    console = output.out()
    line = f"\n[bold]Item {item.id}[/] {item.operation} · {styled(item.status)} · attempt {item.attempts}"
    line += f" · priority {item.priority}"
    console.print(line)
    if item.status == "in_progress":
        console.print(f"  held by {item.worker_id}, lease until {output.when(item.lease_expires_at, now)}")
    elif item.status == "pending" and item.attempts:
        console.print(f"  next attempt {output.when(item.next_run_at, now)}")
    if item.last_error:
        console.print(f"  last error: [red]{escape(item.last_error)}[/]")
    if not view.history:
        return
    grid = output.table("#", "Outcome", "Worker", "Started", "Took", "Error")
    for attempt in view.history:
        took = attempt.seconds
        grid.add_row(
            str(attempt.attempt),
            styled(attempt.outcome),
            attempt.worker_id or "-",
            iso(attempt.started_at, precise=False) or "-",
            "-" if took is None else format_duration(took),
            escape(attempt.error or ""),
        )
    output.print_table(grid)


def _text_preview(view: DocumentView) -> None:
    text = view.document.text
    if not text:
        return
    lines = [line for line in text.splitlines() if line.strip()]
    console = output.out()
    console.print("\n[bold]Text[/] (first lines; --text for all)")
    for line in lines[:TEXT_PREVIEW_LINES]:
        console.print(f"  {line[:160]}", markup=False, highlight=False)
    if len(lines) > TEXT_PREVIEW_LINES:
        console.print(f"  … {len(lines) - TEXT_PREVIEW_LINES} more lines")
