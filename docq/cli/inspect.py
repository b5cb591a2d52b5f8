"""Commands that look at the queue: stats, show, list, workers, export and top."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from docq.cli import complete
from docq.cli.app import (
    ErrorFilter,
    Invocation,
    JsonOption,
    OperationFilter,
    SinceFilter,
    StatusOption,
    command,
    duration,
    statuses,
)
from docq.errors import UsageError
from docq.render import output

if TYPE_CHECKING:
    from docq.queue import DocumentQueueService
    from docq.views import ItemFilter


@command()
def stats(
    ctx: typer.Context,
    as_json: JsonOption = False,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh a live dashboard until Ctrl-C (terminal only).")
    ] = False,
    interval: Annotated[
        float, typer.Option(parser=duration, metavar="DURATION", help="With --watch: refresh this often.")
    ] = "2s",  # type: ignore[assignment]
) -> None:
    """Show the queue: items per status, retries waiting, throughput, who holds what.

    The counts are kept up to date as items change, so this is instant however long
    the queue. "retrying" counts pending items that failed before and wait for their
    next attempt.

    **Examples**

          docq stats
          docq stats --json | jq .pending
          docq stats --watch
    """
    queue = Invocation.of(ctx).service()
    if watch:
        _watch(queue, interval)
        return
    from docq.render import stats as render

    render.stats(queue.get_queue_stats(), as_json=as_json)


@command()
def show(
    ctx: typer.Context,
    document: Annotated[
        str | None,
        typer.Argument(
            metavar="DOC", help="Document id or path.", show_default=False, autocompletion=complete.documents
        ),
    ] = None,
    item: Annotated[
        int | None,
        typer.Option(
            "--item", metavar="ID", help="Show a queue item instead.", autocompletion=complete.items
        ),
    ] = None,
    text: Annotated[bool, typer.Option("--text", help="Print the whole extracted text.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Show a document: its metadata, queue items, every attempt and its text.

    A document is named by its id or by its path; --item shows one queue item instead,
    with the output of a custom operation's command.

    **Examples**

          docq show 12
          docq show ~/scans/invoice.pdf --text
          docq show --item 40 --json
    """
    from docq import views
    from docq.render import show as render

    if (document is None) == (item is None):
        raise UsageError("give a document (id or path) or --item ID")
    db = Invocation.of(ctx).service().db
    if item is not None:
        view, item_view = views.show_item(db, item)
        render.item(view, item_view, as_json=as_json)
        return
    assert document is not None
    render.document(views.show_document(db, document), as_json=as_json, full_text=text)


@command("list")
def list_(
    ctx: typer.Context,
    status: StatusOption = None,
    operation: OperationFilter = None,
    error: ErrorFilter = None,
    since: SinceFilter = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many items.")] = 50,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Show every matching item (no --limit).")] = False,
    as_json: JsonOption = False,
) -> None:
    """List queue items, newest first.

    Filters combine; --status takes several values, and "retrying" picks the pending
    items that failed before. A listing cut at --limit says so on stderr, with the
    number of items that match.

    **Examples**

          docq list --status failed
          docq list --status retrying,pending --operation ocr
          docq list --error encrypted --since 1d --json
          docq list --all --status failed --json
    """
    from docq import views
    from docq.render import listing as render

    where = _item_filter(status, operation, error, since, None if all_ else limit)
    db = Invocation.of(ctx).service().db
    rows = views.list_items(db, where)
    render.item_list(rows, as_json=as_json)
    if where.limit is not None and len(rows) == where.limit:
        render.cut_at_limit(len(rows), views.count_items(db, where))


