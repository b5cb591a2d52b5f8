"""How the administration commands answer: ``docq doctor``, ``copy``, ``migrate`` and ``bench``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from docq.render import output
from docq.render.output import escape

if TYPE_CHECKING:
    from docq.backends import Check
    from docq.bench import Report
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
