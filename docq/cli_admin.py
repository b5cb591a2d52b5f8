"""Administration commands: list, retry, cancel, purge, export, workers, doctor, top,
copy and bench. Registered on `docq.cli.app`; same rules: parse, call, render."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from docq.cli import JsonOption, app, duration, finish, service, settings, state
from docq.errors import EXIT_ERROR, EXIT_OK, UsageError

StatusOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        "-s",
        metavar="STATUS",
        help="pending, retrying, in_progress, completed, failed or cancelled (repeat, or comma-separate).",
    ),
]
OperationFilter = Annotated[
    str | None, typer.Option("--operation", "-o", metavar="NAME", help="Only this operation.")
]
ErrorFilter = Annotated[
    str | None, typer.Option("--error", metavar="TEXT", help="Only items whose last error contains TEXT.")
]
SinceFilter = Annotated[
    float | None,
    typer.Option(
        parser=duration, metavar="DURATION", help="Only items queued within this long (e.g. 2h, 7d)."
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]


def _statuses(values: list[str] | None) -> tuple[str, ...]:
    return tuple(part.strip() for value in values or [] for part in value.split(",") if part.strip())


def _item_filter(
    status: list[str] | None,
    operation: str | None,
    error: str | None,
    since: float | None,
    limit: int | None,
) -> object:
    from docq.views import ItemFilter

    return ItemFilter(
        statuses=_statuses(status),
        operation=operation,
        error=error,
        since=None if since is None else time.time() - since,
        limit=limit,
    )


@app.command("list")
def list_(
    status: StatusOption = None,
    operation: OperationFilter = None,
    error: ErrorFilter = None,
    since: SinceFilter = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many items.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List queue items, newest first.

    Filters combine; --status takes several values, and "retrying" picks the pending
    items that failed before.

    **Examples**

          docq list --status failed
          docq list --status retrying,pending --operation ocr
          docq list --error encrypted --since 1d --json
    """
    from docq import render_admin, views

    where = _item_filter(status, operation, error, since, limit)
    rows = views.list_items(service().db, where)  # type: ignore[arg-type]
    render_admin.item_list(rows, as_json=as_json)


