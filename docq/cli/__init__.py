"""docq's command line: parse, call one library function, render.

`docq.cli.app` holds the Typer app, the error boundary and the global options; each
other module adds one group of commands to it: `queue` (enqueue, reprocess, retry,
cancel, purge), `work`, `inspect` (stats, show, list, workers, export, top), `admin`
(doctor, migrate, copy, bench) and `serve`.
"""

from __future__ import annotations

from docq.cli.app import app

# Each module registers its commands on `app`; their order here is their order in --help.
# isort: off
from docq.cli import queue, work, inspect, admin, serve  # noqa: F401
# isort: on

__all__ = ["app", "run"]


def run() -> None:
    """The console script."""
    from docq.worker import reaper

    reaper.own_process()  # `docq work` may adopt what its commands leave behind
    app(prog_name="docq")
