"""Every SQL statement docq runs, named, each with a line on what it does or guarantees.

One text serves SQLite and PostgreSQL: parameters are ``:name``; a list parameter
expands in place (``IN (:ids)``); ``:now`` is the caller's clock on SQLite and the
server's on PostgreSQL (see `docq.backends`). A statement that must differ is a variant,
``{"sqlite": ..., "postgresql": ...}``, and `docq.backends.Tx` picks the text. Only
`docq.queue.DocumentQueueService` runs the statements that change a status.

Not here: the ORM's ``select()`` queries (all in `docq.views`), each backend's own
housekeeping (pragmas, locks, notifications, in `docq.backends`), the schema's DDL (the
tables from `docq.models`, SQLite's counter triggers in `docq.schema`), and the frozen SQL
of the numbered migrations (`docq.migrations`), which must never change.
"""

from __future__ import annotations

from collections.abc import Sequence


def sqlite_only(sql: str) -> dict[str, str]:
    """A statement only SQLite runs (PostgreSQL runs nothing in its place)."""
    return {"sqlite": sql, "postgresql": ""}


# --- claim ---------------------------------------------------------------------------

# Expired leases on items that never started (claimed ahead, still waiting for a child
# when their worker died): back to the queue at once with their claim's charge taken
# back, as if never claimed; cancelled if their cancel was requested.
SWEEP_UNSTARTED = """
UPDATE queue_items SET
    status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    attempts = attempts - 1, next_run_at = :now, lease_expires_at = NULL
WHERE status = 'in_progress' AND NOT started AND lease_expires_at < :now
RETURNING id, document_id, status
"""

# Expired leases on items that started: the worker died, hung or lost the database. The
# lost attempt counts, so a document that kills its worker every time ends failed instead
# of looping; an item whose cancel was requested ends cancelled. Both sweeps run inside
# every claim transaction, so no separate sweeper has to be alive for work to move on.
SWEEP_EXPIRED = """
UPDATE queue_items SET
    status = CASE
        WHEN cancel_requested THEN 'cancelled'
        WHEN attempts >= COALESCE(max_attempts, :max_attempts) THEN 'failed'
        ELSE 'pending' END,
    next_run_at = :now,
    lease_expires_at = NULL,
    finished_at = CASE
        WHEN cancel_requested OR attempts >= COALESCE(max_attempts, :max_attempts) THEN :now END,
    last_error = CASE WHEN cancel_requested THEN last_error ELSE :error END
WHERE status = 'in_progress' AND started AND lease_expires_at < :now
RETURNING id, document_id, attempts, worker_id, started_at, status
"""

# The claim itself: one statement takes the next due items of one lane, highest
# priority first, then oldest. SQLite runs it under BEGIN IMMEDIATE (one writer at a
# time); PostgreSQL locks the rows it picks and skips rows another worker holds. The
# claim charges the attempt; a worker that claims ahead of its children claims with
# `started` false and marks items started (`START`) as it hands them over, so a claim it
# never got to run is given back uncharged (`SWEEP_UNSTARTED`, `RELEASE`).
CLAIM = {
    "sqlite": """
UPDATE queue_items SET
    status = 'in_progress', attempts = attempts + 1, started = :started, lease_token = :token,
    worker_id = :worker, started_at = :now, lease_expires_at = :now + :lease, finished_at = NULL
WHERE id IN (
    SELECT id FROM queue_items
    WHERE status = 'pending' AND lane = :lane AND next_run_at <= :now
    ORDER BY priority DESC, id LIMIT :limit)
RETURNING id, document_id, operation, attempts, max_attempts, priority, started_at,
    (SELECT path FROM documents WHERE documents.id = document_id),
    (SELECT sha256 FROM documents WHERE documents.id = document_id)
""",
    "postgresql": """
WITH due AS (
    SELECT id FROM queue_items
    WHERE status = 'pending' AND lane = :lane AND next_run_at <= :now
    ORDER BY priority DESC, id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE queue_items AS q SET
    status = 'in_progress', attempts = q.attempts + 1, started = :started, lease_token = :token,
    worker_id = :worker, started_at = :now, lease_expires_at = :now + :lease, finished_at = NULL
FROM due WHERE q.id = due.id
RETURNING q.id, q.document_id, q.operation, q.attempts, q.max_attempts, q.priority, q.started_at,
    (SELECT path FROM documents WHERE documents.id = q.document_id),
    (SELECT sha256 FROM documents WHERE documents.id = q.document_id)
""",
}

