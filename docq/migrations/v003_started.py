"""Schema 3: items claimed ahead are no longer charged an attempt until they start.

A claim used to count an attempt at once, so items a worker claimed ahead of its
children were charged when the worker died, and could fail without ever running.
``queue_items.started`` now says whether the current attempt began (the item was handed
to a child). Items in progress when the queue is upgraded were charged by their claim, so
they count as started.
"""

from __future__ import annotations

from docq.backends import Tx

NAME = "charge an attempt when an item starts, not when it is claimed (queue_items.started)"


def upgrade(tx: Tx) -> None:
    """Add ``started``, true for the items in progress."""
    tx.execute("ALTER TABLE queue_items ADD COLUMN started BOOLEAN DEFAULT FALSE NOT NULL")
    tx.execute("UPDATE queue_items SET started = TRUE WHERE status = 'in_progress'")
