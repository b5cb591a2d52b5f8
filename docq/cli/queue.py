"""Commands that change the queue: enqueue, reprocess, retry, cancel and purge."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from docq.cli import complete
from docq.cli.app import (
    DryRunOption,
    ErrorFilter,
    Invocation,
    JsonOption,
    OperationOption,
    PriorityOption,
    command,
    duration,
    finish,
    statuses,
)
from docq.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from docq.render import output
from docq.states import check_operation_name


@command()
def enqueue(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="PATH...", help="Files, or directories with -r.", show_default=False),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Queue the files under directories.")
    ] = False,
    from_file: Annotated[
        str | None,
        typer.Option("--from", metavar="FILE", help="Read paths from FILE, one a line; - reads stdin."),
    ] = None,
    null: Annotated[
        bool, typer.Option("--null", "-0", help="Paths in --from are NUL-separated (find -print0).")
    ] = False,
    priority: PriorityOption = 0,
    operation: OperationOption = "process",
    force: Annotated[
        bool, typer.Option("--force", help="Queue unchanged files again (processed, or failed for good).")
    ] = False,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            min=1, help="Attempts for these items before they fail for good (default: the worker's)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Queue documents for processing and return at once.

    A document is its resolved path. A file already queued is skipped; one processed
    before with the same content is skipped unless --force; changed content is queued
    again. Inputs that cannot be queued are reported and the rest still go in (exit 3).

    **Examples**

          docq enqueue report.pdf notes.md
          docq enqueue -r ~/scans --priority 5
          find . -name '*.pdf' -print0 | docq enqueue -0 --from -
    """
    from docq.enqueue import enqueue_paths, read_path_list
    from docq.render import queue as render

    if null and from_file is None:
        raise UsageError("-0/--null only applies to --from")
    if not paths and from_file is None:
        raise UsageError(
            "nothing to enqueue: give files, directories with -r, or --from FILE (see docq enqueue --help)"
        )
    check_operation_name(operation)
    inputs = _enqueue_inputs(paths or [], from_file, null, read_path_list)
    queue = Invocation.of(ctx).service(create=True)
    received: list[int] = []
    with (
        render.EnqueueProgress(
            enabled=not as_json, known=None if from_file or recursive else len(paths or [])
        ) as progress,
        _stop_signals(received),
    ):
        report = enqueue_paths(
            queue,
            inputs,
            recursive=recursive,
            operation=operation,
            priority=priority,
            force=force,
            max_attempts=max_attempts,
            on_progress=progress.update,
            stop=lambda: bool(received),
        )
    stopped_by = received[0] if received else None
    if as_json:
        output.print_json(report.to_dict())
    else:
        render.enqueue_report(report)
    if stopped_by is not None:
        output.warn(
            f"stopped by {signal.Signals(stopped_by).name} after queuing {len(report.queued)} documents; "
            "the batch in progress was not queued: run the same command again to queue the rest "
            "(it skips what is queued already)"
        )
        finish(128 + stopped_by)
    finish(EXIT_PARTIAL if report.rejected else EXIT_OK)


