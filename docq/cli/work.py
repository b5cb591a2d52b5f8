"""``docq work``: process what is due, once (for cron) or in a loop (for systemd)."""

from __future__ import annotations

from typing import Annotated

import typer

from docq.cli.app import Invocation, app, duration, finish, size, with_memory_limit
from docq.errors import EXIT_OK, EXIT_PARTIAL, UsageError
from docq.render import output
from docq.states import check_operation_name


@app.command(context_settings={"allow_interspersed_args": False})
def work(
    ctx: typer.Context,
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
    with render.WorkDisplay(enabled=not as_json) as display:
        summary = process_document_queue(settings=config, options=options, on_event=display.event)
    if as_json:
        output.print_json(summary.to_dict())
    else:
        render.work_summary(summary)
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