# Compare-and-set of one item (the seed API's mark_in_progress): exactly one caller
# can move a given due item from pending to in_progress; it starts at once.
CLAIM_ONE = """
UPDATE queue_items SET
    status = 'in_progress', started = TRUE, attempts = attempts + 1, lease_token = :token,
    worker_id = :worker, started_at = :now, lease_expires_at = :now + :lease, finished_at = NULL
WHERE id = :id AND status = 'pending' AND next_run_at <= :now
RETURNING attempts, started_at, lease_expires_at
"""

# Items handed to a child: from now on a lost lease charges the attempt. Fenced by the
# lease, and idempotent (an item a crashed child gave back is handed over again): returns
# the ids this worker still holds.
START = """
UPDATE queue_items SET started = TRUE
WHERE lease_token = :token AND status = 'in_progress' AND id IN (:ids)
RETURNING id
"""

SET_DOCUMENT_STATUS = "UPDATE documents SET status = :status, updated_at = :now WHERE id = :id"

# --- leases --------------------------------------------------------------------------

# Heartbeat: extends only the leases this worker still holds (token match), so it can
# never revive an item another worker has taken over since.
RENEW_LEASES = """
UPDATE queue_items SET lease_expires_at = :now + :lease
WHERE lease_token = :token AND status = 'in_progress'
"""

CANCEL_REQUESTS = """
SELECT id FROM queue_items
WHERE lease_token = :token AND status = 'in_progress' AND cancel_requested
"""

LEASE_STATE = "SELECT status, lease_token FROM queue_items WHERE id = :id"

# --- finishing an attempt (all fenced by the lease token) ---------------------------

# Completion is accepted only from the worker that still holds the lease, so a late
# worker can never overwrite the result of the one that took over: exactly-once
# completion. One statement completes a group of items claimed under one token and
# returns the ids it completed, i.e. those whose lease was still held. The token stays
# on the row, so a retried commit recognises its own work.
COMPLETE_MANY = """
UPDATE queue_items SET status = 'completed', finished_at = :now, lease_expires_at = NULL,
    last_error = NULL, cancel_requested = FALSE
WHERE lease_token = :token AND status = 'in_progress' AND id IN (:ids)
RETURNING id
"""

# A failed attempt with attempts left goes back to pending, due after the backoff delay
# (unless its cancel was requested meanwhile: then it ends cancelled).
RETRY_LATER = """
UPDATE queue_items SET
    status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    next_run_at = :now + :delay, lease_expires_at = NULL, last_error = :error
WHERE id = :id AND lease_token = :token AND status = 'in_progress'
RETURNING status
"""

# A permanent error, or the last attempt failed: the item fails for good.
FAIL = """
UPDATE queue_items SET status = 'failed', finished_at = :now, lease_expires_at = NULL,
    last_error = :error
WHERE id = :id AND lease_token = :token AND status = 'in_progress'
"""

# The worker stopped (shutdown, or the item was cancelled while running).
CANCEL_RUNNING = """
UPDATE queue_items SET status = 'cancelled', finished_at = :now, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND status = 'in_progress'
"""

# Graceful shutdown gives an unfinished item back at once; the attempt does not count.
# An item whose cancel was requested is cancelled instead of going back. Returns the
# new status and whether the item had started (only then is the release recorded).
RELEASE = """
UPDATE queue_items SET
    status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    attempts = attempts - 1, next_run_at = :now, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND status = 'in_progress'
RETURNING status, started
"""

RECORD_ATTEMPT = """
INSERT INTO attempts (item_id, attempt, worker_id, started_at, finished_at, outcome, error, seconds)
VALUES (:item_id, :attempt, :worker, :started_at, :now, :outcome, :error, :seconds)
"""

STORE_EXTRACTION = """
UPDATE documents SET status = 'processed', text = :text, metadata_json = :metadata,
    sha256 = COALESCE(:sha256, sha256), size = COALESCE(:size, size),
    mime_type = COALESCE(:mime_type, mime_type), extractor = :extractor,
    processed_at = :now, updated_at = :now
WHERE id = :id
"""

STORE_OUTPUT = """
INSERT INTO item_outputs (item_id, text, note) VALUES (:item_id, :text, :note)
ON CONFLICT (item_id) DO UPDATE SET text = excluded.text, note = excluded.note
"""

# A document's status mirrors its most recent item that was not cancelled; cancelling
# an item puts the document back where that item found it.
LATEST_LIVE_ITEM_STATUS = """
SELECT status FROM queue_items
WHERE document_id = :id AND status <> 'cancelled' ORDER BY id DESC LIMIT 1
"""

# --- enqueue -------------------------------------------------------------------------

