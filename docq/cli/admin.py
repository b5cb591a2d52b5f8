"""Commands that look after the queue itself: doctor, migrate, copy and bench."""

from __future__ import annotations

from typing import Annotated

import typer

from docq.cli.app import Invocation, JsonOption, command, finish
from docq.errors import EXIT_ERROR, EXIT_OK, UsageError
from docq.render import output


@command()
def doctor(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Check the database and this machine: one pass/warn/fail line each.

    Integrity, schema version, journal mode and synchronous setting, WAL size, expired
    leases, dead workers, network filesystems, and the extraction libraries. Exit 0 when
    nothing failed, 1 otherwise.

    **Examples**

          docq doctor
          docq --db /srv/queue.db doctor --json
    """
    from docq.doctor import run_checks
    from docq.render import admin as render

    run = Invocation.of(ctx)
    checks = run_checks(run.settings.db, run.settings)
    render.doctor(checks, as_json=as_json)
    finish(EXIT_ERROR if any(check.level == "fail" for check in checks) else EXIT_OK)


@command("copy")
def copy_(
    ctx: typer.Context,
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
    from docq.copy import copy_queue
    from docq.db import Database

    run = Invocation.of(ctx)
    source = run.service().db
    target = Database(to, run.settings_with(db=to))
    if target.target == source.target:
        raise UsageError("--to names the database being copied")
    with target:
        count = copy_queue(source, target)
    if as_json:
        output.print_json({"rows": count.rows, "in_progress": count.in_progress})
        return
    copied = ", ".join(f"{n} {table}" for table, n in count.rows.items())
    output.out().print(f"Copied {copied} to {target.target.display}.")
    if count.in_progress:
        output.warn(
            f"{output.plural(count.in_progress, 'item was', 'items were')} in progress: they are taken "
            "over in the new database once their leases expire (stop the workers before copying "
            "to avoid running them twice)"
        )


@command()
def bench(
    ctx: typer.Context,
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
    nemesis: Annotated[
        bool,
        typer.Option(
            "--nemesis",
            help="Instead: inject faults (kill -9, SIGSTOP past the lease) into workers running a "
            "command, drain, check that nothing was lost, duplicated, stuck or wrongly charged; "
            "a row per seed. Exit 1 if any run broke a promise.",
        ),
    ] = False,
    web: Annotated[
        bool,
        typer.Option(
            "--web",
            help="Instead: uploads to docq serve from 20 clients, beside a bare FastAPI endpoint "
            "(uploads/s, p50, p99). Needs the web extra.",
        ),
    ] = False,
    seeds: Annotated[int, typer.Option(min=1, help="With --nemesis: how many seeds (runs).")] = 5,
    first_seed: Annotated[int, typer.Option("--seed", help="With --nemesis: the first seed.")] = 1,
    as_json: JsonOption = False,
) -> None:
    """Measure docq on this machine, like pgbench or redis-benchmark.

    Runs on scratch databases and generated documents (removed afterwards): bulk
    enqueue, claim+complete against a bare sqlite3 baseline, cost as the queue grows,
    end-to-end work against huey (if installed) and PDF extraction against pypdfium2,
    start-up time and idle memory. With --db, the scratch databases go beside that file,
    or into a temporary schema of that PostgreSQL database (claim rates reported beside
    SQLite's). --synchronous applies.

    With --nemesis, a fault-injection run instead, about a minute a seed (--quick: about
    ten seconds, the size the test suite runs): see README, "Fault injection". With --web,
    uploads over HTTP to docq serve beside a bare FastAPI endpoint.

    **Examples**

          docq bench
          docq bench --quick --json
          docq --db postgresql+psycopg://postgres@localhost/test bench
          docq bench --nemesis --seeds 5
          docq bench --web
    """
    from docq import bench as benchmark
    from docq.render import admin as render

    run = Invocation.of(ctx)
    if nemesis:
        _nemesis(run, quick=quick, seeds=seeds, first_seed=first_seed, as_json=as_json)
    options = benchmark.BenchOptions(
        files=files, items=items, texts=texts, pdfs=pdfs, large=large, target=run.settings.db
    )
    if quick:
        options = options.quick()
    progress = render.bench_progress(enabled=not as_json)
    if web:
        report = benchmark.run_web(options, run.settings, progress=progress)
    else:
        report = benchmark.run(options, run.settings, progress=progress)
    if as_json:
        output.print_json(render.bench_dict(report))
    else:
        render.bench_report(report)


def _nemesis(run: Invocation, *, quick: bool, seeds: int, first_seed: int, as_json: bool) -> None:
    from docq.bench import nemesis
    from docq.render import admin as render

    plans = [nemesis.NemesisPlan(seed) for seed in range(first_seed, first_seed + seeds)]
    if not quick:
        plans = [plan.long() for plan in plans]
    reports = nemesis.run_seeds(plans, run.settings.db, progress=render.bench_progress(enabled=not as_json))
    if as_json:
        output.print_json([render.nemesis_dict(report) for report in reports])
    else:
        render.nemesis_table(reports)
    broken = sum(1 for report in reports if not report.ok)
    if broken:
        output.error(f"nemesis: {broken} of {len(reports)} runs broke a promise")
    finish(EXIT_ERROR if broken else EXIT_OK)


@command()
def migrate(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say which migrations would run; change nothing.")
    ] = False,
    as_json: JsonOption = False,
    to: Annotated[
        str | None, typer.Option("--to", hidden=True, help="Not an option of migrate: see docq copy --to.")
    ] = None,
) -> None:
    """Bring a queue made by an older docq up to this docq's schema.

    Every command that opens the queue upgrades it by itself (and says so on stderr);
    run this to do it at a time of your choosing, for example before starting workers
    of a new docq on several hosts. The migrations run in one transaction: all or
    nothing. A queue made by a newer docq is refused untouched (exit 5). To move a
    queue into another database, use docq copy.

    **Examples**

          docq migrate --dry-run
          docq migrate
          docq --db /srv/docq/queue.db migrate --json
    """
    from docq.render import admin as render
    from docq.upgrade import upgrade

    if to is not None:
        raise UsageError(
            "docq migrate upgrades a queue in place; to move it into another database use docq copy --to"
        )
    render.upgrade_result(upgrade(Invocation.of(ctx).settings, dry_run=dry_run), as_json=as_json)