@app.command()
def retry(
    items: Annotated[
        list[int] | None, typer.Argument(metavar="ID...", help="Queue item ids.", show_default=False)
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed item.")] = False,
    error: ErrorFilter = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Put failed items back to pending now, with a fresh attempt budget.

    Their earlier attempts stay in the history (docq show).

    **Examples**

          docq retry 41 42
          docq retry --all-failed
          docq retry --error "file missing" --dry-run
    """
    from docq import render_queue, views

    if not items and not all_failed and error is None:
        raise UsageError("nothing to retry: give item ids, --all-failed or --error TEXT")
    queue = service()
    ids = list(items or [])
    if all_failed or error is not None:
        where = views.ItemFilter(statuses=("failed",), error=error, limit=None)
        ids += [i for i in views.item_ids(queue.db, where) if i not in ids]
    changes = queue.retry(ids, dry_run=dry_run)
    render_queue.changes(changes, as_json=as_json, dry_run=dry_run)


@app.command()
def cancel(
    items: Annotated[
        list[int], typer.Argument(metavar="ID...", help="Queue item ids, as docq list shows them.")
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
    from docq import render_queue

    changes = service().cancel(items, dry_run=dry_run)
    render_queue.changes(changes, as_json=as_json, dry_run=dry_run)


@app.command()
def purge(
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

    from docq import render_admin

    statuses = _statuses(status) or ("completed", "failed", "cancelled")
    queue = service()
    if yes and not dry_run:  # confirmed already: no need to count first
        removed = queue.purge(older_than=older_than, statuses=statuses)
        if vacuum:
            queue.vacuum()
        render_admin.purge_result(removed, as_json=as_json, dry_run=False)
        return
    planned = queue.purge(older_than=older_than, statuses=statuses, dry_run=True)
    if dry_run or planned.items == 0:
        render_admin.purge_result(planned, as_json=as_json, dry_run=dry_run)
        return
    if not yes:
        if not sys.stdin.isatty():
            render_admin.purge_result(planned, as_json=False, dry_run=True, to_stderr=True)
            raise UsageError("purge deletes data: add --yes to confirm (or --dry-run to look first)")
        from rich.prompt import Confirm

        question = (
            f"Delete {planned.items} items, {planned.attempts} attempts and {planned.documents} documents?"
        )
        if not Confirm.ask(question, default=False):
            render_admin.purge_result(planned, as_json=as_json, dry_run=True, cancelled=True)
            finish(EXIT_OK)
    removed = queue.purge(older_than=older_than, statuses=statuses)
    if vacuum:
        queue.vacuum()
    render_admin.purge_result(removed, as_json=as_json, dry_run=False)


@app.command()
def export(
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", metavar="jsonl|csv", help="jsonl: everything; csv: metadata only."),
    ] = "jsonl",
    output: Annotated[
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
    from docq import render

    if fmt not in ("jsonl", "csv"):
        raise UsageError(f"unknown --format {fmt!r}: use jsonl or csv")
    where = _item_filter(status, operation, error, since, None)
    db = service().db
    if output is None and text_dir is not None and sys.stdout.isatty():
        stream = None  # only the text files: do not flood the terminal
    elif output is None:
        stream = sys.stdout
    else:
        try:
            stream = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise UsageError(f"cannot write --output {output}: {exc.strerror}") from None
    try:
        count = exporter.export(db, stream, fmt=fmt, where=where, text_dir=text_dir)  # type: ignore[arg-type]
    finally:
        if stream is not None and stream is not sys.stdout:
            stream.close()
    if output is not None or text_dir is not None:
        files = f" and {count.text_files} text files in {text_dir}" if text_dir else ""
        target = f" to {output}" if output else ""
        render.warn(f"exported {count.documents} documents{target}{files}")


@app.command()
def workers(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include workers that stopped.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List workers: host, pid, heartbeat, current items, items done; dead ones marked.

    A worker is dead when it stopped heartbeating for longer than its lease without
    signing off (killed, or its machine went away); its items are taken over when
    their leases expire.

    **Examples**

          docq workers
          docq workers --all --json
    """
    from docq import render_admin, views

    queue = service()
    rows = views.list_workers(queue.db, include_stopped=all_)
    render_admin.workers(rows, now=queue.now(), as_json=as_json)


@app.command()
def doctor(as_json: JsonOption = False) -> None:
    """Check the database and this machine: one pass/warn/fail line each.

    Integrity, schema version, journal mode and synchronous setting, WAL size, expired
    leases, dead workers, network filesystems, and the extraction libraries. Exit 0 when
    nothing failed, 1 otherwise.

    **Examples**

          docq doctor
          docq --db /srv/queue.db doctor --json
    """
    from docq import render_admin
    from docq.doctor import run_checks

    checks = run_checks(state.db, settings())
    render_admin.doctor(checks, as_json=as_json)
    finish(EXIT_ERROR if any(check.level == "fail" for check in checks) else EXIT_OK)


@app.command()
def top(
    interval: Annotated[
        float, typer.Option(parser=duration, metavar="DURATION", help="Refresh this often.")
    ] = "2s",  # type: ignore[assignment]
) -> None:
    """A live dashboard of the queue (the same as docq stats --watch).

    Counts, completions per minute, live workers and what they run, recent failures.
    Ctrl-C quits. Needs a terminal.

    **Examples**

          docq top
          docq top --interval 5s
    """
    from docq import dashboard

    dashboard.run(service(), interval=interval)


@app.command("copy")
def copy_(
    to: Annotated[
        str, typer.Option("--to", metavar="TARGET", help="The empty database to copy into (a path or URL).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Copy this queue, history included, into another (empty) database.

    The way to move from SQLite to PostgreSQL: stop the workers, copy, then point
    DOCQ_DB at the new database. Ids stay the same. All or nothing.

    **Examples**

          docq copy --to postgresql+psycopg://docq@db.internal/docq
          docq --db old.db copy --to new.db
    """
    from docq import render
    from docq.copy import copy_queue
    from docq.db import Database

    source = service().db
    target = Database(to, settings(db=to))
    if target.target == source.target:
        raise UsageError("--to names the database being copied")
    with target:
        count = copy_queue(source, target)
    if as_json:
        render.print_json({"rows": count.rows, "in_progress": count.in_progress})
        return
    copied = ", ".join(f"{n} {table}" for table, n in count.rows.items())
    render.out().print(f"Copied {copied} to {target.target.display}.")
    if count.in_progress:
        render.warn(
            f"{count.in_progress} item(s) were in progress: they are taken over in the new database once "
            "their leases expire (stop the workers before copying to avoid running them twice)"
        )


app.command("migrate", hidden=True)(copy_)


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes: a few seconds, every figure still reported.")
    ] = False,
    large: Annotated[
        bool, typer.Option("--large", help="Also measure claims with 1,000,000 items pending (minutes).")
    ] = False,
    files: Annotated[int, typer.Option(min=10, help="Files for the bulk enqueue.")] = 10_000,
    items: Annotated[int, typer.Option(min=10, help="Items per claim+complete run.")] = 5_000,
    texts: Annotated[int, typer.Option(min=10, help="Text files for the end-to-end run.")] = 5_000,
    pdfs: Annotated[int, typer.Option(min=2, help="PDFs (10 pages each) for the extraction run.")] = 150,
    as_json: JsonOption = False,
) -> None:
    """Measure docq on this machine, like pgbench or redis-benchmark.

    Runs on scratch databases and generated documents (removed afterwards): bulk
    enqueue, claim+complete against a bare sqlite3 baseline, cost as the queue grows,
    end-to-end work against huey (if installed) and PDF extraction against pypdfium2,
    start-up time and idle memory. With --db, the scratch databases go beside that file,
    or into a temporary schema of that PostgreSQL database (claim rates reported beside
    SQLite's). --synchronous applies.

    **Examples**

          docq bench
          docq bench --quick --json
          docq --db postgresql+psycopg://postgres@localhost/test bench
    """
    from docq import bench as benchmark
    from docq import render, render_admin

    options = benchmark.BenchOptions(
        files=files, items=items, texts=texts, pdfs=pdfs, large=large, target=state.db
    )
    if quick:
        options = options.quick()
    report = benchmark.run(options, settings(), progress=render_admin.bench_progress(enabled=not as_json))
    if as_json:
        render.print_json(render_admin.bench_dict(report))
    else:
        render_admin.bench_report(report)
