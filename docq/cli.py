"""docq's command line: parse, call one library function, render.

Each command builds its `Settings`, calls the library and hands the result to
`docq.render` (or one of the ``render_*`` modules). Every error ends here, in `DocqGroup.main`: one
line ``docq: error: ...`` on stderr and the documented exit code (tracebacks only with
``--debug``). Library modules are imported inside commands, so ``docq --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from docq import __version__
from docq.config import Settings, parse_duration, parse_size
from docq.errors import EXIT_OK, EXIT_PARTIAL, DocqError, UsageError

if TYPE_CHECKING:
    from docq.queue import DocumentQueueService


class _Globals:
    """Global options, set by the app callback for the command that follows."""

    db: str | None = None
    lock_timeout: float = 30.0
    synchronous: str = "full"
    debug: bool = False


state = _Globals()


class DocqGroup(TyperGroup):
    """The error boundary: every failure becomes one line and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (docq list | head): that is the reader's choice, not an
            # error. Point stdout at /dev/null so the exit's final flush is quiet too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_OK) from None

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        from docq import render

        code: int
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else EXIT_OK
        except _CLICK_EXCEPTION as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `docq` alone: the help, as asked
                exc.show()
                code = EXIT_OK
            else:
                context = getattr(exc, "ctx", None)
                where = f" (see `{context.command_path} --help`)" if context is not None else ""
                render.error(f"{_lower_first(exc.format_message())}{where}")
                code = exc.exit_code
        except typer.Abort:
            render.error("aborted")
            code = 1
        except SystemExit as exc:  # Typer exits 1 itself when stdout is a closed pipe
            code = exc.code if isinstance(exc.code, int) else EXIT_OK
        except DocqError as exc:
            if state.debug:
                raise
            render.error(str(exc))
            code = exc.exit_code
        except KeyboardInterrupt:
            render.error("interrupted")
            code = 130
        except Exception as exc:  # the last resort: a bug must still end in one line
            if state.debug:
                raise
            render.error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


# Click's base exception, found through a public class so that this works whether Typer
# ships its own copy of Click or depends on the click package.
_CLICK_EXCEPTION: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


app = typer.Typer(
    cls=DocqGroup,
    name="docq",
    help="""A durable queue for batches of documents.

Queue files with **docq enqueue**, process them with **docq work** (from cron, or
**--loop** under systemd), and watch with **docq stats**. The queue lives in a
database, so nothing is lost when a process dies.

    docq enqueue -r ~/scans
    docq work
    docq stats""",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"docq {__version__}")
        raise typer.Exit()


