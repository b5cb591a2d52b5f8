"""Schema 3: items claimed ahead and never started are not charged an attempt.

A claim counts an attempt at once, so items a worker had claimed ahead of its children
were charged when the worker died, and could fail without ever running.
``queue_items.started`` now says whether the current attempt began (the item was handed
to a child); a lost lease on an item that never started gives its attempt back. Items in
progress when the queue is upgraded were leased by an older docq, which starts what it
claims, so they count as started.
"""

from __future__ import annotations

from docq.backends import Tx

NAME = "items claimed ahead and never started go back uncharged (queue_items.started)"


def upgrade(tx: Tx) -> None:
    """Add ``started``, true for the items in progress."""
    tx.execute("ALTER TABLE queue_items ADD COLUMN started BOOLEAN DEFAULT FALSE NOT NULL")
    tx.execute("UPDATE queue_items SET started = TRUE WHERE status = 'in_progress'")