FIND_DOCUMENT = "SELECT id FROM documents WHERE path = :path"

ACTIVE_ITEM = """
SELECT id FROM queue_items
WHERE document_id = :document_id AND lane = :lane AND status IN ('pending', 'in_progress')
LIMIT 1
"""

# "Unchanged" compares with this: the content of the lane's latest completed item.
# How the lane last finished with the document (completed or failed for good), and for
# which content: the same content is not queued again unless forced.
LAST_FINISHED_CONTENT = """
SELECT status, sha256 FROM queue_items
WHERE document_id = :document_id AND lane = :lane AND status IN ('completed', 'failed')
ORDER BY id DESC LIMIT 1
"""

# Registers a new path; returns nothing if the path is known already (one index probe
# for the common case of new files, instead of a lookup and then an insert).
INSERT_DOCUMENT = """
INSERT INTO documents (path, size, sha256, mime_type, status, created_at, updated_at)
VALUES (:path, :size, :sha256, :mime_type, 'pending', :now, :now)
ON CONFLICT (path) DO NOTHING
RETURNING id
"""

UPDATE_DOCUMENT_FACTS = """
UPDATE documents SET size = :size, sha256 = :sha256, mime_type = :mime_type, status = 'pending',
    updated_at = :now
WHERE id = :document_id
"""

INSERT_ITEM = """
INSERT INTO queue_items (document_id, operation, priority, status, attempts, max_attempts, sha256,
    next_run_at, cancel_requested, created_at)
VALUES (:document_id, :operation, :priority, 'pending', 0, :max_attempts, :sha256, :now, FALSE, :now)
RETURNING id
"""

# --- workers -------------------------------------------------------------------------

REGISTER_WORKER = """
INSERT INTO workers (id, host, pid, lane, lease_seconds, started_at, heartbeat_at, items_done)
VALUES (:id, :host, :pid, :lane, :lease, :now, :now, 0)
"""

WORKER_HEARTBEAT = """
UPDATE workers SET heartbeat_at = :now, current_items = :current, items_done = :done
WHERE id = :id
"""

# What a worker runs and has done, written inside the transactions it makes anyway (results,
# starts) whenever either changed, so that `docq top` and `workers` see an item start and end
# when it happens, not at the next heartbeat, at no extra commit.
WORKER_PROGRESS = "UPDATE workers SET current_items = :current, items_done = :done WHERE id = :id"

WORKER_STOPPED = """
UPDATE workers SET heartbeat_at = :now, stopped_at = :now, current_items = NULL, items_done = :done
WHERE id = :id
"""

# --- the seed API's reads ------------------------------------------------------------

ITEM = "SELECT * FROM queue_items WHERE id = :id"

# What get_pending_items shows: due items of one lane in claim order; nothing is claimed.
DUE_ITEMS = """
SELECT * FROM queue_items WHERE status = 'pending' AND lane = :lane AND next_run_at <= :now
ORDER BY priority DESC, id LIMIT :limit
"""

# How long until the next pending item of a lane is due (negative: due already).
NEXT_DUE_IN = "SELECT min(next_run_at) - :now FROM queue_items WHERE status = 'pending' AND lane = :lane"

# The work of a lane left to do now: due pending items and leased ones (for the progress
# of `docq work` on a terminal; run at its start and now and then, never per item).
COUNT_DUE = """
SELECT count(*) FROM queue_items
WHERE lane = :lane AND (status = 'in_progress' OR (status = 'pending' AND next_run_at <= :now))
"""

DOCUMENT_SHA256 = "SELECT sha256 FROM documents WHERE id = :id"

# --- reprocess, retry, cancel ----------------------------------------------------------

DOCUMENT_EXISTS = "SELECT id FROM documents WHERE id = :id"

DOCUMENT_PATH_AND_SHA256 = "SELECT path, sha256 FROM documents WHERE id = :id"

# Documents whose latest item failed for good (reprocess --failed).
FAILED_DOCUMENTS = "SELECT id FROM documents WHERE status = 'failed' ORDER BY id"

# Processed documents with the extractor that read them (reprocess --stale compares).
PROCESSED_EXTRACTORS = "SELECT id, mime_type, extractor FROM documents WHERE status = 'processed' ORDER BY id"

# Failed items, oldest first, whose last error contains :pattern (retry --all-failed, --error);
# :pattern is a LIKE pattern with \ as its escape character.
FAILED_ITEMS = r"""
SELECT id FROM queue_items WHERE status = 'failed' AND COALESCE(last_error, '') LIKE :pattern ESCAPE '\'
ORDER BY id
"""

