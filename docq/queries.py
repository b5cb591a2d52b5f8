"""Named SQL for the queue's state changes, shared by SQLite and PostgreSQL.

Parameters are ``:name``; ``:now`` is the service's clock on SQLite and the server's
clock on PostgreSQL (see `docq.db`). Each statement's comment says what it guarantees.
Only `docq.queue.DocumentQueueService` runs the statements that change a status.
"""

# --- claim ---------------------------------------------------------------------------

# Expired leases: the worker died, hung or lost the database. The lost attempt counts,
# so a document that kills its worker every time ends failed instead of looping; an
# item whose cancel was requested ends cancelled. Runs inside every claim transaction,
# so no separate sweeper has to be alive for work to move on.
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
WHERE status = 'in_progress' AND lease_expires_at < :now
RETURNING id, document_id, attempts, worker_id, started_at, status
"""

# The claim itself: one statement takes the next due items of one lane, highest
# priority first, then oldest. SQLite runs it under BEGIN IMMEDIATE (one writer at a
# time); PostgreSQL locks the rows it picks and skips rows another worker holds.
CLAIM_SQLITE = """
UPDATE queue_items SET
    status = 'in_progress', attempts = attempts + 1, lease_token = :token, worker_id = :worker,
    started_at = :now, lease_expires_at = :now + :lease, finished_at = NULL
WHERE id IN (
    SELECT id FROM queue_items
    WHERE status = 'pending' AND lane = :lane AND next_run_at <= :now
    ORDER BY priority DESC, id LIMIT :limit)
RETURNING id, document_id, operation, attempts, max_attempts, priority, started_at,
    (SELECT path FROM documents WHERE documents.id = document_id),
    (SELECT sha256 FROM documents WHERE documents.id = document_id)
"""

CLAIM_POSTGRES = """
WITH due AS (
    SELECT id FROM queue_items
    WHERE status = 'pending' AND lane = :lane AND next_run_at <= :now
    ORDER BY priority DESC, id LIMIT :limit
    FOR UPDATE SKIP LOCKED)
UPDATE queue_items AS q SET
    status = 'in_progress', attempts = q.attempts + 1, lease_token = :token, worker_id = :worker,
    started_at = :now, lease_expires_at = :now + :lease, finished_at = NULL
FROM due WHERE q.id = due.id
RETURNING q.id, q.document_id, q.operation, q.attempts, q.max_attempts, q.priority, q.started_at,
    (SELECT path FROM documents WHERE documents.id = q.document_id),
    (SELECT sha256 FROM documents WHERE documents.id = q.document_id)
"""

# Compare-and-set of one item (the seed API's mark_in_progress): exactly one caller
# can move a given due item from pending to in_progress.
CLAIM_ONE = """
UPDATE queue_items SET
    status = 'in_progress', attempts = attempts + 1, lease_token = :token, worker_id = :worker,
    started_at = :now, lease_expires_at = :now + :lease, finished_at = NULL
WHERE id = :id AND status = 'pending' AND next_run_at <= :now
RETURNING attempts, started_at, lease_expires_at
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
# completion. One statement completes a group of items claimed under one token ({ids}:
# their ids) and returns the ids it completed, i.e. those whose lease was still held.
# The token stays on the row, so a retried commit recognises its own work.
COMPLETE_MANY = """
UPDATE queue_items SET status = 'completed', finished_at = :now, lease_expires_at = NULL,
    last_error = NULL, cancel_requested = FALSE
WHERE lease_token = :token AND status = 'in_progress' AND id IN ({ids})
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
# An item whose cancel was requested is cancelled instead of going back.
RELEASE = """
UPDATE queue_items SET
    status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested THEN :now END,
    attempts = attempts - 1, next_run_at = :now, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND status = 'in_progress'
RETURNING status
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
LAST_COMPLETED_CONTENT = """
SELECT sha256 FROM queue_items
WHERE document_id = :document_id AND lane = :lane AND status = 'completed'
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

WORKER_STOPPED = """
UPDATE workers SET heartbeat_at = :now, stopped_at = :now, current_items = NULL, items_done = :done
WHERE id = :id
"""
