"""``docq`` and ``python -m docq``: the command line.

``docq --version`` answers before Typer is even imported, so scripts that ask it are
not slowed down by the rest of the CLI.
"""

from __future__ import annotations

import sys


def main() -> None:
    """The console script's entry point."""
    if sys.argv[1:] == ["--version"]:
        from docq import __version__

        print(f"docq {__version__}")
        return
    from docq.cli import run

    run()


if __name__ == "__main__":
    main()