def duration(value: str | float) -> float:
    """Typer parser for durations (``90``, ``90s``, ``10m``, ``2h``, ``7d``)."""
    try:
        return parse_duration(str(value))
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def size(value: str | int) -> int:
    """Typer parser for sizes (``512K``, ``256M``, ``1G``)."""
    try:
        return parse_size(str(value))
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.callback()
def main_options(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="DOCQ_DB",
            metavar="TARGET",
            help="Queue database: a file path (SQLite) or postgresql+psycopg://user@host/db. "
            "Default: docq.db in your data directory, shared by every shell and cron job.",
        ),
    ] = None,
    lock_timeout: Annotated[
        float,
        typer.Option(
            envvar="DOCQ_LOCK_TIMEOUT",
            parser=duration,
            metavar="DURATION",
            help="How long to wait for a busy database before giving up with exit code 6.",
        ),
    ] = "30s",  # type: ignore[assignment]
    synchronous: Annotated[
        str,
        typer.Option(
            envvar="DOCQ_SYNCHRONOUS",
            metavar="full|normal",
            help="SQLite durability. full: an acknowledged write survives power loss. "
            "normal: faster; the last writes may be lost on power loss (never on a crash).",
        ),
    ] = "full",
    debug: Annotated[
        bool, typer.Option("--debug", envvar="DOCQ_DEBUG", help="Show tracebacks instead of one-line errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options that apply to every command."""
    if synchronous.lower() not in ("full", "normal"):
        raise typer.BadParameter("use full or normal", param_hint="'--synchronous'")
    state.db = db
    state.lock_timeout = lock_timeout
    state.synchronous = synchronous.lower()
    state.debug = debug
    if debug:
        import logging

        logging.getLogger("docq").setLevel(logging.DEBUG)


def settings(**changes: Any) -> Settings:
    """Settings for this command: the global options plus ``changes`` (None = default)."""
    base = Settings(db=state.db, lock_timeout=state.lock_timeout, synchronous=state.synchronous)  # type: ignore[arg-type]
    return base.with_(**changes)


def service(config: Settings | None = None, *, create: bool = False) -> DocumentQueueService:
    """The queue service on this command's database. Only commands that add work
    ``create`` the database; the others refuse a queue that does not exist."""
    from docq.db import Database
    from docq.queue import DocumentQueueService

    config = config or settings()
    return DocumentQueueService(Database(config.db, config, create=create), settings=config)


def finish(code: int) -> NoReturn:
    """End the command with ``code``."""
    raise typer.Exit(code)


# --- enqueue -------------------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
PriorityOption = Annotated[
    int, typer.Option("--priority", "-p", help="Higher runs first; ties run in queue order.")
]
OperationOption = Annotated[
    str,
    typer.Option(
        "--operation",
        "-o",
        metavar="NAME",
        help="process (the built-in text extraction, default) or the name of your own operation.",
    ),
]


@app.command()
def enqueue(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Files, or directories with -r.", show_default=False)
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
        bool, typer.Option("--force", help="Queue files again even if unchanged since processed.")
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
    from docq import render_queue
    from docq.enqueue import enqueue_paths, read_path_list

    if null and from_file is None:
        raise UsageError("-0/--null only applies to --from")
    if not paths and from_file is None:
        raise UsageError(
            "nothing to enqueue: give files, directories with -r, or --from FILE (see docq enqueue --help)"
        )
    _check_operation_name(operation)
    inputs = _enqueue_inputs(paths or [], from_file, null, read_path_list)
    queue = service(create=True)
    with render_queue.EnqueueProgress(
        enabled=not as_json, known=None if from_file or recursive else len(paths or [])
    ) as progress:
        report = enqueue_paths(
            queue,
            inputs,
            recursive=recursive,
            operation=operation,
            priority=priority,
            force=force,
            max_attempts=max_attempts,
            on_progress=progress.update,
        )
    if as_json:
        from docq import render

        render.print_json(report.to_dict())
    else:
        render_queue.enqueue_report(report)
    finish(EXIT_PARTIAL if report.rejected else EXIT_OK)


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


def _check_operation_name(operation: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", operation):
        raise UsageError(f"invalid operation name {operation!r}: use letters, digits, '.', '_' or '-'")


# --- reprocess -----------------------------------------------------------------------


@app.command()
def reprocess(
    documents: Annotated[
        list[str] | None, typer.Argument(metavar="DOC...", help="Document ids or paths.", show_default=False)
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
    from docq import render_queue

    if not documents and not failed and not stale:
        raise UsageError("nothing to reprocess: give document ids or paths, --failed or --stale")
    _check_operation_name(operation)
    changes = service().reprocess(
        documents or [], operation=operation, failed=failed, stale=stale, priority=priority, dry_run=dry_run
    )
    render_queue.changes(changes, as_json=as_json, dry_run=dry_run, noun="document")


# --- work ----------------------------------------------------------------------------


@app.command(context_settings={"allow_interspersed_args": False})
def work(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[-- COMMAND [ARG...]]",
            help="For your own --operation: the command to run per document, without a shell. "
            "Placeholders {path} {dir} {id} {name} {stem} {suffix} {sha256} {attempt} "
            "are replaced inside arguments.",
            show_default=False,
        ),
    ] = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep waiting for work until SIGINT/SIGTERM (for systemd).")
    ] = False,
    poll_interval: Annotated[
        float,
        typer.Option(
            parser=duration,
            metavar="DURATION",
            envvar="DOCQ_POLL_INTERVAL",
            help="With --loop: how often to look for new work.",
        ),
    ] = "1s",  # type: ignore[assignment]
    max_items: Annotated[int | None, typer.Option(min=1, help="Stop after this many items.")] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option(
            parser=duration, metavar="DURATION", help="Stop claiming after this long, then finish up."
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency", "-c", min=1, envvar="DOCQ_CONCURRENCY", help="Documents processed in parallel."
        ),
    ] = 1,
    operation: Annotated[
        str,
        typer.Option(
            "--operation",
            "-o",
            metavar="NAME",
            help="Run only items of this operation (default: process and reprocess).",
        ),
    ] = "process",
    handler: Annotated[
        str | None,
        typer.Option(
            metavar="MODULE:FUNCTION", help="For your own --operation: a Python function taking the path."
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            parser=duration, metavar="DURATION", envvar="DOCQ_TIMEOUT", help="Kill an item that runs longer."
        ),
    ] = "300s",  # type: ignore[assignment]
    lease: Annotated[
        float,
        typer.Option(
            parser=duration,
            metavar="DURATION",
            envvar="DOCQ_LEASE",
            help="How long a claim lasts without a heartbeat; renewed every third of it while the item runs.",
        ),
    ] = "60s",  # type: ignore[assignment]
    grace: Annotated[
        float,
        typer.Option(
            parser=duration,
            metavar="DURATION",
            envvar="DOCQ_GRACE",
            help="On SIGINT/SIGTERM: time to let running items finish.",
        ),
    ] = "30s",  # type: ignore[assignment]
    memory_limit: Annotated[
        int | None,
        typer.Option(
            parser=size,
            metavar="SIZE",
            envvar="DOCQ_MEMORY_LIMIT",
            help="Address-space cap per processing child (default 1G for the built-in extraction; "
            "commands uncapped unless given; 0: none).",
        ),
    ] = None,
    max_attempts: Annotated[
        int, typer.Option(min=1, envvar="DOCQ_MAX_ATTEMPTS", help="Attempts before an item fails for good.")
    ] = 5,
    retry_delay: Annotated[
        float,
        typer.Option(
            parser=duration,
            metavar="DURATION",
            envvar="DOCQ_RETRY_DELAY",
            help="Backoff after the first failure; doubles each time.",
        ),
    ] = "30s",  # type: ignore[assignment]
    retry_max_delay: Annotated[
        float,
        typer.Option(
            parser=duration, metavar="DURATION", envvar="DOCQ_RETRY_MAX_DELAY", help="Longest backoff."
        ),
    ] = "1h",  # type: ignore[assignment]
    max_size: Annotated[
        int,
        typer.Option(
            parser=size, metavar="SIZE", envvar="DOCQ_MAX_SIZE", help="Refuse documents larger than this."
        ),
    ] = "256M",  # type: ignore[assignment]
    output_cap: Annotated[
        int,
        typer.Option(
            parser=size,
            metavar="SIZE",
            envvar="DOCQ_OUTPUT_CAP",
            help="Commands: stdout kept as the result, up to this much.",
        ),
    ] = "1M",  # type: ignore[assignment]
    permanent_exit_codes: Annotated[
        str | None,
        typer.Option(
            metavar="CODES",
            envvar="DOCQ_PERMANENT_EXIT_CODES",
            help="Commands: exit codes that fail an item at once, e.g. 2,3.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a summary as JSON on stdout when done.")
    ] = False,
) -> None:
    """Process due items, then exit (for cron); --loop keeps going (for systemd).

    Each document runs in a child process with a timeout and a memory cap: one bad
    document fails alone and never stops the worker. Failures are retried with
    exponential backoff. The first SIGINT/SIGTERM lets running items finish (up to
    --grace) and gives the rest back; a second stops at once.

    **Examples**

          docq work
          docq work --loop --concurrency 4
          docq work --operation ocr -- ocrmypdf --skip-text {path} {dir}/{stem}.ocr.pdf
    """
    from docq import render_queue
    from docq.worker import WorkOptions, process_document_queue

    _check_operation_name(operation)
    config = settings(
        poll_interval=poll_interval,
        concurrency=concurrency,
        timeout=timeout,
        lease=lease,
        grace=grace,
        max_attempts=max_attempts,
        retry_delay=retry_delay,
        retry_max_delay=retry_max_delay,
        max_size=max_size,
        output_cap=output_cap,
        permanent_exit_codes=_exit_codes(permanent_exit_codes),
    )
    if memory_limit is not None:
        from dataclasses import replace

        config = replace(config, memory_limit=memory_limit)
    options = WorkOptions(
        operation=operation,
        command=tuple(command or ()),
        handler=handler,
        loop=loop,
        max_items=max_items,
        max_seconds=max_seconds,
        quiet_children=not state.debug,
    )
    with render_queue.WorkDisplay(enabled=not as_json) as display:
        summary = process_document_queue(settings=config, options=options, on_event=display.event)
    if as_json:
        from docq import render

        render.print_json(summary.to_dict())
    else:
        render_queue.work_summary(summary)
    if summary.stopped_by is not None:
        finish(128 + summary.stopped_by)
    finish(EXIT_PARTIAL if summary.failed else EXIT_OK)


def _exit_codes(text: str | None) -> frozenset[int] | None:
    if not text:
        return None
    try:
        codes = frozenset(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise UsageError(
            f"--permanent-exit-codes {text!r}: use numbers separated by commas, e.g. 2,3"
        ) from None
    if any(not 1 <= code <= 255 for code in codes):
        raise UsageError("--permanent-exit-codes: exit codes are 1 to 255")
    if 75 in codes:
        raise UsageError("--permanent-exit-codes: 75 (EX_TEMPFAIL) always means retry later")
    return codes


# --- stats and show ------------------------------------------------------------------


@app.command()
def stats(
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
    if watch:
        from docq import dashboard

        dashboard.run(service(), interval=interval)
        return
    from docq import render_queue

    queue_stats = service().get_queue_stats()
    render_queue.stats(queue_stats, as_json=as_json)


@app.command()
def show(
    document: Annotated[
        str | None, typer.Argument(metavar="DOC", help="Document id or path.", show_default=False)
    ] = None,
    item: Annotated[
        int | None, typer.Option("--item", metavar="ID", help="Show a queue item instead.")
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
    from docq import render_show, views

    if (document is None) == (item is None):
        raise UsageError("give a document (id or path) or --item ID")
    db = service().db
    if item is not None:
        view, item_view = views.show_item(db, item)
        render_show.item(view, item_view, as_json=as_json)
        return
    assert document is not None
    render_show.document(views.show_document(db, document), as_json=as_json, full_text=text)


from docq import cli_admin  # noqa: E402,F401  (registers the admin commands on `app`)


def run() -> None:
    """The console script."""
    app(prog_name="docq")
