"""``docq work``: process what is due, once (for cron) or in a loop (for systemd)."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Annotated, Any

import typer

from docq.cli.app import Invocation, command, duration, finish, size, with_memory_limit
from docq.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from docq.render import output
from docq.states import check_operation_name


@command(context_settings={"allow_interspersed_args": False})
def work(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- COMMAND [ARG...]",
            help="For your own --operation: the command to run per document, without a shell. "
            "Placeholders {path} {dir} {id} {name} {stem} {suffix} {sha256} {attempt} "
            "are replaced inside arguments.",
            show_default=False,
        ),
    ] = None,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep waiting for work until a stop signal (for systemd).")
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
            help="On SIGINT, SIGTERM or SIGHUP: time to let running items finish.",
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
    pass_env: Annotated[
        list[str] | None,
        typer.Option(
            "--pass-env",
            metavar="NAME",
            help="Commands: pass this environment variable although its name is kept from them "
            "(DOCQ_*, PG*). Repeat for several.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a summary as JSON on stdout when done.")
    ] = False,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            metavar="text|json",
            envvar="DOCQ_LOG_FORMAT",
            help="Log lines on stderr off a terminal: timestamped text, or one JSON object a line.",
        ),
    ] = "text",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Log errors only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more (debug messages).")] = False,
) -> None:
    """Process due items, then exit (for cron); --loop keeps going (for systemd).

    Each document runs in a child process with a timeout and a memory cap: one bad
    document fails alone and never stops the worker. Failures are retried with
    exponential backoff. The first SIGINT, SIGTERM or SIGHUP lets running items finish
    (up to --grace) and gives the rest back; a second stops at once. Children and
    commands ignore those signals: the worker stops them itself. Commands get the worker's
    environment less docq's own settings (DOCQ_*) and PostgreSQL's (PG*), which may hold
    passwords; --pass-env passes one anyway.

    **Examples**

          docq work
          docq work --loop --concurrency 4
          docq work --operation ocr -- ocrmypdf --skip-text {path} {dir}/{stem}.ocr.pdf
    """
    from docq.render import work as render
    from docq.worker import WorkOptions, process_document_queue

    check_operation_name(operation)
    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format {log_format!r}: use text or json")
    if quiet and verbose:
        raise UsageError("--quiet and --verbose: give one of them")
    run = Invocation.of(ctx)
    config = run.settings_with(
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
    config = with_memory_limit(config, memory_limit)
    options = WorkOptions(
        operation=operation,
        command=tuple(command or ()),
        handler=handler,
        loop=loop,
        max_items=max_items,
        max_seconds=max_seconds,
        quiet_children=not run.debug,
        pass_env=tuple(pass_env or ()),
    )
    from docq.worker import reaper

    reaper.become_subreaper()  # what commands leave outside their group dies with their item
    if verbose:
        output.log_to_stderr(debug=True)
    elif quiet:
        import logging

        logging.getLogger("docq").setLevel(logging.ERROR)
    if output.stderr_is_terminal() and log_format == "text":
        # A connection of its own counts the work left for the progress line, now and then,
        # giving up within a second on a busy database (the line then goes on without a total).
        counter = None if as_json else run.service(replace(config, lock_timeout=1.0), create=True)
        due = None if counter is None else functools.partial(counter.count_due, operation)
        with render.WorkDisplay(enabled=not as_json, quiet=quiet, due=due, limit=max_items) as display:
            summary = process_document_queue(settings=config, options=options, on_event=display.event)
        logged = False
    else:
        summary, logged = _logged_run(
            config, options, log_format, quiet=quiet, verbose=verbose, items=not as_json
        )
    if as_json:
        output.print_json(summary.to_dict())
    elif _summary_wanted(summary, logged):
        render.work_summary(summary)
    if summary.stopped_by is not None:
        finish(128 + summary.stopped_by)
    finish(EXIT_PARTIAL if summary.failed else EXIT_OK)


def _logged_run(
    config: Any, options: Any, log_format: str, *, quiet: bool, verbose: bool, items: bool
) -> tuple[Any, bool]:
    """Run the worker with its log on stderr (see `docq.render.worklog`); returns the
    summary and whether anything was logged. Without ``items`` (``--json``: the summary
    is the output) only docq's own warnings and errors are logged, as they happen."""
    import logging
    import os

    from docq import __version__
    from docq.db import resolve_target
    from docq.render import worklog
    from docq.worker import process_document_queue

    try:
        database = resolve_target(config.db).display
    except Exception:  # the run itself reports a bad target
        database = str(config.db)
    start = {
        "version": __version__,
        "database": database,
        "operation": options.operation,
        "concurrency": config.concurrency,
        "pid": os.getpid(),
    }
    threshold = logging.ERROR if quiet else logging.DEBUG if verbose else logging.INFO
    log = worklog.WorkLog(
        log_format="json" if log_format == "json" else "text",
        threshold=threshold,
        announce=options.loop and items,
        start=start if items else None,
    )
    router = worklog.route_library_messages(log)
    try:
        summary = process_document_queue(
            settings=config, options=options, on_event=log.item if items else None
        )
    finally:
        output.restore_diagnostics(router)
    log.stop(summary)
    return summary, log.started


def _summary_wanted(summary: Any, logged: bool) -> bool:
    """Whether to print the summary on stdout: not for a run that did nothing off a
    terminal (cron mails any output), nor when the log's stop line, in the same file
    (``>> work.log 2>&1``), has already said it."""
    from docq.render import worklog

    if output.out().is_terminal:
        return True
    if worklog.did_nothing(summary):
        return False
    return not (logged and worklog.same_file(1, 2))


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
