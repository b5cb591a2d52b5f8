"""Prometheus metrics of a queue, read fresh at each scrape from the library's cheap reads
(the kept counters, the live workers), in the text format `prometheus_client` writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docq.queue import DocumentQueueService

STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


def render(service: DocumentQueueService) -> tuple[bytes, str]:
    """The metrics page and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_QueueCollector(service))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _QueueCollector:
    """One scrape: one snapshot of the queue, so that every figure is of the same moment."""

    def __init__(self, service: DocumentQueueService) -> None:
        self.service = service

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from docq import stats, views
        from docq.render.listing import worker_state

        shot = stats.snapshot(self.service.db, minutes=60)
        s = shot.stats
        items = GaugeMetricFamily(
            "docq_items", "Queue items by status and operation.", labels=["status", "operation"]
        )
        for operation, counts in sorted(s.by_operation.items()):
            for status in STATUSES:
                items.add_metric([status, operation], counts.get(status, 0))
        yield items
        age = 0.0 if s.oldest_pending_at is None else max(0.0, s.now - s.oldest_pending_at)
        yield GaugeMetricFamily(
            "docq_oldest_pending_age_seconds", "Age of the oldest pending item (0: none).", value=age
        )
        yield GaugeMetricFamily("docq_retrying_items", "Pending items that failed before.", value=s.retrying)
        yield GaugeMetricFamily(
            "docq_claimed_ahead_items", "Leased items not handed to a child yet.", value=s.claimed_ahead
        )
        workers = GaugeMetricFamily("docq_workers", "Registered workers by state.", labels=["state"])
        states = {"alive": 0, "dead": 0, "stopped": 0}
        for worker in views.list_workers(self.service.db, include_stopped=True, limit=1000):
            state = worker_state(worker, s.now)
            states[state] = states.get(state, 0) + 1
        for state, count in states.items():
            workers.add_metric([state], count)
        yield workers
        # Items finished in the queue so far (purged ones aside): monotonic between purges,
        # so rate() over them gives completions and failures per second.
        yield CounterMetricFamily(
            "docq_items_completed", "Items completed, as counted now.", value=s.completed
        )
        yield CounterMetricFamily(
            "docq_items_failed", "Items failed for good, as counted now.", value=s.failed
        )
        yield GaugeMetricFamily(
            "docq_finished_last_hour", "Items that finished in the last hour.", value=s.finished_last_hour
        )
        mean = s.mean_processing_seconds
        yield GaugeMetricFamily(
            "docq_mean_processing_seconds",
            "Mean attempt duration over the last hour (0: none finished).",
            value=0.0 if mean is None else mean,
        )