@contextmanager
def _stop_signals(received: list[int]) -> Iterator[None]:
    """Note SIGINT, SIGTERM and SIGHUP in ``received`` while enqueueing, instead of dying at
    once: the enqueue then stops between files, and what it queued so far is reported."""

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)

    previous = {
        signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _enqueue_inputs(paths: list[str], from_file: str | None, null: bool, reader: Any) -> Any:
    import itertools

    if from_file is None:
        return paths
    if from_file == "-":
        return itertools.chain(paths, reader(sys.stdin.buffer, null=null))
    try:
        stream = Path(from_file).open("rb")  # noqa: SIM115 - read lazily while enqueueing
    except OSError as exc:
        raise UsageError(f"cannot read --from {from_file}: {exc.strerror}") from None
    return itertools.chain(paths, reader(stream, null=null))


@command()
def reprocess(
    ctx: typer.Context,
    documents: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="DOC...",
            help="Document ids or paths.",
            show_default=False,
            autocompletion=complete.documents,
        ),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Also every document whose processing failed.")
    ] = False,
    stale: Annotated[
        bool, typer.Option("--stale", help="Also every document processed by an older extractor version.")
    ] = False,
    operation: Annotated[
        str,
        typer.Option("--operation", "-o", metavar="NAME", help="Operation to queue (default: reprocess)."),
    ] = "reprocess",
    priority: PriorityOption = 0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be queued; change nothing.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Queue documents to be processed again, and return at once.

    A document that already has a pending or running item is not queued twice.

    **Examples**

          docq reprocess 12 ~/scans/invoice.pdf
          docq reprocess --failed
          docq reprocess --stale --dry-run
          docq reprocess 12 --operation ocr
    """
    from docq.render import queue as render

    if not documents and not failed and not stale:
        raise UsageError("nothing to reprocess: give document ids or paths, --failed or --stale")
    check_operation_name(operation)
    queue = Invocation.of(ctx).service(upgrade=not dry_run)
    changes = queue.reprocess(
        documents or [],
        operation=operation,
        failed=failed,
        stale=stale,
        priority=priority,
        dry_run=dry_run,
    )
    render.changes(changes, as_json=as_json, dry_run=dry_run, noun="document")


@command()
def retry(
    ctx: typer.Context,
    items: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="ID...", help="Queue item ids.", show_default=False, autocompletion=complete.failed_items
        ),
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed item.")] = False,
    error: ErrorFilter = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Put failed items back to pending now, with a fresh attempt budget.

    A cancelled item given by its id goes back too. Earlier attempts stay in the history
    (docq show).

    **Examples**

          docq retry 41 42
          docq retry --all-failed
          docq retry --error "file missing" --dry-run
    """
    from docq.render import queue as render

    if not items and not all_failed and error is None:
        raise UsageError("nothing to retry: give item ids, --all-failed or --error TEXT")
    queue = Invocation.of(ctx).service(upgrade=not dry_run)
    changes = queue.retry(items or [], all_failed=all_failed, error=error, dry_run=dry_run)
    render.changes(changes, as_json=as_json, dry_run=dry_run)


@command()
def cancel(
    ctx: typer.Context,
    items: Annotated[
        list[int],
        typer.Argument(
            metavar="ID...",
            help="Queue item ids, as docq list shows them.",
            autocompletion=complete.active_items,
        ),
    ],
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Cancel pending items; running ones are stopped by their worker.

    A pending item is cancelled at once and its document goes back to its previous
    state. A running item is marked to stop: its worker kills the processing child at
    its next heartbeat and records it as cancelled.

    **Examples**

          docq cancel 17
          docq cancel 17 18 19 --dry-run
    """
    from docq.render import queue as render

    changes = Invocation.of(ctx).service(upgrade=not dry_run).cancel(items, dry_run=dry_run)
    render.changes(changes, as_json=as_json, dry_run=dry_run)


@command()
def purge(
    ctx: typer.Context,
    older_than: Annotated[
        float,
        typer.Option(
            "--older-than",
            parser=duration,
            metavar="DURATION",
            help="Items finished longer ago than this (e.g. 7d).",
        ),
    ],
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", "-s", metavar="STATUS", help="completed, failed, cancelled (default: all three)."
        ),
    ] = None,
    dry_run: DryRunOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="Give the freed space back to the file system.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete old finished items, their history, and documents left with none.

    Deletes in small batches, so workers are never held up for long. Asks before
    deleting on a terminal; elsewhere needs --yes.

    **Examples**

          docq purge --older-than 30d --dry-run
          docq purge --older-than 7d --status completed --yes --vacuum
    """
    import sys

    from docq.render import queue as render

    finished = statuses(status) or ("completed", "failed", "cancelled")
    queue = Invocation.of(ctx).service(upgrade=not dry_run)
    if yes and not dry_run:  # confirmed already: no need to count first
        removed = queue.purge(older_than=older_than, statuses=finished)
        if vacuum:
            queue.vacuum()
        render.purge_result(removed, as_json=as_json, dry_run=False)
        return
    planned = queue.purge(older_than=older_than, statuses=finished, dry_run=True)
    if dry_run or planned.items == 0:
        render.purge_result(planned, as_json=as_json, dry_run=dry_run)
        return
    if not yes:
        if not sys.stdin.isatty():
            render.purge_result(planned, as_json=False, dry_run=True, to_stderr=True)
            raise UsageError("purge deletes data: add --yes to confirm (or --dry-run to look first)")
        from rich.prompt import Confirm

        question = (
            f"Delete {planned.items} items, {planned.attempts} attempts and {planned.documents} documents?"
        )
        if not Confirm.ask(question, default=False):
            render.purge_result(planned, as_json=as_json, dry_run=True, cancelled=True)
            finish(EXIT_OK)
    removed = queue.purge(older_than=older_than, statuses=finished)
    if vacuum:
        queue.vacuum()
    render.purge_result(removed, as_json=as_json, dry_run=False)
