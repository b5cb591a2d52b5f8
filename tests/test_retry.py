"""The retry policy: exponential backoff with jitter, attempt limits, permanent errors.

The pure policy is checked over many seeded draws; the service's use of it runs on
SQLite with an injected clock, so that every due time is exact.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Iterator
from typing import Any

import pytest

from docq.config import Settings
from docq.items import Lease, Result
from docq.processing import FileFacts
from docq.queue import DocumentQueueService, Queued
from docq.retry import JITTER, RetryPolicy

SEED = 20240611
START = 1_700_000_000.0
LEASE = 60.0
DRAWS = 4000


class Clock:
    """A clock the test moves by hand (``clock=`` of the service)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def seeded(**fields: Any) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(SEED), **fields)


def draws(policy: RetryPolicy, attempt: int, count: int = DRAWS) -> list[float]:
    return [policy.delay(attempt) for _ in range(count)]


# --- the policy ----------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6])
def test_delay_doubles_with_each_attempt(attempt: int) -> None:
    nominal = 10.0 * 2 ** (attempt - 1)

    delays = draws(seeded(base=10.0, max_delay=10_000.0), attempt)

    assert min(delays) >= nominal * (1 - JITTER)
    assert max(delays) <= nominal * (1 + JITTER)
    assert statistics.fmean(delays) == pytest.approx(nominal, rel=0.02)


@pytest.mark.parametrize("attempt", [4, 5, 12, 64, 10_000])
def test_delay_caps_at_max_delay(attempt: int) -> None:
    """At the cap the jitter can only shorten the wait: never more than max_delay."""
    delays = draws(seeded(base=30.0, max_delay=200.0), attempt)

    assert max(delays) == 200.0
    assert min(delays) >= 200.0 * (1 - JITTER)
    assert 0.45 < sum(1 for delay in delays if delay < 200.0) / len(delays) < 0.55


def test_jitter_spreads_delays_over_a_quarter_either_way() -> None:
    delays = draws(seeded(base=100.0), 1, count=20_000)

    assert JITTER == 0.25
    assert 75.0 <= min(delays) < 75.5
    assert 124.5 < max(delays) <= 125.0
    below = sum(1 for delay in delays if delay < 100.0)
    assert 0.45 < below / len(delays) < 0.55
    assert len(set(delays)) > 19_000


def test_same_seed_same_schedule() -> None:
    one, two, other = seeded(), seeded(), RetryPolicy(rng=random.Random(SEED + 1))

    schedule = [one.delay(attempt) for attempt in range(1, 6)]

    assert schedule == [two.delay(attempt) for attempt in range(1, 6)]
    assert schedule != [other.delay(attempt) for attempt in range(1, 6)]


def test_should_retry_until_max_attempts() -> None:
    policy = seeded(max_attempts=3)

    assert [policy.should_retry(attempt, permanent=False) for attempt in (1, 2, 3, 4)] == [
        True,
        True,
        False,
        False,
    ]
    assert policy.should_retry(1, permanent=True) is False
    assert policy.should_retry(1, permanent=False, max_attempts=1) is False
    assert policy.should_retry(4, permanent=False, max_attempts=5) is True  # the item's own limit wins


def test_policy_from_settings() -> None:
    settings = Settings(max_attempts=2, retry_delay=4.0, retry_max_delay=9.0)

    policy = RetryPolicy.from_settings(settings, rng=random.Random(SEED))

    assert (policy.max_attempts, policy.base, policy.max_delay) == (2, 4.0, 9.0)
    assert 9.0 * (1 - JITTER) <= policy.delay(3) <= 9.0


# --- the policy applied by the service (SQLite, injected clock) ---------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(db_path: str, clock: Clock) -> Iterator[DocumentQueueService]:
    """A service on SQLite whose policy is seeded: 3 attempts, 30 s base, 1000 s cap."""
    policy = seeded(max_attempts=3, base=30.0, max_delay=1000.0)
    queue = DocumentQueueService(
        db_path, settings=Settings(db=db_path, lock_timeout=10), clock=clock, policy=policy
    )
    yield queue
    queue.close()


def add(service: DocumentQueueService, name: str = "a.pdf", **options: Any) -> Queued:
    [queued] = service.add_documents(
        [FileFacts(f"/srv/docs/{name}", 10, "c" * 64, "application/pdf")], **options
    )
    assert isinstance(queued, Queued)
    return queued


def claim(service: DocumentQueueService) -> list[Lease]:
    return service.claim(limit=10, worker="w1", lease_seconds=LEASE)


def fail(service: DocumentQueueService, lease: Lease, error: str = "boom", *, permanent: bool = False) -> str:
    [verdict] = service.finish([(lease, Result(ok=False, error=error, permanent=permanent))])
    return verdict


def item(service: DocumentQueueService, item_id: int) -> dict[str, Any]:
    return service.db.read(lambda tx: tx.dicts("SELECT * FROM queue_items WHERE id = :id", {"id": item_id}))[
        0
    ]


def history(service: DocumentQueueService, item_id: int) -> list[tuple[int, str, str]]:
    sql = "SELECT attempt, outcome, error FROM attempts WHERE item_id = :id ORDER BY id"
    return [tuple(row) for row in service.db.read(lambda tx: tx.all(sql, {"id": item_id}))]


