"""docq's command line run in-process with Typer's CliRunner, for the CLI tests.

CliRunner calls ``app`` the way the console script does, through the error boundary in
``DocqGroup.main``, and keeps stderr apart from stdout (``result.stdout`` /
``result.stderr``; ``result.output`` has both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from docq.cli import app

runner = CliRunner()

# Exit codes as documented in the README.
OK, ERROR, USAGE, PARTIAL, NOT_FOUND, DATABASE, BUSY = 0, 1, 2, 3, 4, 5, 6


def describe(result: Result) -> str:
    """What went wrong, for assertion messages."""
    return (
        f"exit {result.exit_code}\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}\n{result.exception!r}"
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON Lines: one object per ``\\n``-terminated line (a text may hold other line
    separators, such as U+2028, that `str.splitlines` would split on)."""
    assert text == "" or text.endswith("\n"), text[-100:]
    return [json.loads(line) for line in text.split("\n")[:-1]]


class Cli:
    """``docq --db DB ...`` in-process."""

    def __init__(self, db: str) -> None:
        self.db = db

    def __call__(
        self, *args: str, input: bytes | str | None = None, env: dict[str, Any] | None = None
    ) -> Result:
        return runner.invoke(app, ["--db", self.db, *args], input=input, env=env)

    def ok(self, *args: str, code: int = OK, **kwargs: Any) -> Result:
        """Run, and check the exit code and that nothing crashed."""
        result = self(*args, **kwargs)
        assert result.exit_code == code, describe(result)
        assert "Traceback" not in result.output
        return result

    def json(self, *args: str, code: int = OK, **kwargs: Any) -> Any:
        """Run with --json (before any ``--``) and parse stdout."""
        end = args.index("--") if "--" in args else len(args)
        return json.loads(self.ok(*args[:end], "--json", *args[end:], code=code, **kwargs).stdout)

    def export(self, *args: str) -> list[dict[str, Any]]:
        """``docq export ARGS`` as parsed JSON Lines."""
        return json_lines(self.ok("export", *args).stdout)

    def snapshot(self) -> Any:
        """Everything `stats` and `list` say about the queue (minus the clock-driven age)."""
        stats = self.json("stats")
        stats.pop("oldest_pending_age_seconds", None)
        return stats, self.json("list", "--limit", "10000")

    def item(self, item_id: int) -> dict[str, Any]:
        return self.json("show", "--item", str(item_id))

    def document(self, ref: str | int | Path) -> dict[str, Any]:
        return self.json("show", str(ref))


def zeros(**counts: int) -> dict[str, int]:
    """An operation's counts in ``stats --json``: every status, zeros included."""
    return {"pending": 0, "in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0, **counts}
