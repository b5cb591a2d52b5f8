"""How the administration commands answer: ``docq doctor``, ``copy``, ``migrate`` and ``bench``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from docq.render import output
from docq.render.output import escape

if TYPE_CHECKING:
    from docq.backends import Check
    from docq.bench import Report
    from docq.bench.nemesis import NemesisReport
    from docq.upgrade import Upgrade


def doctor(checks: Sequence[Check], *, as_json: bool) -> None:
    """``docq doctor``: one line per check."""
    if as_json:
        output.print_json([{"check": c.name, "level": c.level, "detail": c.detail} for c in checks])
        return
    console = output.out()
    colours = {"pass": "green", "warn": "yellow", "fail": "red"}
    for check in checks:
        label = f"[{colours[check.level]}]{check.level:4}[/]" if console.is_terminal else f"{check.level:4}"
        detail = " ".join(check.detail.split())  # one line per check
        console.print(f"{label}  {check.name}: {escape(detail)}", soft_wrap=True)


def bench_progress(*, enabled: bool) -> Callable[[str], None]:
    """Where ``docq bench`` says what it is measuring: a line on stderr."""

    def say(message: str) -> None:
        if enabled:
            output.warn(f"bench: {message}")

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
    output.out().print(
        f"docq bench · Python {machine['python']} · SQLite {machine['sqlite']} · {machine['cpus']} CPUs · "
        f"{machine['platform']}"
    )
    grid = output.table("Measure", "Result", "Target", "")
    section = None
    for m in report.measures:
        if m.section != section:
            section = m.section
            grid.add_row(f"[bold]{escape(section)}[/]", "", "", "")
        value = "-" if m.value is None else _number(m.value, m.unit)
        verdict = {True: "[green]met[/]", False: "[red]missed[/]", None: ""}[m.ok]
        note = f" ({escape(m.note)})" if m.note else ""
        grid.add_row(f"  {escape(m.name)}", value + note, m.target, verdict)
    output.print_table(grid)


def nemesis_dict(report: NemesisReport) -> dict[str, Any]:
    """One run of ``docq bench --nemesis --json``."""
    return {
        "seed": report.seed,
        "backend": report.backend,
        "items": report.items,
        "faults": {kind: report.count(kind) for kind in ("kill-group", "kill-parent", "stop")},
        "seconds": round(report.seconds, 1),
        "completed": report.completed,
        "lost": report.lost,
        "stuck": report.stuck,
        "duplicate_completions": report.duplicate_completions,
        "runs": report.runs,
        "unexplained_runs": report.unexplained_runs,
        "unrecorded_runs": report.unrecorded_runs,
        "charged_never_ran": report.charged_never_ran,
        "charge_allowance": report.charge_allowance,
        "orphans": report.orphans,
        "database_locked": report.locked,
        "tracebacks": report.tracebacks,
        "ok": report.ok,
        "problems": report.problems(),
    }


def nemesis_table(reports: Sequence[NemesisReport]) -> None:
    """``docq bench --nemesis``: a row per seed, then each broken promise."""
    grid = output.table(
        "Seed", "Backend", "Items", "Kills -9 group/parent", "Stops", "Runs", "Lost", "Stuck",
        "Dup. done", "Charged, never ran", "Orphans", "Locked/Tracebacks", "",
    )  # fmt: skip
    for r in reports:
        grid.add_row(
            str(r.seed),
            r.backend,
            str(r.items),
            f"{r.count('kill-group')}/{r.count('kill-parent')}",
            str(r.count("stop")),
            f"{r.runs} ({r.runs - r.items} again)",
            str(r.lost),
            str(r.stuck),
            str(r.duplicate_completions),
            f"{r.charged_never_ran} (≤ {r.charge_allowance})",
            str(len(r.orphans)),
            f"{r.locked}/{r.tracebacks}",
            "[green]ok[/]" if r.ok else "[red]FAILED[/]",
        )
    output.print_table(grid)
    for r in reports:
        for problem in r.problems():
            output.warn(f"seed {r.seed}: {problem}")


def _number(value: float, unit: str) -> str:
    if unit in ("%", "x"):
        return f"{value:.1f}{'' if unit == '%' else ' '}{unit}" if unit == "%" else f"{value:.2f}x"
    if value >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:,.1f} {unit}"


def upgrade_result(result: Upgrade, *, as_json: bool) -> None:
    """``docq migrate``: what was (or would be) applied."""
    steps = [{"version": step.version, "name": step.name} for step in result.steps]
    if as_json:
        output.print_json(
            {
                "database": result.where,
                "from": result.before,
                "to": result.after,
                "dry_run": result.dry_run,
                "migrations": steps,
            }
        )
        return
    console = output.out()
    if not result.steps:
        console.print(f"The queue at {escape(result.where)} has schema {result.after}: up to date.")
        return
    verb = "Would upgrade" if result.dry_run else "Upgraded"
    console.print(
        f"{verb} the queue at {escape(result.where)} from schema {result.before} to {result.after}:"
    )
    for step in steps:
        console.print(f"  {step['version']}  {escape(str(step['name']))}")
    if result.dry_run:
        output.warn("dry run: nothing was changed")
