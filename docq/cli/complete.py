"""Shell completion of ids from the queue (``docq show 12<TAB>``, ``docq retry <TAB>``).

Each function is a Typer ``autocompletion``: it gets the command line parsed so far and
the word being typed, and returns ``(value, help)`` pairs, newest first. The queue is the
one ``--db`` (or ``DOCQ_DB``) names on that command line. Completion must never get in
the way: any problem (no queue yet, a busy or unreadable database) completes nothing,
silently, within a second.
"""

from __future__ import annotations

import os
from typing import Any

from docq.config import Settings

COMPLETION_LOCK_TIMEOUT = 1.0  # seconds: a busy queue completes nothing rather than hang the shell


def documents(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """Document ids (``show``, ``reprocess``); a word that is not digits is left to the
    shell (a path)."""
    return _ids(ctx, incomplete, of_items=False)


def items(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """Any queue item's id (``show --item``)."""
    return _ids(ctx, incomplete, of_items=True)


def failed_items(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """Failed items' ids (``retry``)."""
    return _ids(ctx, incomplete, of_items=True, statuses=("failed",))


def active_items(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    """Pending and running items' ids (``cancel``)."""
    return _ids(ctx, incomplete, of_items=True, statuses=("pending", "in_progress"))


def _ids(
    ctx: Any, incomplete: str, *, of_items: bool, statuses: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    try:
        from docq.db import Database
        from docq.views import complete_ids

        root = ctx.find_root() if ctx is not None else None
        target = (root.params.get("db") if root is not None else None) or os.environ.get("DOCQ_DB") or None
        settings = Settings(db=target, lock_timeout=COMPLETION_LOCK_TIMEOUT)
        database = Database(target, settings, create=False, upgrade=False)
        try:
            found = complete_ids(database, incomplete, items=of_items, statuses=statuses)
        finally:
            database.close()
    except Exception:  # completion is a convenience: never a traceback in the shell
        return []
    return [(str(number), os.path.basename(path) or path) for number, path in found]
