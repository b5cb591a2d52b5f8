"""The `DocumentQueueService` contract, run on SQLite and on PostgreSQL.

Each test drives the service through its public methods and checks the result with a
direct query through ``service.db``. Time comes from an injected `Clock` on SQLite; on
PostgreSQL the server's clock is used, so the few tests that need exact times run on
SQLite only (they show as skipped on PostgreSQL, with the reason), and lease expiry
waits for the server's clock to pass the stored expiry (a few tens of milliseconds).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from docq import maintenance
from docq.config import Settings
from docq.errors import DocqError, InvalidTransition, NotFoundError, UsageError
from docq.items import Lease, Result
from docq.processing import FileFacts, extractor_version
from docq.queue import DocumentQueueService, Queued, Skipped
from docq.retry import RetryPolicy
from docq.states import ItemStatus

START = 1_700_000_000.0
LEASE = 60.0
SHORT_LEASE = 0.05  # expires almost at once on PostgreSQL's real clock
PDF = "application/pdf"
SHA_A = "a" * 64
SHA_B = "b" * 64

needs_clock = pytest.mark.parametrize(
    "db_target",
    [
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skip(reason="needs the injected clock: PostgreSQL stores its server's time"),
        ),
    ],
    indirect=True,
)

Row = dict[str, Any]
MakeQueue = Callable[..., DocumentQueueService]


class Clock:
    """A clock the test moves by hand (``clock=`` of the service)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_queue(db_target: str, clock: Clock) -> Iterator[MakeQueue]:
    """Builds services on the test's database with the test's clock: ``make_queue(**settings)``."""
    made: list[DocumentQueueService] = []

    def build(**changes: Any) -> DocumentQueueService:
        settings = Settings(db=db_target, lock_timeout=10).with_(**changes)
        policy = RetryPolicy.from_settings(settings, rng=random.Random(7))
        service = DocumentQueueService(db_target, settings=settings, clock=clock, policy=policy)
        made.append(service)
        return service

    yield build
    for service in made:
        service.close()


@pytest.fixture
def service(make_queue: MakeQueue) -> DocumentQueueService:
    return make_queue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A directory for the documents' (fake) paths, with symbolic links resolved."""
    return Path(os.path.realpath(tmp_path))


# --- helpers -------------------------------------------------------------------------


def facts(path: str | Path, sha256: str = SHA_A, *, mime_type: str = PDF, size: int = 100) -> FileFacts:
    return FileFacts(str(path), size, sha256, mime_type)


def add(service: DocumentQueueService, path: str | Path, sha256: str = SHA_A, **options: Any) -> Queued:
    """Queue one new document and return its `Queued`."""
    [outcome] = service.add_documents([facts(path, sha256)], **options)
    assert isinstance(outcome, Queued), outcome
    return outcome


def claim_one(
    service: DocumentQueueService,
    *,
    worker: str = "w1",
    operation: str = "process",
    lease_seconds: float = LEASE,
) -> Lease:
    [lease] = service.claim(operation=operation, limit=1, worker=worker, lease_seconds=lease_seconds)
    return lease


def complete(service: DocumentQueueService, lease: Lease, text: str = "text", **metadata: Any) -> str:
    """Finish ``lease`` with an extraction (text and metadata on the document)."""
    [verdict] = service.finish([(lease, Result(ok=True, text=text, metadata=dict(metadata)))])
    return verdict


def fail(service: DocumentQueueService, lease: Lease, error: str = "boom", *, permanent: bool = False) -> str:
    [verdict] = service.finish([(lease, Result(ok=False, error=error, permanent=permanent))])
    return verdict


def item(service: DocumentQueueService, item_id: int) -> Row:
    rows = service.db.read(lambda tx: tx.dicts("SELECT * FROM queue_items WHERE id = :id", {"id": item_id}))
    assert rows, f"no queue item {item_id}"
    return rows[0]


def document(service: DocumentQueueService, document_id: int) -> Row:
    rows = service.db.read(lambda tx: tx.dicts("SELECT * FROM documents WHERE id = :id", {"id": document_id}))
    assert rows, f"no document {document_id}"
    return rows[0]


def history(service: DocumentQueueService, item_id: int) -> list[tuple[int, str]]:
    """(attempt, outcome) of each recorded attempt of ``item_id``, oldest first."""
    sql = "SELECT attempt, outcome FROM attempts WHERE item_id = :id ORDER BY id"
    return [tuple(row) for row in service.db.read(lambda tx: tx.all(sql, {"id": item_id}))]


def scalar(service: DocumentQueueService, sql: str, params: dict[str, Any] | None = None) -> Any:
    return service.db.read(lambda tx: tx.scalar(sql, params or {}))


def direct_counts(service: DocumentQueueService) -> dict[str, dict[str, int]]:
    """Items per operation and status, counted by a plain query."""
    sql = "SELECT operation, status, count(*) FROM queue_items GROUP BY operation, status"
    counted: dict[str, dict[str, int]] = {}
    for operation, status, n in service.db.read(lambda tx: tx.all(sql)):
        counted.setdefault(operation, {})[status] = int(n)
    return counted


def assert_stats_exact(service: DocumentQueueService) -> None:
    """The stats' counts agree with a direct COUNT(*) ... GROUP BY."""
    counted = direct_counts(service)
    stats = service.get_queue_stats()
    zeros = dict.fromkeys((s.value for s in ItemStatus), 0)  # every status is counted, zeros too
    expected = {operation: {**zeros, **counts} for operation, counts in {"process": {}, **counted}.items()}
    assert stats.by_operation == expected
    for status in ItemStatus:
        expected = sum(per_status.get(status.value, 0) for per_status in counted.values())
        assert getattr(stats, status.value) == expected, status
    assert stats.total == sum(sum(per_status.values()) for per_status in counted.values())


def let_leases_expire(service: DocumentQueueService, clock: Clock, item_ids: Sequence[int]) -> None:
    """Move time past the leases of ``item_ids``: the injected clock on SQLite; on
    PostgreSQL, wait (briefly: they were taken for SHORT_LEASE) until the server's clock
    has passed the latest stored expiry."""
    if service.db.backend.name == "sqlite":
        clock.advance(LEASE * 10)
        return
    expiry = max(float(item(service, item_id)["lease_expires_at"]) for item_id in item_ids)
    deadline = time.monotonic() + 10
    while service.now() <= expiry:
        assert time.monotonic() < deadline, "the server's clock did not pass the lease expiry"
        time.sleep(0.01)


# --- add_documents -------------------------------------------------------------------


def test_add_documents_queues_new_files(service: DocumentQueueService, root: Path) -> None:
    paths = [str(root / "a.pdf"), str(root / "b.pdf")]
    outcomes = service.add_documents([facts(paths[0], SHA_A), facts(paths[1], SHA_B)], priority=3)

    assert [type(outcome) for outcome in outcomes] == [Queued, Queued]
    assert [outcome.path for outcome in outcomes] == paths
    assert len({outcome.document_id for outcome in outcomes}) == 2
    for outcome, sha in zip(outcomes, (SHA_A, SHA_B), strict=True):
        assert isinstance(outcome, Queued)
        row = item(service, outcome.item_id)
        assert row["document_id"] == outcome.document_id
        assert (row["status"], row["operation"], row["priority"], row["attempts"]) == (
            "pending",
            "process",
            3,
            0,
        )
        assert row["sha256"] == sha
        doc = document(service, outcome.document_id)
        assert (doc["path"], doc["sha256"], doc["size"], doc["mime_type"]) == (outcome.path, sha, 100, PDF)
        assert doc["status"] == "pending"


