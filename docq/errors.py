"""docq's exceptions and exit codes.

The library raises these; the CLI catches `DocqError` once, prints
``docq: error: <message>`` and exits with the class's ``exit_code``. Each class's
docstring says when it is raised.
"""

from __future__ import annotations

# Exit codes, as documented in the README ("Exit codes").
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_NOT_FOUND = 4
EXIT_DATABASE = 5
EXIT_BUSY = 6


class DocqError(Exception):
    """Something went wrong that the user should read about in one line."""

    exit_code = EXIT_ERROR


class UsageError(DocqError):
    """The command line asked for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class NotFoundError(DocqError):
    """A document or queue item named on the command line does not exist."""

    exit_code = EXIT_NOT_FOUND


class DatabaseError(DocqError):
    """The database cannot be used: missing directory, read-only, corrupt,
    not a docq database, made by a newer docq, or its driver is not installed."""

    exit_code = EXIT_DATABASE


class DatabaseUnreachable(DatabaseError):
    """The database server could not be reached within the lock budget (it is
    restarting, or the network is down). Workers keep retrying; commands exit 5."""


class DatabaseReplaced(DatabaseError):
    """A file under an open connection was deleted or replaced on disk (an SQLite
    ``-wal`` removed by hand): what this process writes from then on is lost."""


class DatabaseBusy(DocqError):
    """Another process held the database's write lock past the lock budget.

    Nothing was changed; running the same command again is safe.
    """

    exit_code = EXIT_BUSY


class InvalidTransition(DocqError):
    """A queue item was asked to move to a state it cannot reach from its current one."""

    exit_code = EXIT_USAGE


# --- Errors raised while processing one document ---------------------------------
#
# Processing errors never reach the CLI's error boundary: the worker records them as
# the outcome of an attempt. `PermanentError` (and its subclasses) fail the item at
# once; any other exception is transient and retried under the retry policy.


class ProcessingError(Exception):
    """A document could not be processed; ``str(error)`` says why."""

    permanent = False


class TransientError(ProcessingError):
    """A passing failure (I/O error, file missing, timeout, crash): retry later."""

    permanent = False


class PermanentError(ProcessingError):
    """A failure that no retry can fix: the item fails at once."""

    permanent = True


class UnsupportedType(PermanentError):
    """The document's type is not one docq can extract."""


class CorruptDocument(PermanentError):
    """The document is damaged or not what its type says it is."""


class EncryptedDocument(PermanentError):
    """The document needs a password to read."""


class TooLarge(PermanentError):
    """The document is larger than the size cap."""
