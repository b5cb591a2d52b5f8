"""How results look: Rich tables for people, JSON for scripts, one-line diagnostics.

One module per group of commands (`queue`, `work`, `stats`, `show`, `listing`,
`dashboard`, `admin`), over the shared pieces in `output`. Data goes to stdout, progress
and diagnostics to stderr; colour, tables that fit the screen and progress bars only
where the stream is a terminal (Rich honours ``NO_COLOR``), elsewhere plain lines that
``grep`` and ``cut`` can read. Nothing here knows Typer or the database.
"""
