"""The backends docq keeps a queue in, one class each (SQLite, PostgreSQL), behind one
interface (`Backend`), and `Tx`, the cursor through which all of docq's SQL runs.

Only `docq.db` picks a backend; everything else asks the backend it is given.
"""

from __future__ import annotations

from docq.backends.base import Backend, BackendName, Check, SchemaMark, Sql, Tx

__all__ = ["Backend", "BackendName", "Check", "SchemaMark", "Sql", "Tx", "backend_for"]


def backend_for(name: BackendName) -> Backend:
    """The backend called ``name``."""
    if name == "sqlite":
        from docq.backends.sqlite import SqliteBackend

        return SqliteBackend()
    from docq.backends.postgres import PostgresBackend

    return PostgresBackend()
