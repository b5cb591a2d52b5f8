"""``docq migrate``: bring a queue made by an older docq up to this docq's schema.

Opening a queue does this by itself (see `docq.schema.ensure`); this is the explicit
form, and the one that can say what it would do without doing it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from docq.config import Settings
from docq.db import Database
from docq.migrations import Migration, after
from docq.schema import SCHEMA_VERSION, OutdatedSchema


@dataclass(frozen=True)
class Upgrade:
    """What `upgrade` did (or, in a dry run, would do) to the queue at ``where``."""

    where: str
    before: int
    after: int
    steps: list[Migration] = field(default_factory=list)
    dry_run: bool = False


def upgrade(settings: Settings, *, dry_run: bool = False) -> Upgrade:
    """Apply the migrations the queue at ``settings.db`` lacks, in one transaction (none
    with ``dry_run``). Raises `DatabaseError` if there is no queue there, if it is not
    docq's, or if a newer docq made it."""
    try:
        with Database(settings.db, settings, create=False, upgrade=not dry_run) as db:
            before = db.upgraded_from or SCHEMA_VERSION
            where = db.target.display
    except OutdatedSchema as exc:
        before = exc.version
        where = exc.where
    return Upgrade(where, before, SCHEMA_VERSION, list(after(before)), dry_run)
