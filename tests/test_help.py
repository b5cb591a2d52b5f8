"""Every command documents itself: help text, an example, help on every option.

In the spirit of sqlite-utils' tests/test_docs.py: the commands are read from the
registered Typer app, so a command added later is checked without touching this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from docq.cli import app

runner = CliRunner()
GROUP = get_command(app)
COMMANDS = sorted(GROUP.commands)  # type: ignore[attr-defined]
VISIBLE = [name for name in COMMANDS if not GROUP.commands[name].hidden]  # type: ignore[attr-defined]


def command(name: str) -> object:
    return GROUP.commands[name]  # type: ignore[attr-defined]


def examples(text: str) -> list[str]:
    """The lines after an "Examples" heading that run docq."""
    lines = [line.strip(" │") for line in text.splitlines()]
    starts = [i for i, line in enumerate(lines) if re.sub(r"\[/?\w*\]|\*\*", "", line).strip() == "Examples"]
    assert starts, "no Examples section"
    return [line for line in lines[starts[0] + 1 :] if line.startswith("docq ")]


def test_the_commands_are_found() -> None:
    assert {"enqueue", "work", "stats", "show", "reprocess", "list", "retry", "cancel", "purge"} <= set(
        COMMANDS
    )


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_command_help_exits_0_without_touching_the_database(name: str, flag: str, tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    result = runner.invoke(app, ["--db", str(db), name, flag])
    assert result.exit_code == 0, result.output
    assert f"Usage: docq {name}" in result.stdout
    assert result.stderr == ""
    assert not db.exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_text_with_an_example(name: str) -> None:
    text = command(name).help  # type: ignore[attr-defined]
    assert text and text.strip(), f"docq {name} has no docstring"
    summary = text.strip().splitlines()[0]
    assert len(summary) > 10, f"docq {name}: summary line {summary!r}"
    found = examples(text)
    assert found, f"docq {name}: no example line starting with 'docq ' under Examples"
    if not command(name).hidden:  # type: ignore[attr-defined]
        assert any(re.search(rf"\b{re.escape(name)}\b", line) for line in found), found


@pytest.mark.parametrize("name", COMMANDS)
def test_rendered_help_shows_summary_and_examples(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    summary = " ".join(command(name).help.strip().splitlines()[0].split())  # type: ignore[attr-defined]
    assert summary in " ".join(result.stdout.split())
    found = examples(result.stdout)
    assert found, result.stdout
    # one example a line: help that runs them together ("docq a docq b") reads as one command
    assert all(line.count("docq ") == 1 for line in found), found


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_and_argument_has_help(name: str) -> None:
    params = command(name).params  # type: ignore[attr-defined]
    missing = [param.name for param in params if not (getattr(param, "help", None) or "").strip()]
    assert missing == [], f"docq {name}: no help for {missing}"


def test_every_global_option_has_help() -> None:
    missing = [param.name for param in GROUP.params if not (getattr(param, "help", None) or "").strip()]
    assert missing == []


def test_global_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    listed = {match.group(1) for match in re.finditer(r"^\W*([a-z][\w-]*)\s{2,}\S", result.stdout, re.M)}
    assert set(VISIBLE) <= listed, sorted(set(VISIBLE) - listed)
    hidden = set(COMMANDS) - set(VISIBLE)
    assert not hidden & listed


def test_no_arguments_shows_the_help() -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert "Usage: docq" in result.stdout
    assert all(name in result.stdout for name in VISIBLE)


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_help_shows_no_type_placeholders(name: str) -> None:
    """Typer shows ``--debug <bool>`` and ``--limit <int range>``, which read as a flag taking
    a value and as a type where a word belongs: flags show nothing, values a word (N, TEXT)."""
    result = runner.invoke(app, [*name.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    placeholders = re.findall(r"<[a-z][\w\[\], ]*>", result.stdout)
    assert placeholders == [], f"docq {name} --help shows {sorted(set(placeholders))}"
    for flag in ("--help", "--json", "--dry-run", "--debug"):
        for line in result.stdout.splitlines():
            if re.match(rf"│ {flag}\s", line):
                assert re.search(rf"{flag}\s+(-\w\s+)?\s{{2,}}[A-Z][a-z]", line), line


@pytest.mark.parametrize("name", VISIBLE)
def test_usage_lines_have_one_form(name: str) -> None:
    """``docq NAME [OPTIONS]``, then arguments by their metavar: a required one bare, an
    optional one in brackets, repeats with ``...`` once (not ``[ID...]...`` or ``{ID...}...``)."""
    result = runner.invoke(app, [name, "--help"], terminal_width=200)
    usage = next(line.strip(" │") for line in result.stdout.splitlines() if "Usage:" in line).strip()
    assert re.fullmatch(rf"Usage: docq {name} \[OPTIONS\]( \[?[-A-Z][^{{}}]*)?", usage), usage
    assert "...]..." not in usage and "{" not in usage and "[[" not in usage, usage