def test_same_path_while_pending_is_already_queued(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")

    again = service.add_documents([facts(root / "a.pdf", SHA_B)])
    # Twice in one batch: the second sees the item the first made.
    twice = service.add_documents([facts(root / "c.pdf"), facts(root / "c.pdf")])

    assert again == [Skipped(queued.document_id, str(root / "a.pdf"), "already queued")]
    assert isinstance(twice[0], Queued)
    assert twice[1] == Skipped(twice[0].document_id, str(root / "c.pdf"), "already queued")
    assert scalar(service, "SELECT count(*) FROM queue_items") == 2


def test_already_queued_while_in_progress(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    claim_one(service)

    assert service.add_documents([facts(root / "a.pdf")]) == [
        Skipped(queued.document_id, str(root / "a.pdf"), "already queued")
    ]


def test_unchanged_content_is_skipped_unless_forced_or_changed(
    service: DocumentQueueService, root: Path
) -> None:
    path = str(root / "a.pdf")
    queued = add(service, path, SHA_A)
    complete(service, claim_one(service))

    unchanged = service.add_documents([facts(path, SHA_A)])
    forced = service.add_documents([facts(path, SHA_A)], force=True)
    complete(service, claim_one(service))
    changed = service.add_documents([facts(path, SHA_B)])

    assert unchanged == [Skipped(queued.document_id, path, "unchanged")]
    assert isinstance(forced[0], Queued) and forced[0].document_id == queued.document_id
    assert isinstance(changed[0], Queued) and changed[0].document_id == queued.document_id
    assert item(service, changed[0].item_id)["sha256"] == SHA_B
    assert document(service, queued.document_id)["sha256"] == SHA_B
    assert document(service, queued.document_id)["status"] == "pending"


def test_content_changed_back_is_not_unchanged(service: DocumentQueueService, root: Path) -> None:
    """A -> processed, B -> processed, back to A: the stored text is B's, so A must be queued."""
    path = str(root / "a.pdf")
    add(service, path, SHA_A)
    complete(service, claim_one(service), text="text of A", sha256=SHA_A)
    add(service, path, SHA_B)
    complete(service, claim_one(service), text="text of B", sha256=SHA_B)

    [outcome] = service.add_documents([facts(path, SHA_A)])

    assert isinstance(outcome, Queued), outcome


def test_custom_operation_lane_is_independent_of_process(service: DocumentQueueService, root: Path) -> None:
    path = root / "a.pdf"
    ocr = add(service, path, operation="ocr")
    process = add(service, path)  # an active ocr item does not block process
    other = add(service, root / "b.pdf")
    other_ocr = add(service, root / "b.pdf", operation="ocr")  # nor the other way round

    assert process.document_id == ocr.document_id
    assert other_ocr.document_id == other.document_id
    assert item(service, ocr.item_id)["operation"] == "ocr"
    assert item(service, process.item_id)["operation"] == "process"
    assert service.add_documents([facts(path)], operation="ocr") == [
        Skipped(ocr.document_id, str(path), "already queued")
    ]


def test_process_and_reprocess_share_a_lane(service: DocumentQueueService, root: Path) -> None:
    a = add(service, root / "a.pdf")
    b = add(service, root / "b.pdf", operation="reprocess")

    assert service.add_documents([facts(root / "a.pdf")], operation="reprocess") == [
        Skipped(a.document_id, str(root / "a.pdf"), "already queued")
    ]
    assert service.add_documents([facts(root / "b.pdf")]) == [
        Skipped(b.document_id, str(root / "b.pdf"), "already queued")
    ]
    assert service.enqueue(a.document_id, "reprocess").id == a.item_id
    assert service.enqueue(b.document_id, "process").id == b.item_id
    assert [change.action for change in service.reprocess([str(a.document_id)])] == ["already queued"]
    assert scalar(service, "SELECT count(*) FROM queue_items") == 2


def test_a_batch_is_one_transaction(service: DocumentQueueService, root: Path) -> None:
    existing = add(service, root / "old.pdf")
    complete(service, claim_one(service))
    batch = [
        facts(root / "a.pdf"),
        facts(root / "old.pdf", SHA_B),  # would be queued again
        FileFacts(str(root / "bad.pdf"), None, SHA_A, PDF),  # type: ignore[arg-type]
        facts(root / "c.pdf"),
    ]
    errors: tuple[type[BaseException], ...] = (DocqError, sqlite3.Error)
    if service.db.backend.name == "postgresql":
        import psycopg

        errors += (psycopg.Error,)

    with pytest.raises(errors):
        service.add_documents(batch)

    assert scalar(service, "SELECT count(*) FROM documents") == 1
    assert scalar(service, "SELECT count(*) FROM queue_items") == 1
    assert document(service, existing.document_id)["sha256"] == SHA_A
    assert document(service, existing.document_id)["status"] == "processed"


@pytest.mark.parametrize(
    "name",
    [b"caf\xe9.pdf", b"back\\x41\\\\slash\xff.pdf", "café ünïcode.pdf".encode(), b"caf\\xe9.pdf"],
    ids=["latin1", "backslashes", "utf8", "looks-escaped"],
)
def test_paths_round_trip_exactly(service: DocumentQueueService, root: Path, name: bytes) -> None:
    path = os.fsdecode(os.fsencode(root) + b"/" + name)
    lookalike = str(root / "caf\\xe9.pdf")  # valid UTF-8 that reads like the escaped form
    if path != lookalike:
        add(service, lookalike)

    queued = add(service, path)
    held = service.claim(worker="w1", lease_seconds=LEASE, limit=10)
    by_item = {lease.item_id: lease for lease in held}

    assert queued.path == path
    assert by_item[queued.item_id].path == path
    assert os.fsencode(by_item[queued.item_id].path) == os.fsencode(root) + b"/" + name
    assert {lease.path for lease in service.get_queue_stats().leases} == {lease.path for lease in held}
    assert service.add_documents([facts(path)]) == [Skipped(queued.document_id, path, "already queued")]
    assert len({lease.document_id for lease in held}) == len(held)
    complete(service, by_item[queued.item_id])
    [change] = service.reprocess([path])
    assert (change.document_id, change.path, change.action) == (queued.document_id, path, "queued")


postgresql_only = pytest.mark.parametrize(
    "db_target",
    [
        pytest.param(
            "sqlite",
            marks=pytest.mark.skip(
                reason="SQLite serialises writers (BEGIN IMMEDIATE): nothing to interleave"
            ),
        ),
        "postgresql",
    ],
    indirect=True,
)


def _blocked_behind(watcher: Any, blocker_pid: int) -> int:
    """How many backends wait, directly or through another waiter, for ``blocker_pid``."""
    rows = watcher.execute(
        "SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0"
    ).fetchall()
    behind: set[int] = set()
    grew = True
    while grew:
        grew = False
        for pid, blockers in rows:
            if pid not in behind and ({blocker_pid} | behind) & set(blockers):
                behind.add(pid)
                grew = True
    return len(behind)


@postgresql_only
@pytest.mark.parametrize("how", ["add_documents", "enqueue", "reprocess"])
def test_concurrent_requeues_make_one_active_item(
    service: DocumentQueueService, db_target: str, root: Path, how: str
) -> None:
    """Two requests queue the same processed document at once. A third connection holds
    the document's row lock, so that both pass their "already queued?" check before
    either commits; then it lets them go."""
    import psycopg

    path = root / "a.pdf"
    queued = add(service, path)
    complete(service, claim_one(service))
    errors: list[BaseException] = []

    def requeue(sha256: str) -> None:
        own = DocumentQueueService(db_target, settings=Settings(db=db_target, lock_timeout=30))
        try:
            if how == "add_documents":
                own.add_documents([facts(path, sha256)])
            elif how == "enqueue":
                own.enqueue(queued.document_id, "reprocess")
            else:
                own.reprocess([str(queued.document_id)])
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            own.close()

    url = db_target.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as watcher:
        blocker.execute("SELECT id FROM documents WHERE id = %s FOR UPDATE", (queued.document_id,))
        threads = [threading.Thread(target=requeue, args=(sha,)) for sha in (SHA_B, "c" * 64)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5  # a fixed docq may block them elsewhere: go on anyway
        while _blocked_behind(watcher, blocker.info.backend_pid) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        blocker.rollback()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    active = (
        "SELECT count(*) FROM queue_items WHERE document_id = :id AND status IN ('pending', 'in_progress')"
    )
    assert scalar(service, active, {"id": queued.document_id}) == 1


# --- the seed API --------------------------------------------------------------------


def test_enqueue_returns_new_item_or_the_active_one(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")

    ocr = service.enqueue(queued.document_id, "ocr", priority=4)
    again = service.enqueue(queued.document_id, "ocr", priority=9)
    process = service.enqueue(queued.document_id, "process")

    assert ocr.id is not None and ocr.id != queued.item_id
    assert (ocr.document_id, ocr.operation, ocr.priority, ocr.status) == (
        queued.document_id,
        "ocr",
        4,
        "pending",
    )
    assert again.id == ocr.id and again.priority == 4
    assert process.id == queued.item_id
    assert scalar(service, "SELECT count(*) FROM queue_items") == 2
    with pytest.raises(NotFoundError):
        service.enqueue(queued.document_id + 100, "process")


def test_enqueue_after_completion_queues_again(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    complete(service, claim_one(service))

    again = service.enqueue(queued.document_id, "reprocess", priority=2)

    assert again.id != queued.item_id
    assert (again.status, again.operation, again.priority) == ("pending", "reprocess", 2)
    assert document(service, queued.document_id)["status"] == "pending"


def test_get_pending_items_in_claim_order(service: DocumentQueueService, root: Path) -> None:
    low = add(service, root / "low.pdf", priority=-1)
    first = add(service, root / "first.pdf")
    high = add(service, root / "high.pdf", priority=5)
    second = add(service, root / "second.pdf")
    high2 = add(service, root / "high2.pdf", priority=5)
    add(service, root / "ocr.pdf", operation="ocr", priority=100)

    pending = service.get_pending_items(limit=4)

    assert [i.id for i in pending] == [high.item_id, high2.item_id, first.item_id, second.item_id]
    assert [i.id for i in service.get_pending_items(limit=10)][-1] == low.item_id
    assert all(i.status == "pending" for i in pending)
    assert scalar(service, "SELECT count(*) FROM queue_items WHERE status = 'pending'") == 6


def test_mark_in_progress_is_a_compare_and_set(make_queue: MakeQueue, root: Path) -> None:
    one, two = make_queue(), make_queue()
    queued = add(one, root / "a.pdf")
    mine, theirs = one.get_item(queued.item_id), two.get_item(queued.item_id)

    assert one.mark_in_progress(mine) is True
    assert two.mark_in_progress(theirs) is False

    row = item(one, queued.item_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("in_progress", 1, one.worker_id)
    assert row["lease_token"] == mine.lease_token
    assert mine.status == "in_progress" and theirs.status == "pending"
    assert document(one, queued.document_id)["status"] == "processing"


def test_mark_in_progress_race_between_threads(
    service: DocumentQueueService, db_target: str, root: Path
) -> None:
    queued = add(service, root / "a.pdf")
    contenders = 8
    barrier = threading.Barrier(contenders)
    results: list[bool | BaseException] = []

    def contend() -> None:
        try:
            own = DocumentQueueService(db_target, settings=Settings(db=db_target, lock_timeout=30))
            try:
                queue_item = own.get_item(queued.item_id)
                barrier.wait(timeout=30)
                results.append(own.mark_in_progress(queue_item))
            finally:
                own.close()
        except BaseException as error:  # reported below, not lost in the thread
            results.append(error)

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(results, key=repr) == [False] * (contenders - 1) + [True]
    assert item(service, queued.item_id)["attempts"] == 1


WON, LOST = 10, 11


def _contend_in_process(db_target: str, item_id: int, barrier: Any) -> None:
    own = DocumentQueueService(db_target, settings=Settings(db=db_target, lock_timeout=30))
    queue_item = own.get_item(item_id)
    barrier.wait(timeout=30)
    won = own.mark_in_progress(queue_item)
    own.close()
    sys.exit(WON if won else LOST)


def test_mark_in_progress_race_between_processes(
    service: DocumentQueueService, db_target: str, root: Path
) -> None:
    queued = add(service, root / "a.pdf")
    context = multiprocessing.get_context("fork")
    contenders = 4
    barrier = context.Barrier(contenders)
    processes = [
        context.Process(target=_contend_in_process, args=(db_target, queued.item_id, barrier))
        for _ in range(contenders)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)

    assert sorted(process.exitcode or 0 for process in processes) == [WON] + [LOST] * (contenders - 1)
    assert item(service, queued.item_id)["attempts"] == 1


def test_mark_completed_stores_the_extraction(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    [queue_item] = service.get_pending_items(limit=1)
    assert service.mark_in_progress(queue_item)
    metadata = {"title": "Café", "pages": 3, "extractor_version": "test 1", "mime_type": PDF}

    assert service.mark_completed(queue_item, text="hello wörld", metadata=metadata) is True

    doc = document(service, queued.document_id)
    assert (doc["status"], doc["text"], doc["extractor"]) == ("processed", "hello wörld", "test 1")
    assert json.loads(doc["metadata_json"]) == metadata
    row = item(service, queued.item_id)
    assert (row["status"], row["lease_expires_at"], row["last_error"]) == ("completed", None, None)
    assert row["finished_at"] is not None
    assert queue_item.status == "completed"
    assert history(service, queued.item_id) == [(1, "completed")]


def test_mark_completed_without_metadata_stores_the_text_on_the_document(
    service: DocumentQueueService, root: Path
) -> None:
    queued = add(service, root / "a.pdf")
    [queue_item] = service.get_pending_items()
    assert service.mark_in_progress(queue_item)

    assert service.mark_completed(queue_item, text="the extracted text") is True

    stored = document(service, queued.document_id)
    assert (stored["status"], stored["text"]) == ("processed", "the extracted text")


def test_mark_failed_with_attempts_left_waits_for_a_retry(make_queue: MakeQueue, root: Path) -> None:
    service = make_queue(max_attempts=3, retry_delay=30)
    queued = add(service, root / "a.pdf")
    queue_item = service.get_item(queued.item_id)
    assert service.mark_in_progress(queue_item)

    assert service.mark_failed(queue_item, "disk hiccup") == "pending"

    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "transient: disk hiccup")
    assert 30 * 0.75 - 10 < row["next_run_at"] - service.now() <= 30 * 1.25  # due in the future
    assert row["finished_at"] is None
    assert document(service, queued.document_id)["status"] == "pending"
    assert history(service, queued.item_id) == [(1, "failed")]
    assert service.mark_in_progress(service.get_item(queued.item_id)) is False  # not due yet


def test_mark_failed_on_the_last_attempt_fails_the_item(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf", max_attempts=1)
    queue_item = service.get_item(queued.item_id)
    assert service.mark_in_progress(queue_item)

    assert service.mark_failed(queue_item, "still broken") == "failed"

    row = item(service, queued.item_id)
    assert (row["status"], row["last_error"]) == ("failed", "transient: still broken")
    assert row["finished_at"] is not None
    assert document(service, queued.document_id)["status"] == "failed"


def test_mark_failed_permanent_fails_at_once(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    queue_item = service.get_item(queued.item_id)
    assert service.mark_in_progress(queue_item)

    assert service.mark_failed(queue_item, "corrupt: bad xref", permanent=True) == "failed"

    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert row["last_error"] == "permanent: corrupt: bad xref"
    assert queue_item.status == "failed"


def test_mark_completed_or_failed_on_an_unclaimed_item_raises(
    service: DocumentQueueService, root: Path
) -> None:
    queued = add(service, root / "a.pdf")
    queue_item = service.get_item(queued.item_id)

    with pytest.raises(InvalidTransition):
        service.mark_completed(queue_item, text="x", metadata={})
    with pytest.raises(InvalidTransition):
        service.mark_failed(queue_item, "x")

    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert history(service, queued.item_id) == []


def test_mark_completed_after_the_lease_was_lost_returns_false(
    make_queue: MakeQueue, clock: Clock, root: Path
) -> None:
    late, other = make_queue(), make_queue()
    queued = add(late, root / "a.pdf")
    queue_item = late.get_item(queued.item_id)
    assert late.mark_in_progress(queue_item, lease_seconds=SHORT_LEASE)
    let_leases_expire(late, clock, [queued.item_id])
    taken = claim_one(other, worker="w2")

    assert late.mark_completed(queue_item, text="late", metadata={}) is False
    assert late.mark_failed(queue_item, "late") is None

    assert item(other, queued.item_id)["lease_token"] == taken.token
    assert item(other, queued.item_id)["status"] == "in_progress"


def test_seed_get_queue_stats_counts(service: DocumentQueueService, root: Path) -> None:
    for name in ("a", "b", "c", "d"):
        add(service, root / f"{name}.pdf")
    first, second, third = service.get_pending_items(limit=3)
    for queue_item in (first, second, third):
        assert service.mark_in_progress(queue_item)
    service.mark_completed(first, text="t", metadata={})
    service.mark_failed(second, "bad", permanent=True)

    stats = service.get_queue_stats()

    assert (stats.pending, stats.in_progress, stats.completed, stats.failed, stats.cancelled) == (
        1,
        1,
        1,
        1,
        0,
    )
    assert stats.total == 4
    assert stats.to_dict()["total"] == 4
    assert stats.by_operation == {
        "process": {"pending": 1, "in_progress": 1, "completed": 1, "failed": 1, "cancelled": 0}
    }


# --- illegal transitions -------------------------------------------------------------


def test_retry_of_a_pending_or_completed_item_raises_and_changes_nothing(
    service: DocumentQueueService, root: Path
) -> None:
    done = add(service, root / "done.pdf")
    complete(service, claim_one(service))
    broken = add(service, root / "broken.pdf")
    fail(service, claim_one(service), permanent=True)
    waiting = add(service, root / "waiting.pdf")
    before = [item(service, i) for i in (done.item_id, broken.item_id, waiting.item_id)]

    for ids in ([waiting.item_id], [done.item_id], [broken.item_id, waiting.item_id]):
        with pytest.raises(UsageError):
            service.retry(ids)

    assert [item(service, i) for i in (done.item_id, broken.item_id, waiting.item_id)] == before
    assert document(service, broken.document_id)["status"] == "failed"


def test_cancel_of_a_finished_item_raises_and_changes_nothing(
    service: DocumentQueueService, root: Path
) -> None:
    done = add(service, root / "done.pdf")
    complete(service, claim_one(service))
    waiting = add(service, root / "waiting.pdf")
    gone = add(service, root / "gone.pdf")
    service.cancel([gone.item_id])

    for ids in ([done.item_id], [waiting.item_id, done.item_id], [gone.item_id]):
        with pytest.raises(UsageError):
            service.cancel(ids)

    assert item(service, done.item_id)["status"] == "completed"
    assert item(service, waiting.item_id)["status"] == "pending"
    assert document(service, done.document_id)["status"] == "processed"


def test_unknown_ids_raise_not_found(service: DocumentQueueService, root: Path) -> None:
    failed = add(service, root / "a.pdf")
    fail(service, claim_one(service), permanent=True)
    unknown = failed.item_id + 1000

    with pytest.raises(NotFoundError):
        service.retry([failed.item_id, unknown])
    with pytest.raises(NotFoundError):
        service.cancel([unknown])
    with pytest.raises(NotFoundError):
        service.get_item(unknown)

    assert item(service, failed.item_id)["status"] == "failed"


def test_reprocess_of_an_unknown_document_queues_nothing(service: DocumentQueueService, root: Path) -> None:
    known = add(service, root / "a.pdf")
    complete(service, claim_one(service))

    with pytest.raises(NotFoundError, match="nope"):
        service.reprocess([str(known.document_id), str(root / "nope.pdf")])
    with pytest.raises(NotFoundError):
        service.reprocess([str(known.document_id + 1000)], failed=True, stale=True)

    assert scalar(service, "SELECT count(*) FROM queue_items") == 1
    assert document(service, known.document_id)["status"] == "processed"


# --- claim ---------------------------------------------------------------------------


def test_claim_in_priority_then_fifo_order_within_limit(service: DocumentQueueService, root: Path) -> None:
    low = add(service, root / "low.pdf", priority=-1)
    first = add(service, root / "first.pdf")
    high = add(service, root / "high.pdf", priority=5)
    second = add(service, root / "second.pdf")
    high2 = add(service, root / "high2.pdf", priority=5)

    batch = service.claim(limit=3, worker="w1", lease_seconds=LEASE)
    rest = service.claim(limit=10, worker="w2", lease_seconds=LEASE)

    assert [lease.item_id for lease in batch] == [high.item_id, high2.item_id, first.item_id]
    assert [lease.item_id for lease in rest] == [second.item_id, low.item_id]
    assert service.claim(limit=10, worker="w3", lease_seconds=LEASE) == []
    assert scalar(service, "SELECT count(*) FROM queue_items WHERE status = 'in_progress'") == 5


def test_concurrent_claims_never_share_an_item(
    service: DocumentQueueService, db_target: str, root: Path
) -> None:
    items = 12
    service.add_documents([facts(root / f"{n}.pdf", f"{n:064d}") for n in range(items)])
    workers = 4
    barrier = threading.Barrier(workers)
    claimed: list[Lease] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            own = DocumentQueueService(db_target, settings=Settings(db=db_target, lock_timeout=30))
            try:
                barrier.wait(timeout=30)
                while batch := own.claim(limit=2, worker=name, lease_seconds=LEASE):
                    claimed.extend(batch)
            finally:
                own.close()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(lease.item_id for lease in claimed) == list(range(1, items + 1))
    owners = dict(service.db.read(lambda tx: tx.all("SELECT id, worker_id FROM queue_items")))
    assert owners == {lease.item_id: lease.worker for lease in claimed}


def test_claim_takes_only_due_items(make_queue: MakeQueue, root: Path) -> None:
    service = make_queue(retry_delay=300)
    waiting = add(service, root / "a.pdf")
    assert fail(service, claim_one(service)) == "retrying"

    assert service.claim(limit=10, worker="w1", lease_seconds=LEASE) == []
    assert service.get_pending_items(limit=10) == []
    due = add(service, root / "b.pdf")
    assert [lease.item_id for lease in service.claim(limit=10, worker="w1", lease_seconds=LEASE)] == [
        due.item_id
    ]
    assert item(service, waiting.item_id)["status"] == "pending"


def test_claim_takes_only_its_lane(service: DocumentQueueService, root: Path) -> None:
    process = add(service, root / "a.pdf")
    reprocess = add(service, root / "b.pdf", operation="reprocess")
    ocr = add(service, root / "c.pdf", operation="ocr", priority=10)
    add(service, root / "d.pdf", operation="thumbnail")

    ocr_batch = service.claim(operation="ocr", limit=10, worker="w1", lease_seconds=LEASE)
    process_batch = service.claim(operation="process", limit=10, worker="w2", lease_seconds=LEASE)

    assert [(lease.item_id, lease.operation) for lease in ocr_batch] == [(ocr.item_id, "ocr")]
    assert [(lease.item_id, lease.operation) for lease in process_batch] == [
        (process.item_id, "process"),
        (reprocess.item_id, "reprocess"),
    ]
    assert service.claim(operation="reprocess", limit=10, worker="w3", lease_seconds=LEASE) == []
    assert direct_counts(service)["thumbnail"] == {"pending": 1}


def test_claim_leases_and_marks_the_document_processing(service: DocumentQueueService, root: Path) -> None:
    a = add(service, root / "a.pdf", SHA_A, priority=2, max_attempts=3)
    add(service, root / "b.pdf", SHA_B, priority=2)

    leases = service.claim(limit=2, worker="host:1:w", lease_seconds=LEASE)

    first, second = leases
    assert (first.item_id, first.document_id, first.operation) == (a.item_id, a.document_id, "process")
    assert (first.attempt, first.max_attempts, first.priority) == (1, 3, 2)
    assert (first.path, first.sha256, first.worker) == (str(root / "a.pdf"), SHA_A, "host:1:w")
    assert (second.max_attempts, second.sha256) == (None, SHA_B)
    assert first.token and first.token == second.token
    for lease in leases:
        row = item(service, lease.item_id)
        assert (row["status"], row["attempts"]) == ("in_progress", 1)
        assert (row["lease_token"], row["worker_id"]) == (lease.token, "host:1:w")
        assert row["started_at"] == pytest.approx(lease.started_at)
        assert row["lease_expires_at"] == pytest.approx(lease.started_at + LEASE)
        assert document(service, lease.document_id)["status"] == "processing"
    if service.db.backend.name == "sqlite":
        assert first.started_at == START


# --- fencing -------------------------------------------------------------------------


def test_a_late_workers_result_is_discarded(service: DocumentQueueService, clock: Clock, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    first = claim_one(service, worker="w1", lease_seconds=SHORT_LEASE)
    let_leases_expire(service, clock, [first.item_id])
    second = claim_one(service, worker="w2")
    assert (second.item_id, second.attempt) == (first.item_id, 2)
    assert second.token != first.token

    assert complete(service, first, "late text", extractor_version="late") == "discarded"
    assert fail(service, first, "late error", permanent=True) == "discarded"
    assert service.release([first]) == 0
    assert service.heartbeat("w1", [first.token], lease_seconds=LEASE, current=[], done=0) == set()

    row = item(service, queued.item_id)
    assert (row["status"], row["worker_id"], row["lease_token"]) == ("in_progress", "w2", second.token)
    assert document(service, queued.document_id)["text"] is None
    assert complete(service, second, "second text", extractor_version="v2") == "completed"
    assert document(service, queued.document_id)["text"] == "second text"
    assert complete(service, first, "later still") == "discarded"
    assert document(service, queued.document_id)["text"] == "second text"
    assert history(service, queued.item_id) == [(1, "abandoned"), (2, "completed")]


def test_finishing_the_same_result_twice_is_recognised(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    lease = claim_one(service)
    result = (lease, Result(ok=True, text="once", metadata={"extractor_version": "v"}))

    assert service.finish([result]) == ["completed"]
    assert service.finish([result]) == ["completed"]

    assert item(service, queued.item_id)["status"] == "completed"
    assert document(service, queued.document_id)["text"] == "once"


def test_a_recognised_own_commit_is_recorded_once(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    lease = claim_one(service)
    result = (lease, Result(ok=True, text="once", metadata={"extractor_version": "v"}))
    service.finish([result])

    service.finish([result])

    assert history(service, queued.item_id) == [(1, "completed")]


# --- the expiry sweep ----------------------------------------------------------------


def test_an_expired_lease_is_claimable_again_and_counts(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    queued = add(service, root / "a.pdf")
    lost = claim_one(service, worker="w1", lease_seconds=SHORT_LEASE)
    let_leases_expire(service, clock, [lost.item_id])

    again = claim_one(service, worker="w2")

    assert (again.item_id, again.attempt) == (queued.item_id, 2)
    assert history(service, queued.item_id) == [(1, "abandoned")]
    error = scalar(service, "SELECT error FROM attempts WHERE item_id = :id", {"id": queued.item_id})
    assert "lease expired" in error
    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["worker_id"]) == ("in_progress", 2, "w2")
    assert row["last_error"].startswith("transient: abandoned")


@pytest.mark.parametrize("limit_on", ["item", "settings"])
def test_an_expired_lease_on_the_last_attempt_fails_the_item(
    make_queue: MakeQueue, clock: Clock, root: Path, limit_on: str
) -> None:
    service = make_queue(max_attempts=1) if limit_on == "settings" else make_queue()
    queued = add(service, root / "a.pdf", max_attempts=1 if limit_on == "item" else None)
    claim_one(service, lease_seconds=SHORT_LEASE)
    let_leases_expire(service, clock, [queued.item_id])

    assert service.claim(limit=5, worker="w2", lease_seconds=LEASE) == []

    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["lease_expires_at"]) == ("failed", 1, None)
    assert row["finished_at"] is not None
    assert document(service, queued.document_id)["status"] == "failed"
    assert history(service, queued.item_id) == [(1, "abandoned")]
    assert_stats_exact(service)


def test_an_expired_lease_whose_cancel_was_requested_ends_cancelled(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    queued = add(service, root / "a.pdf")
    claim_one(service, lease_seconds=SHORT_LEASE)
    [change] = service.cancel([queued.item_id])
    assert change.action == "stopping"
    let_leases_expire(service, clock, [queued.item_id])

    assert service.claim(limit=5, worker="w2", lease_seconds=LEASE) == []

    row = item(service, queued.item_id)
    assert (row["status"], row["lease_expires_at"]) == ("cancelled", None)
    assert row["finished_at"] is not None
    assert document(service, queued.document_id)["status"] == "cancelled"
    assert history(service, queued.item_id) == [(1, "abandoned")]


# --- heartbeat and release -----------------------------------------------------------


def test_heartbeat_renews_only_the_callers_leases(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    mine = add(service, root / "a.pdf")
    theirs = add(service, root / "b.pdf")
    held = claim_one(service, worker="w1")
    claim_one(service, worker="w2")
    before = {i: item(service, i)["lease_expires_at"] for i in (mine.item_id, theirs.item_id)}
    clock.advance(10)

    cancelled = service.heartbeat("w1", [held.token], lease_seconds=600, current=[held.item_id], done=0)

    assert cancelled == set()
    renewed = item(service, mine.item_id)["lease_expires_at"]
    assert renewed > before[mine.item_id] + 500
    assert item(service, theirs.item_id)["lease_expires_at"] == before[theirs.item_id]
    if service.db.backend.name == "sqlite":
        assert renewed == START + 10 + 600


def test_heartbeat_reports_cancel_requests(service: DocumentQueueService, root: Path) -> None:
    mine = add(service, root / "a.pdf")
    other = add(service, root / "b.pdf")
    held = service.claim(limit=2, worker="w1", lease_seconds=LEASE)

    [change] = service.cancel([mine.item_id])
    stopping = service.heartbeat("w1", [held[0].token], lease_seconds=LEASE, current=[], done=0)

    assert (change.item_id, change.action) == (mine.item_id, "stopping")
    assert stopping == {mine.item_id}
    assert bool(item(service, mine.item_id)["cancel_requested"]) is True
    assert bool(item(service, other.item_id)["cancel_requested"]) is False
    assert item(service, mine.item_id)["status"] == "in_progress"
    stopped = (held[0], Result(ok=False, error="cancelled", cancelled=True))
    assert service.finish([stopped]) == ["cancelled"]
    assert item(service, mine.item_id)["status"] == "cancelled"
    assert document(service, mine.document_id)["status"] == "cancelled"
    assert history(service, mine.item_id) == [(1, "cancelled")]


def test_release_gives_the_item_back_without_counting(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    lease = claim_one(service)

    assert service.release([lease]) == 1

    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["lease_expires_at"]) == ("pending", 0, None)
    assert document(service, queued.document_id)["status"] == "pending"
    assert history(service, queued.item_id) == [(1, "released")]
    assert service.release([lease]) == 0
    assert claim_one(service, worker="w2").attempt == 1


def claim_ahead(service: DocumentQueueService, limit: int, *, lease_seconds: float = LEASE) -> list[Lease]:
    """Claim as a worker does, ahead of its children: nothing has started yet."""
    return service.exchange([], limit=limit, worker="w1", lease_seconds=lease_seconds, started=False)[1]


def test_items_claimed_ahead_and_never_started_are_not_charged_when_the_lease_expires(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    ran, waiting = (add(service, root / name) for name in ("ran.pdf", "waiting.pdf"))
    leased = claim_ahead(service, 2, lease_seconds=SHORT_LEASE)
    assert service.start(leased[:1]) == {ran.item_id}  # handed to a child; the other waits
    let_leases_expire(service, clock, [ran.item_id, waiting.item_id])

    again = service.claim(limit=5, worker="w2", lease_seconds=LEASE)

    assert [(lease.item_id, lease.attempt) for lease in again] == [(ran.item_id, 2), (waiting.item_id, 1)]
    assert history(service, ran.item_id) == [(1, "abandoned")]
    assert history(service, waiting.item_id) == []
    assert item(service, waiting.item_id)["last_error"] is None


def test_an_item_claimed_ahead_cannot_fail_without_running(
    make_queue: MakeQueue, clock: Clock, root: Path
) -> None:
    service = make_queue(max_attempts=1)
    queued = add(service, root / "a.pdf")
    for _ in range(3):  # three workers die holding it, none having started it
        [lease] = claim_ahead(service, 1, lease_seconds=SHORT_LEASE)
        assert lease.attempt == 1
        let_leases_expire(service, clock, [queued.item_id])

    again = claim_one(service, worker="w2")

    assert again.attempt == 1
    assert history(service, queued.item_id) == []


def test_release_of_items_claimed_ahead_leaves_no_trace(service: DocumentQueueService, root: Path) -> None:
    started, waiting = (add(service, root / name) for name in ("started.pdf", "waiting.pdf"))
    leased = claim_ahead(service, 2)
    service.start(leased[:1])

    assert service.release(leased) == 2

    for queued in (started, waiting):
        row = item(service, queued.item_id)
        assert (row["status"], row["attempts"]) == ("pending", 0)
    assert history(service, started.item_id) == [(1, "released")]
    assert history(service, waiting.item_id) == []


def test_start_is_fenced_by_the_lease(service: DocumentQueueService, clock: Clock, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    [lost] = claim_ahead(service, 1, lease_seconds=SHORT_LEASE)
    let_leases_expire(service, clock, [queued.item_id])
    [taken] = service.claim(limit=1, worker="w2", lease_seconds=LEASE)

    assert service.start([lost]) == set()  # taken over: the first worker must not run it
    assert service.start([taken]) == {queued.item_id}
    assert service.start([taken]) == {queued.item_id}  # handing it over again is harmless


# --- retry, cancel -------------------------------------------------------------------


def test_retry_gives_a_failed_item_a_fresh_budget(make_queue: MakeQueue, root: Path) -> None:
    service = make_queue(max_attempts=2, retry_delay=0)
    queued = add(service, root / "a.pdf")
    assert fail(service, claim_one(service)) == "retrying"
    assert fail(service, claim_one(service)) == "failed"

    [change] = service.retry([queued.item_id])

    assert (change.item_id, change.document_id, change.action, change.operation) == (
        queued.item_id,
        queued.document_id,
        "retried",
        "process",
    )
    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["finished_at"]) == ("pending", 0, None)
    assert row["next_run_at"] <= service.now()
    assert document(service, queued.document_id)["status"] == "pending"
    assert history(service, queued.item_id) == [(1, "failed"), (2, "failed")]
    assert claim_one(service).attempt == 1


def test_retry_never_gives_a_document_two_active_items_in_one_lane(
    service: DocumentQueueService, root: Path
) -> None:
    failed = add(service, root / "a.pdf")
    fail(service, claim_one(service), permanent=True)
    [requeued] = service.reprocess([str(failed.document_id)])
    assert requeued.action == "queued"

    [change] = service.retry([failed.item_id])

    assert (change.item_id, change.action) == (requeued.item_id, "already queued")
    assert item(service, failed.item_id)["status"] == "failed"
    active = (
        "SELECT count(*) FROM queue_items WHERE document_id = :id AND status IN ('pending', 'in_progress')"
    )
    assert scalar(service, active, {"id": failed.document_id}) == 1
    assert len(service.claim(limit=10, worker="w1", lease_seconds=LEASE)) == 1


def test_retry_dry_run_changes_nothing(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")
    fail(service, claim_one(service), permanent=True)
    before = item(service, queued.item_id)

    [change] = service.retry([queued.item_id], dry_run=True)

    assert (change.item_id, change.action) == (queued.item_id, "retried")
    assert item(service, queued.item_id) == before
    assert document(service, queued.document_id)["status"] == "failed"


def test_cancel_a_pending_item(service: DocumentQueueService, root: Path) -> None:
    queued = add(service, root / "a.pdf")

    [change] = service.cancel([queued.item_id])

    assert (change.item_id, change.document_id, change.action) == (
        queued.item_id,
        queued.document_id,
        "cancelled",
    )
    assert change.path == str(root / "a.pdf")
    row = item(service, queued.item_id)
    assert row["status"] == "cancelled" and row["finished_at"] is not None
    assert document(service, queued.document_id)["status"] == "cancelled"
    assert service.claim(limit=5, worker="w1", lease_seconds=LEASE) == []


@pytest.mark.parametrize(("outcome", "expected"), [("completed", "processed"), ("failed", "failed")])
def test_cancel_restores_the_documents_previous_status(
    service: DocumentQueueService, root: Path, outcome: str, expected: str
) -> None:
    queued = add(service, root / "a.pdf")
    lease = claim_one(service)
    if outcome == "completed":
        complete(service, lease)
    else:
        fail(service, lease, permanent=True)
    [requeued] = service.reprocess([str(queued.document_id)])
    assert requeued.item_id is not None
    assert document(service, queued.document_id)["status"] == "pending"

    service.cancel([requeued.item_id])

    assert document(service, queued.document_id)["status"] == expected


def test_cancel_an_in_progress_item_asks_its_worker_to_stop(
    service: DocumentQueueService, root: Path
) -> None:
    queued = add(service, root / "a.pdf")
    lease = claim_one(service)

    [change] = service.cancel([queued.item_id])

    assert change.action == "stopping"
    row = item(service, queued.item_id)
    assert (row["status"], bool(row["cancel_requested"]), row["lease_token"]) == (
        "in_progress",
        True,
        lease.token,
    )
    assert document(service, queued.document_id)["status"] == "processing"


def test_cancel_dry_run_changes_nothing(service: DocumentQueueService, root: Path) -> None:
    running = add(service, root / "a.pdf")
    waiting = add(service, root / "b.pdf")
    claim_one(service)
    before = [item(service, i) for i in (running.item_id, waiting.item_id)]

    changes = service.cancel([running.item_id, waiting.item_id], dry_run=True)

    assert [change.action for change in changes] == ["stopping", "cancelled"]
    assert [item(service, i) for i in (running.item_id, waiting.item_id)] == before
    assert document(service, waiting.document_id)["status"] == "pending"
    assert document(service, running.document_id)["status"] == "processing"


# --- purge ---------------------------------------------------------------------------


def _purge_scene(service: DocumentQueueService, root: Path) -> dict[str, Queued]:
    """One document in each state; ``kept`` has a completed item and a pending reprocess."""
    scene = {name: add(service, root / f"{name}.pdf") for name in ("done", "broken", "dropped", "waiting")}
    scene["running"] = add(service, root / "running.pdf")
    scene["kept"] = add(service, root / "kept.pdf")
    scene["output"] = add(service, root / "output.pdf", operation="ocr")
    leases = {lease.item_id: lease for lease in service.claim(limit=10, worker="w1", lease_seconds=LEASE)}
    complete(service, leases[scene["done"].item_id])
    complete(service, leases[scene["kept"].item_id])
    fail(service, leases[scene["broken"].item_id], permanent=True)
    service.release([leases[scene["dropped"].item_id], leases[scene["waiting"].item_id]])
    service.cancel([scene["dropped"].item_id])
    ocr = claim_one(service, operation="ocr")
    service.finish([(ocr, Result(ok=True, text="stdout", note="stderr"))])
    service.reprocess([str(scene["kept"].document_id)])
    return scene


def _remaining(service: DocumentQueueService) -> tuple[set[int], set[int], int, int]:
    items = {row[0] for row in service.db.read(lambda tx: tx.all("SELECT id FROM queue_items"))}
    documents = {row[0] for row in service.db.read(lambda tx: tx.all("SELECT id FROM documents"))}
    attempts = scalar(service, "SELECT count(*) FROM attempts")
    outputs = scalar(service, "SELECT count(*) FROM item_outputs")
    return items, documents, attempts, outputs


def test_purge_deletes_only_old_finished_items_in_the_given_statuses(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    scene = _purge_scene(service, root)
    clock.advance(1)  # SQLite: the items finished one second ago
    everything = _remaining(service)

    assert service.purge(older_than=3600) == maintenance.PurgeCount()
    assert _remaining(service) == everything

    counted = service.purge(older_than=0, statuses=["completed"], dry_run=True)
    completed = service.purge(older_than=0, statuses=["completed"])

    assert completed == counted == maintenance.PurgeCount(items=3, attempts=3, documents=2)
    items, documents, _, outputs = _remaining(service)
    for name in ("done", "kept", "output"):
        assert scene[name].item_id not in items
    assert scene["done"].document_id not in documents and scene["output"].document_id not in documents
    assert scene["kept"].document_id in documents  # its reprocess is still pending
    assert {scene["broken"].item_id, scene["dropped"].item_id} <= items
    assert outputs == 0
    assert_stats_exact(service)


def test_purge_scene_removes_outputs_and_keeps_active_work(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    scene = _purge_scene(service, root)
    clock.advance(1)

    count = service.purge(older_than=0)

    # done, kept's first item, output (completed); broken (failed); dropped (cancelled)
    assert count == maintenance.PurgeCount(items=5, attempts=5, documents=4)
    items, documents, attempts, outputs = _remaining(service)
    active = {scene[name].item_id for name in ("waiting", "running")}
    assert active < items and len(items) == 3  # plus kept's pending reprocess
    assert documents == {scene[name].document_id for name in ("waiting", "running", "kept")}
    assert outputs == 0
    assert attempts == 1  # the released attempt of the waiting item
    assert_stats_exact(service)


def test_purge_dry_run_counts_without_deleting(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    _purge_scene(service, root)
    clock.advance(1)
    before = _remaining(service)

    dry = service.purge(older_than=0, dry_run=True)

    assert _remaining(service) == before
    assert dry == service.purge(older_than=0)


@needs_clock
def test_purge_cutoff_by_finish_time(service: DocumentQueueService, clock: Clock, root: Path) -> None:
    old = add(service, root / "old.pdf")
    complete(service, claim_one(service))
    clock.advance(100)
    new = add(service, root / "new.pdf")
    complete(service, claim_one(service))
    clock.advance(50)

    assert service.purge(older_than=150) == maintenance.PurgeCount()  # finished exactly 150 s ago
    assert service.purge(older_than=51) == maintenance.PurgeCount(items=1, attempts=1, documents=1)

    items, documents, _, _ = _remaining(service)
    assert (items, documents) == ({new.item_id}, {new.document_id})
    assert old.item_id not in items


def test_purge_rejects_unfinished_statuses(service: DocumentQueueService, root: Path) -> None:
    add(service, root / "a.pdf")
    for statuses in (["pending"], ["completed", "in_progress"], []):
        with pytest.raises(UsageError):
            service.purge(older_than=0, statuses=statuses)
    assert scalar(service, "SELECT count(*) FROM queue_items") == 1


def _finish_many(service: DocumentQueueService, root: Path, count: int) -> None:
    service.add_documents([facts(root / f"{n}.pdf", f"{n:064d}") for n in range(count)])
    leases = service.claim(limit=count, worker="w1", lease_seconds=LEASE)
    assert len(leases) == count
    service.finish([(lease, Result(ok=True, text="t", metadata={})) for lease in leases])


def test_purge_across_the_batch_boundary(service: DocumentQueueService, clock: Clock, root: Path) -> None:
    count = maintenance.PURGE_BATCH + 1
    _finish_many(service, root, count)
    clock.advance(1)

    purged = service.purge(older_than=0)

    assert purged == maintenance.PurgeCount(items=count, attempts=count, documents=count)
    assert _remaining(service) == (set(), set(), 0, 0)
    assert_stats_exact(service)


def test_purge_dry_run_matches_purge_across_batches(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    _finish_many(service, root, maintenance.PURGE_BATCH + 1)
    [first] = service.add_documents([facts(root / "0.pdf", f"{0:064d}")], force=True)
    assert isinstance(first, Queued)
    complete(service, claim_one(service))  # document 0 now has items 1 and PURGE_BATCH + 2
    clock.advance(1)

    dry = service.purge(older_than=0, dry_run=True)

    assert dry == service.purge(older_than=0)


# --- stats ---------------------------------------------------------------------------


def test_stats_stay_exact_through_every_transition(make_queue: MakeQueue, clock: Clock, root: Path) -> None:
    service = make_queue(max_attempts=2, retry_delay=0)
    assert_stats_exact(service)
    a, b, c, d, e = (add(service, root / f"{name}.pdf") for name in "abcde")
    ocr = add(service, root / "a.pdf", operation="ocr")
    assert_stats_exact(service)
    first, second, third = service.claim(limit=3, worker="w1", lease_seconds=LEASE)
    assert_stats_exact(service)
    complete(service, first)
    assert fail(service, second) == "retrying"
    service.release([third])
    assert_stats_exact(service)
    again = claim_one(service)
    assert again.item_id == b.item_id
    assert fail(service, again) == "failed"
    assert_stats_exact(service)
    service.retry([b.item_id])
    service.cancel([d.item_id])
    assert_stats_exact(service)
    claim_one(service, operation="ocr", lease_seconds=SHORT_LEASE)
    service.cancel([ocr.item_id])
    let_leases_expire(service, clock, [ocr.item_id])
    retried = claim_one(service)  # its claim runs the sweep, which ends the ocr item cancelled
    assert retried.item_id == b.item_id
    assert item(service, ocr.item_id)["status"] == "cancelled"
    assert_stats_exact(service)
    clock.advance(1)
    purged = service.purge(older_than=0)  # a's two items and d's: both documents go
    assert (purged.items, purged.documents) == (3, 2)
    assert scalar(service, "SELECT count(*) FROM documents WHERE id = :id", {"id": a.document_id}) == 0
    assert_stats_exact(service)
    complete(service, retried)
    service.reprocess([str(b.document_id)])
    assert_stats_exact(service)
    stats = service.get_queue_stats()
    assert (stats.pending, stats.in_progress, stats.completed, stats.failed, stats.cancelled) == (
        3,
        0,
        1,
        0,
        0,
    )
    assert direct_counts(service) == {"process": {"pending": 2, "completed": 1}, "reprocess": {"pending": 1}}
    assert {c.item_id, e.item_id} <= {
        row[0] for row in service.db.read(lambda tx: tx.all("SELECT id FROM queue_items"))
    }


def test_stats_retrying_and_oldest_pending(make_queue: MakeQueue, root: Path) -> None:
    service = make_queue(retry_delay=300)
    first = add(service, root / "a.pdf")
    second = add(service, root / "b.pdf")
    assert service.get_queue_stats().oldest_pending_at == item(service, first.item_id)["created_at"]
    assert fail(service, claim_one(service)) == "retrying"

    stats = service.get_queue_stats()

    row = item(service, first.item_id)
    assert (stats.pending, stats.retrying) == (2, 1)
    assert stats.next_retry_at == pytest.approx(row["next_run_at"])
    assert stats.next_retry_at is not None and stats.next_retry_at > stats.now
    assert stats.oldest_pending_at == pytest.approx(row["created_at"])
    complete(service, claim_one(service))
    assert item(service, second.item_id)["status"] == "completed"
    assert service.get_queue_stats().oldest_pending_at == pytest.approx(row["created_at"])
    service.cancel([first.item_id])
    stats = service.get_queue_stats()
    assert (stats.retrying, stats.next_retry_at, stats.oldest_pending_at) == (0, None, None)


def test_stats_throughput_and_mean_processing_time(service: DocumentQueueService, root: Path) -> None:
    """The mean is of the processing times the workers measured, for completed attempts."""
    for name in ("a", "b", "c"):
        add(service, root / f"{name}.pdf")
    first, second, third = service.claim(limit=3, worker="w1", lease_seconds=LEASE)

    service.finish(
        [
            (first, Result(ok=True, text="a", metadata={}, seconds=4.0)),
            (second, Result(ok=True, text="b", metadata={}, seconds=6.0)),
            (third, Result(ok=False, error="bad", permanent=True, seconds=100.0)),
        ]
    )

    stats = service.get_queue_stats()
    assert (stats.finished_last_hour, stats.completed_last_hour) == (3, 2)
    assert stats.mean_processing_seconds == pytest.approx(5.0)


@needs_clock
def test_stats_throughput_covers_the_last_hour(
    service: DocumentQueueService, clock: Clock, root: Path
) -> None:
    add(service, root / "old.pdf")
    service.finish([(claim_one(service), Result(ok=True, metadata={}, seconds=2.0))])
    clock.advance(1800)
    add(service, root / "new.pdf")
    service.finish([(claim_one(service), Result(ok=True, metadata={}, seconds=8.0))])
    clock.advance(1800)  # the first finished exactly an hour ago: still counted

    stats = service.get_queue_stats()
    assert (stats.now, stats.completed_last_hour) == (START + 3600, 2)
    assert stats.mean_processing_seconds == pytest.approx(5.0)
    clock.advance(0.5)
    stats = service.get_queue_stats()
    assert (stats.finished_last_hour, stats.completed_last_hour) == (1, 1)
    assert stats.mean_processing_seconds == pytest.approx(8.0)
    clock.advance(1800)
    stats = service.get_queue_stats()
    assert (stats.finished_last_hour, stats.completed_last_hour, stats.mean_processing_seconds) == (
        0,
        0,
        None,
    )


def test_stats_list_who_holds_in_progress_items(service: DocumentQueueService, root: Path) -> None:
    a = add(service, root / "a.pdf")
    b = add(service, root / "b.pdf", operation="ocr")
    add(service, root / "c.pdf")
    claim_one(service, worker="host:1:w1", lease_seconds=LEASE)
    claim_one(service, worker="host:2:w2", operation="ocr", lease_seconds=LEASE * 2)

    leases = service.get_queue_stats().leases

    assert [(lease.item_id, lease.operation, lease.worker, lease.path) for lease in leases] == [
        (a.item_id, "process", "host:1:w1", str(root / "a.pdf")),
        (b.item_id, "ocr", "host:2:w2", str(root / "b.pdf")),
    ]
    for lease in leases:
        row = item(service, lease.item_id)
        assert lease.lease_expires_at == pytest.approx(row["lease_expires_at"])
        assert lease.started_at == pytest.approx(row["started_at"])


# --- reprocess -----------------------------------------------------------------------


def _processed(service: DocumentQueueService, path: Path, **metadata: Any) -> Queued:
    queued = add(service, path)
    lease = claim_one(service)
    assert lease.item_id == queued.item_id
    assert complete(service, lease, **metadata) == "completed"
    return queued


def test_reprocess_by_id_and_by_path(service: DocumentQueueService, root: Path) -> None:
    a = _processed(service, root / "a.pdf")
    b = _processed(service, root / "b.pdf")
    c = _processed(service, root / "c.pdf")

    changes = service.reprocess([str(a.document_id), str(root / "b.pdf"), str(root / "a.pdf")], priority=7)

    assert [(ch.document_id, ch.action, ch.operation) for ch in changes] == [
        (a.document_id, "queued", "reprocess"),
        (b.document_id, "queued", "reprocess"),
    ]
    for change in changes:
        assert change.item_id is not None
        row = item(service, change.item_id)
        assert (row["status"], row["operation"], row["priority"]) == ("pending", "reprocess", 7)
        assert document(service, change.document_id)["status"] == "pending"
    assert document(service, c.document_id)["status"] == "processed"
    again = service.reprocess([str(b.document_id)])
    assert [(ch.item_id, ch.action) for ch in again] == [(changes[1].item_id, "already queued")]


def test_reprocess_failed_and_stale_documents(service: DocumentQueueService, root: Path) -> None:
    current = extractor_version(PDF)
    assert current is not None
    stale = _processed(service, root / "stale.pdf", extractor_version="old")
    _processed(service, root / "fresh.pdf", extractor_version=current)
    _processed(service, root / "no-extractor.pdf")
    broken = add(service, root / "broken.pdf")
    fail(service, claim_one(service), permanent=True)
    add(service, root / "busy.pdf")  # pending: neither failed nor processed

    failed = service.reprocess(failed=True, dry_run=True)
    outdated = service.reprocess(stale=True, dry_run=True)
    both = service.reprocess(failed=True, stale=True)

    assert [(ch.document_id, ch.action, ch.item_id) for ch in failed] == [
        (broken.document_id, "queued", None)
    ]
    assert [ch.document_id for ch in outdated] == [stale.document_id]
    assert [ch.document_id for ch in both] == [broken.document_id, stale.document_id]
    assert all(ch.action == "queued" and ch.item_id is not None for ch in both)


def test_reprocess_reports_active_documents_as_already_queued(
    service: DocumentQueueService, root: Path
) -> None:
    broken = add(service, root / "a.pdf")
    fail(service, claim_one(service), permanent=True)
    running = add(service, root / "b.pdf")
    claim_one(service)
    waiting = add(service, root / "c.pdf")

    changes = service.reprocess(
        [str(broken.document_id), str(running.document_id), str(waiting.document_id)], failed=True
    )

    assert [(ch.document_id, ch.item_id, ch.action) for ch in changes[1:]] == [
        (running.document_id, running.item_id, "already queued"),
        (waiting.document_id, waiting.item_id, "already queued"),
    ]
    assert (changes[0].document_id, changes[0].action) == (broken.document_id, "queued")
    assert len(changes) == 3  # failed=True adds nothing new: the failed one was named already


def test_reprocess_dry_run_changes_nothing(service: DocumentQueueService, root: Path) -> None:
    a = _processed(service, root / "a.pdf", extractor_version="old")

    changes = service.reprocess([str(a.document_id)], stale=True, dry_run=True)

    assert [(ch.document_id, ch.item_id, ch.action) for ch in changes] == [(a.document_id, None, "queued")]
    assert scalar(service, "SELECT count(*) FROM queue_items") == 1
    assert document(service, a.document_id)["status"] == "processed"


def test_a_purge_racing_an_enqueue_keeps_the_document_on_postgresql(pg_url: str) -> None:
    """The purge deletes a document's old items, then the document, while an enqueue gives
    it a new item in a transaction still open: the purge waits for it, sees the new item
    once it commits (instead of failing on the foreign key), and keeps the document."""
    import threading

    import psycopg

    service = DocumentQueueService(pg_url, settings=Settings(db=pg_url, lock_timeout=20))
    [queued] = service.add_documents([FileFacts("/srv/docs/a.txt", 1, "a" * 64, "text/plain")])
    [lease] = service.claim(worker="host:1:w", lease_seconds=60)
    service.finish([(lease, Result(ok=True, text="a", metadata={}))])
    enqueue = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    enqueue.execute(
        "INSERT INTO queue_items (document_id, operation, priority, status, attempts, next_run_at, "
        "cancel_requested, created_at) VALUES (%s, 'ocr', 0, 'pending', 0, 0, false, 0)",
        (queued.document_id,),  # type: ignore[union-attr]
    )
    outcome: list[object] = []

    def purge() -> None:
        try:
            outcome.append(service.purge(older_than=0))
        except BaseException as error:  # reported to the test's thread
            outcome.append(error)

    purger = threading.Thread(target=purge)
    purger.start()
    time.sleep(1.0)  # the purge now waits on the enqueue's lock on the document
    enqueue.commit()
    enqueue.close()
    purger.join(30)

    assert len(outcome) == 1 and not isinstance(outcome[0], BaseException), outcome
    assert outcome[0].items == 1 and outcome[0].documents == 0  # type: ignore[attr-defined]
    assert service.get_queue_stats().pending == 1  # the new item, on the document that was kept
    service.close()