def test_next_run_at_is_now_plus_the_policys_delay(service: DocumentQueueService, clock: Clock) -> None:
    queued = add(service)
    twin = seeded(max_attempts=3, base=30.0, max_delay=1000.0)  # draws the same delays
    [lease] = claim(service)
    clock.now += 7

    assert fail(service, lease) == "retrying"

    row = item(service, queued.item_id)
    assert row["next_run_at"] == pytest.approx(START + 7 + twin.delay(1), abs=1e-6)
    assert 30 * (1 - JITTER) <= row["next_run_at"] - clock.now <= 30 * (1 + JITTER)
    assert row["status"] == "pending"


def test_a_waiting_item_is_claimed_only_once_due(service: DocumentQueueService, clock: Clock) -> None:
    queued = add(service)
    [lease] = claim(service)
    fail(service, lease)
    due = item(service, queued.item_id)["next_run_at"]

    clock.now = due - 0.001
    assert claim(service) == []
    assert service.get_pending_items() == []
    assert service.next_due_in() == pytest.approx(0.001, abs=1e-6)
    clock.now = due
    [again] = claim(service)

    assert (again.item_id, again.attempt) == (queued.item_id, 2)


def test_backoff_grows_and_max_attempts_ends_in_failed(service: DocumentQueueService, clock: Clock) -> None:
    queued = add(service)
    waits: list[float] = []
    verdicts: list[str] = []
    for attempt in (1, 2, 3):
        [lease] = claim(service)
        assert lease.attempt == attempt
        verdicts.append(fail(service, lease, f"try {attempt}"))
        row = item(service, queued.item_id)
        if row["status"] == "pending":
            waits.append(row["next_run_at"] - clock.now)
            clock.now = row["next_run_at"]

    assert verdicts == ["retrying", "retrying", "failed"]
    assert 30 * (1 - JITTER) <= waits[0] <= 30 * (1 + JITTER)
    assert 60 * (1 - JITTER) <= waits[1] <= 60 * (1 + JITTER)
    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 3, "transient: try 3")
    assert row["finished_at"] == clock.now
    assert [outcome for _attempt, outcome, _error in history(service, queued.item_id)] == ["failed"] * 3
    assert claim(service) == []


def test_the_items_own_max_attempts_wins(service: DocumentQueueService) -> None:
    queued = add(service, max_attempts=1)

    [lease] = claim(service)

    assert lease.max_attempts == 1
    assert fail(service, lease) == "failed"
    assert item(service, queued.item_id)["status"] == "failed"


def test_a_permanent_error_fails_on_the_first_attempt(service: DocumentQueueService, clock: Clock) -> None:
    queued = add(service)
    [lease] = claim(service)

    assert fail(service, lease, "corrupt: no trailer", permanent=True) == "failed"

    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["finished_at"]) == ("failed", 1, clock.now)
    assert row["last_error"] == "permanent: corrupt: no trailer"
    assert history(service, queued.item_id) == [(1, "failed", "permanent: corrupt: no trailer")]


def test_last_error_says_which_kind(service: DocumentQueueService, clock: Clock) -> None:
    queued = add(service)
    [lease] = claim(service)
    fail(service, lease, "timeout")
    assert item(service, queued.item_id)["last_error"] == "transient: timeout"
    clock.now = item(service, queued.item_id)["next_run_at"]
    [lease] = claim(service)

    fail(service, lease, "unsupported type", permanent=True)

    assert item(service, queued.item_id)["last_error"] == "permanent: unsupported type"
    assert [error for _attempt, _outcome, error in history(service, queued.item_id)] == [
        "transient: timeout",
        "permanent: unsupported type",
    ]


def test_retry_gives_a_fresh_budget(service: DocumentQueueService, clock: Clock) -> None:
    queued = add(service, max_attempts=2)
    for _ in range(2):
        [lease] = claim(service)
        fail(service, lease)
        clock.now = max(clock.now, item(service, queued.item_id)["next_run_at"])
    assert item(service, queued.item_id)["status"] == "failed"

    service.retry([queued.item_id])
    row = item(service, queued.item_id)
    assert (row["status"], row["attempts"], row["next_run_at"]) == ("pending", 0, clock.now)
    [lease] = claim(service)
    assert lease.attempt == 1
    assert fail(service, lease) == "retrying"  # one attempt of the new budget is left
    clock.now = item(service, queued.item_id)["next_run_at"]
    [lease] = claim(service)
    assert fail(service, lease) == "failed"

    assert [attempt for attempt, _outcome, _error in history(service, queued.item_id)] == [1, 2, 1, 2]


def test_mark_failed_uses_the_same_policy(service: DocumentQueueService, clock: Clock) -> None:
    queued = add(service)
    queue_item = service.get_item(queued.item_id)
    assert service.mark_in_progress(queue_item)

    assert service.mark_failed(queue_item, "flaky") == "pending"

    row = item(service, queued.item_id)
    assert 30 * (1 - JITTER) <= row["next_run_at"] - clock.now <= 30 * (1 + JITTER)
    assert row["last_error"] == "transient: flaky"


def test_max_delay_caps_the_services_wait(db_path: str, clock: Clock) -> None:
    policy = seeded(max_attempts=10, base=100.0, max_delay=150.0)
    settings = Settings(db=db_path, lock_timeout=10)
    service = DocumentQueueService(db_path, settings=settings, clock=clock, policy=policy)
    try:
        queued = add(service)
        waits = []
        for _ in range(4):
            [lease] = claim(service)
            fail(service, lease)
            due = item(service, queued.item_id)["next_run_at"]
            waits.append(due - clock.now)
            clock.now = due
    finally:
        service.close()

    assert 75 <= waits[0] <= 125
    assert all(150 * (1 - JITTER) <= wait <= 150 for wait in waits[1:])
