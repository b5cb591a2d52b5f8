"""The dialogs of ``docq top``: a yes/no question, the purge form, an item's detail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from docq.config import format_duration, iso
from docq.render.output import escape, shown_path

if TYPE_CHECKING:
    from docq.views import DocumentView, ItemView

TEXT_PREVIEW_LINES = 20


class Confirm(ModalScreen[bool]):
    """Ask a yes/no question before an action: ``y`` acts, ``n`` or Escape does not."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self.question, id="question")  # a Static wraps a long question
            yield Label("[b]y[/] yes · [b]n[/] no", classes="hint")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PurgeForm(ModalScreen[tuple[str, str] | None]):
    """Ask what to purge: older than (a duration) and which finished statuses. Enter
    goes on to the dry-run count; Escape gives up."""

    BINDINGS: ClassVar[list[Any]] = [Binding("escape", "give_up", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Purge finished items older than (e.g. 7d, 12h):")
            yield Input(value="7d", id="older-than")
            yield Label("with status (completed, failed, cancelled; comma-separated):")
            yield Input(value="completed,failed,cancelled", id="statuses")
            yield Label("Enter: count what would go · Escape: cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        older = self.query_one("#older-than", Input).value.strip()
        statuses = self.query_one("#statuses", Input).value.strip()
        if event.input.id == "older-than":
            self.query_one("#statuses", Input).focus()
            return
        self.dismiss((older, statuses))

    def action_give_up(self) -> None:
        self.dismiss(None)


class Detail(ModalScreen[None]):
    """One item: its document's facts and metadata, every attempt, a command's output and
    the start of the text. Escape or q goes back."""

    BINDINGS: ClassVar[list[Any]] = [Binding("escape,q,enter", "back", "Back")]

    def __init__(self, document: DocumentView, item: ItemView) -> None:
        super().__init__()
        self.document, self.item = document, item

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="detail"):
            yield Static(detail_renderable(self.document, self.item), id="detail")

    def action_back(self) -> None:
        self.dismiss(None)


def detail_renderable(view: DocumentView, item_view: ItemView) -> Any:
    """A Rich renderable of an item and its document (pure: testable without a screen)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    document, item = view.document, item_view.item
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("item", f"{item.id} · {item.operation} · {item.status} · attempt {item.attempts}")
    facts.add_row("document", f"{document.id} · {document.status} · {document.mime_type or '-'}")
    facts.add_row("path", escape(shown_path(view.path)))
    if item.last_error:
        facts.add_row("last error", f"[red]{escape(item.last_error)}[/]")
    for key, value in view.metadata.items():  # everything the extractor found
        if value not in (None, "", [], {}):
            facts.add_row(key, escape(str(value))[:300])
    attempts = Table(
        "#", "Worker", "Started", "Took", "Outcome", "Error", title="Attempts", title_justify="left"
    )
    for attempt in item_view.history:
        took = "-" if attempt.seconds is None else format_duration(attempt.seconds)
        attempts.add_row(
            str(attempt.attempt),
            attempt.worker_id or "-",
            iso(attempt.started_at, precise=False) or "-",
            took,
            attempt.outcome,
            escape(attempt.error or ""),
        )
    parts: list[Any] = [facts, attempts if item_view.history else Text("No attempts yet.")]
    if item_view.output is not None:
        parts += [Text("Command output", style="bold"), Text(item_view.output.text or "")]
    if document.text:
        lines = [line for line in document.text.splitlines() if line.strip()][:TEXT_PREVIEW_LINES]
        parts += [Text("Text", style="bold"), Text("\n".join(line[:200] for line in lines))]
    return Group(*parts)