@command()
def workers(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include workers that stopped.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List workers: host, pid, heartbeat, current (running) items, items claimed ahead
    and not started yet, items done; dead ones marked.

    A worker is dead when it stopped heartbeating for longer than its lease without
    signing off (killed, or its machine went away); its items are taken over when
    their leases expire.

    **Examples**

          docq workers
          docq workers --all --json
    """
    from docq import views
    from docq.render import listing as render

    queue = Invocation.of(ctx).service()
    rows = views.list_workers(queue.db, include_stopped=all_)
    ahead = views.claimed_ahead_by_worker(queue.db)
    render.workers(rows, ahead, now=queue.now(), as_json=as_json)


@command()
def export(
    ctx: typer.Context,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", metavar="jsonl|csv", help="jsonl: everything; csv: metadata only."),
    ] = "jsonl",
    output_file: Annotated[
        str | None, typer.Option("--output", metavar="FILE", help="Write here instead of stdout.")
    ] = None,
    text_dir: Annotated[
        str | None,
        typer.Option(
            "--text-dir", metavar="DIR", help="Also write one .txt per processed document into DIR."
        ),
    ] = None,
    status: StatusOption = None,
    operation: OperationFilter = None,
    error: ErrorFilter = None,
    since: SinceFilter = None,
) -> None:
    """Export documents with their metadata and text, for scripts.

    One JSON object per document (JSON Lines), or CSV rows of metadata. Filters pick
    documents that have matching items. Text files are named `ID-NAME.txt` and
    never leave DIR, whatever the documents are called.

    **Examples**

          docq export > results.jsonl
          docq export --format csv --output metadata.csv
          docq export --status completed --since 1d --text-dir texts/
    """
    import sys

    from docq import export as exporter

    if fmt not in ("jsonl", "csv"):
        raise UsageError(f"unknown --format {fmt!r}: use jsonl or csv")
    where = _item_filter(status, operation, error, since, None)
    db = Invocation.of(ctx).service().db
    if output_file is None and text_dir is not None and sys.stdout.isatty():
        stream = None  # only the text files: do not flood the terminal
    elif output_file is None:
        stream = sys.stdout
    else:
        try:
            stream = open(output_file, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot write --output {output_file}: {exc.strerror}") from None
    try:
        count = exporter.export(db, stream, fmt=fmt, where=where, text_dir=text_dir)  # type: ignore[arg-type]
    finally:
        if stream is not None and stream is not sys.stdout:
            stream.close()
    if output_file is not None or text_dir is not None:
        files = f" and {count.text_files} text files in {text_dir}" if text_dir else ""
        target = f" to {output_file}" if output_file else ""
        output.warn(f"exported {count.documents} documents{target}{files}")


@command()
def top(
    ctx: typer.Context,
    interval: Annotated[
        float, typer.Option(parser=duration, metavar="DURATION", help="Refresh this often.")
    ] = "1s",  # type: ignore[assignment]
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Watch only: retry, cancel, reprocess and purge are off.")
    ] = False,
) -> None:
    """Watch and steer the queue in an interactive terminal UI.

    o overview (counts, per operation, completions per minute, workers, recent failures),
    i items (Enter: an item's attempts, output and text; / filters: status:failed op:ocr
    or text; space marks; ] and [ page), w workers. On the selected or marked items:
    r retry, c cancel, p reprocess their documents; P purges old finished items after a
    dry-run count. Each action asks y/n first. q quits. Needs a terminal: in scripts use
    docq stats --json, in logs and tmux panes docq stats --watch.

    **Examples**

          docq top
          docq top --read-only --interval 5s
    """
    if not output.out().is_terminal:
        raise UsageError("docq top needs a terminal; in scripts use `docq stats --json`")
    from docq.tui.app import TopApp

    queue = Invocation.of(ctx).service()
    TopApp(queue, where=queue.db.target.display, read_only=read_only, interval=interval).run()


def _watch(queue: DocumentQueueService, interval: float) -> None:
    from docq import stats
    from docq.render import dashboard

    dashboard.run(lambda: stats.snapshot(queue.db), interval=interval)


def _item_filter(
    status: list[str] | None,
    operation: str | None,
    error: str | None,
    since: float | None,
    limit: int | None,
) -> ItemFilter:
    from docq.views import ItemFilter

    return ItemFilter(
        statuses=statuses(status),
        operation=operation,
        error=error,
        since=None if since is None else time.time() - since,
        limit=limit,
    )