ITEM_STATE = """
SELECT i.id, i.document_id, i.status, i.operation, d.path
FROM queue_items i JOIN documents d ON d.id = i.document_id WHERE i.id = :id
"""

# A failed item starts over: due now, with a fresh attempt budget. Its earlier
# attempts stay in the history.
RETRY = """
UPDATE queue_items SET status = 'pending', attempts = 0, next_run_at = :now, finished_at = NULL,
    lease_expires_at = NULL, cancel_requested = FALSE
WHERE id = :id AND status IN ('failed', 'cancelled')
"""

CANCEL_PENDING = """
UPDATE queue_items SET status = 'cancelled', finished_at = :now
WHERE id = :id AND status = 'pending'
"""

# A running item cannot be stopped from here: flag it, and its worker kills the child
# and records the cancellation at its next heartbeat (or the expiry sweep does).
REQUEST_CANCEL = """
UPDATE queue_items SET cancel_requested = TRUE WHERE id = :id AND status = 'in_progress'
"""

# --- purge ---------------------------------------------------------------------------

# Finished items in :statuses that finished before :before, oldest first, by the
# finished-time index; a batch at a time, or (dry run) all of them.
PURGEABLE = """
SELECT id FROM queue_items WHERE finished_at < :before AND status IN (:statuses)
ORDER BY finished_at LIMIT :limit
"""
ALL_PURGEABLE = """
SELECT id FROM queue_items WHERE finished_at < :before AND status IN (:statuses) ORDER BY finished_at
"""

# Of the selected items, those still finished and old: a worker or a retry may have
# touched one since it was selected.
STILL_PURGEABLE = """
SELECT id FROM queue_items WHERE id IN (:ids) AND finished_at < :before AND status IN (:statuses)
"""

COUNT_ATTEMPTS_OF = "SELECT count(*) FROM attempts WHERE item_id IN (:ids)"
DOCUMENTS_OF = "SELECT document_id FROM queue_items WHERE id IN (:ids)"
ITEMS_PER_DOCUMENT = """
SELECT document_id, count(*) FROM queue_items WHERE document_id IN (:ids) GROUP BY document_id
"""
DELETE_ATTEMPTS_OF = "DELETE FROM attempts WHERE item_id IN (:ids)"
DELETE_OUTPUTS_OF = "DELETE FROM item_outputs WHERE item_id IN (:ids)"
DELETE_ITEMS = "DELETE FROM queue_items WHERE id IN (:ids)"

# Documents left with no items go with them; a document that gained an item meanwhile stays.
DELETE_EMPTY_DOCUMENTS = """
DELETE FROM documents WHERE id IN (:ids)
    AND NOT EXISTS (SELECT 1 FROM queue_items WHERE queue_items.document_id = documents.id)
"""

# --- stats -----------------------------------------------------------------------------

# Items per (operation, status). SQLite reads the counters its triggers keep (see
# docq.schema); PostgreSQL counts, since a counter row would serialise every worker.
COUNTS = {
    "sqlite": "SELECT operation, status, n FROM queue_counts WHERE n <> 0",
    "postgresql": "SELECT operation, status, count(*) FROM queue_items GROUP BY operation, status",
}

# The same, counted from the items themselves (doctor holds the counters against it).
COUNT_ITEMS = "SELECT operation, status, count(*) FROM queue_items GROUP BY operation, status"

# Pending items that failed before, and when the next is due. Without statistics,
# SQLite's planner may pick another index over pending items and count every one of
# them; the partial index holds just these rows. PostgreSQL plans this well by itself.
RETRYING = {
    "sqlite": """SELECT count(*), min(next_run_at) FROM queue_items INDEXED BY ix_items_retrying
                 WHERE status = 'pending' AND attempts > 0""",
    "postgresql": """SELECT count(*), min(next_run_at) FROM queue_items
                     WHERE status = 'pending' AND attempts > 0""",
}

# When the oldest pending item was queued (one probe of the partial index of pending items).
OLDEST_PENDING = {
    "sqlite": """SELECT created_at FROM queue_items INDEXED BY ix_items_pending
                 WHERE status = 'pending' ORDER BY id LIMIT 1""",
    "postgresql": "SELECT created_at FROM queue_items WHERE status = 'pending' ORDER BY id LIMIT 1",
}

RECENT = """
SELECT count(*), sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END)
FROM queue_items WHERE finished_at >= :since
"""

# Processing time as workers measured it (not counting time an item waited in a worker).
MEAN_SECONDS = """
SELECT avg(seconds) FROM attempts WHERE finished_at >= :since AND outcome = 'completed'
"""

# Who holds the in-progress items, the lease that runs out first first.
HOLDERS = """
SELECT i.id, i.operation, i.worker_id, i.started_at, i.lease_expires_at, d.path, i.started
FROM queue_items i JOIN documents d ON d.id = i.document_id
WHERE i.status = 'in_progress' ORDER BY i.lease_expires_at LIMIT :limit
"""

# Items a worker holds but has not handed to a child yet (they run later, or go back
# uncharged if it dies).
CLAIMED_AHEAD = "SELECT count(*) FROM queue_items WHERE status = 'in_progress' AND NOT started"

# --- the live dashboard ----------------------------------------------------------------

# Completions per minute over the last :window seconds (minute 0 is the current one).
THROUGHPUT = """
SELECT CAST(:now - finished_at AS INTEGER) / 60, status, count(*) FROM queue_items
WHERE finished_at >= :now - :window AND status IN ('completed', 'failed')
GROUP BY 1, 2
"""

# Workers that signed on and whose heartbeat is younger than their lease.
LIVE_WORKERS = """
SELECT id, current_items, items_done, heartbeat_at, lease_seconds FROM workers
WHERE stopped_at IS NULL AND heartbeat_at >= :now - lease_seconds
ORDER BY started_at
"""

ITEM_PATH = "SELECT d.path FROM queue_items i JOIN documents d ON d.id = i.document_id WHERE i.id = :id"

# The latest failed or abandoned attempts, newest first.
RECENT_FAILURES = """
SELECT a.item_id, a.finished_at, a.outcome, a.error, d.path
FROM attempts a JOIN queue_items i ON i.id = a.item_id JOIN documents d ON d.id = i.document_id
WHERE a.outcome IN ('failed', 'abandoned')
ORDER BY a.id DESC LIMIT :limit
"""

# --- doctor ----------------------------------------------------------------------------

EXPIRED_LEASES = """
SELECT id, worker_id, lease_expires_at FROM queue_items
WHERE status = 'in_progress' AND lease_expires_at < :now ORDER BY lease_expires_at
"""

DEAD_WORKERS = """
SELECT id, heartbeat_at FROM workers WHERE stopped_at IS NULL AND heartbeat_at < :now - lease_seconds
"""

# --- copy --------------------------------------------------------------------------------

COUNT_IN_PROGRESS = "SELECT count(*) FROM queue_items WHERE status = 'in_progress'"
HOLDS_A_QUEUE = "SELECT EXISTS (SELECT 1 FROM documents) OR EXISTS (SELECT 1 FROM queue_items)"


def copy_page(table: str, columns: Sequence[str], key: str, *, first: bool) -> str:
    """The first page of ``table``'s rows, or the next after ``:after``, in key order."""
    after = "" if first else f"WHERE {key} > :after "
    return f"SELECT {', '.join(columns)} FROM {table} {after}ORDER BY {key} LIMIT :limit"


def copy_insert(table: str, columns: Sequence[str]) -> str:
    """One copied row of ``table``, with its id as it was."""
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


def largest_id(table: str) -> str:
    """The largest id in ``table`` (0 when empty)."""
    return f"SELECT COALESCE(max(id), 0) FROM {table}"


# The last id a table's counter handed out (ids are never reused, even those purged).
ID_COUNTER = {
    "sqlite": "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = :table), 0)",
    "postgresql": """SELECT COALESCE(
        pg_sequence_last_value(pg_get_serial_sequence(:table, 'id')::regclass), 0)""",
}

# Move a table's id counter on to hand out :next next, never back.
ADD_ID_COUNTER = sqlite_only(
    """INSERT INTO sqlite_sequence (name, seq) SELECT :table, 0
       WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = :table)"""
)
SET_ID_COUNTER = {
    "sqlite": "UPDATE sqlite_sequence SET seq = max(seq, :next - 1) WHERE name = :table",
    "postgresql": """SELECT setval(pg_get_serial_sequence(:table, 'id'), GREATEST(:next,
        COALESCE(pg_sequence_last_value(pg_get_serial_sequence(:table, 'id')::regclass), 0) + 1), false)""",
}

# --- schema ------------------------------------------------------------------------------

SET_SCHEMA_VERSION = """
INSERT INTO docq_meta (key, value) VALUES ('schema_version', :version)
ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""

RECORD_MIGRATION = "INSERT INTO docq_migrations (version, name, applied_at) VALUES (:version, :name, :now)"

APPLIED_MIGRATIONS = "SELECT version, name, applied_at FROM docq_migrations ORDER BY version"
