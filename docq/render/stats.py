"""How ``docq stats`` looks: the counts and timings as tables, or its ``--json`` form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from docq.config import format_duration, iso
from docq.render import output
from docq.render.output import shown_path

if TYPE_CHECKING:
    from docq.stats import QueueStats


def stats_dict(s: QueueStats) -> dict[str, Any]:
    """The ``docq stats --json`` form: counts, then times as ISO 8601."""
    return {
        "pending": s.pending,
        "in_progress": s.in_progress,
        "claimed_ahead": s.claimed_ahead,
        "completed": s.completed,
        "failed": s.failed,
        "cancelled": s.cancelled,
        "total": s.total,
        "retrying": s.retrying,
        "next_retry_at": iso(s.next_retry_at),
        "oldest_pending_at": iso(s.oldest_pending_at),
        "oldest_pending_age_seconds": None
        if s.oldest_pending_at is None
        else round(s.now - s.oldest_pending_at, 3),
        "finished_last_hour": s.finished_last_hour,
        "completed_last_hour": s.completed_last_hour,
        "mean_processing_seconds": None
        if s.mean_processing_seconds is None
        else round(s.mean_processing_seconds, 4),
        "by_operation": s.by_operation,
        "in_progress_items": [
            {
                "item_id": lease.item_id,
                "operation": lease.operation,
                "path": shown_path(lease.path),
                "worker": lease.worker,
                "started_at": iso(lease.started_at),
                "lease_expires_at": iso(lease.lease_expires_at),
                "started": lease.started,
            }
            for lease in s.leases
        ],
    }


def stats(s: QueueStats, *, as_json: bool) -> None:
    """``docq stats``: the counts, the timings, and who holds the running items."""
    if as_json:
        output.print_json(stats_dict(s))
        return
    for grid in stats_tables(s):
        output.print_table(grid)
        output.out().print()


def stats_tables(s: QueueStats) -> list[Any]:
    """The tables of ``docq stats`` (shared with the live dashboard)."""
    counts = output.table("Status", "Items")
    for status, value in (
        ("pending", s.pending - s.retrying),
        ("retrying", s.retrying),
        ("in_progress", s.in_progress - s.claimed_ahead),
        ("claimed ahead", s.claimed_ahead),
        ("completed", s.completed),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
    ):
        counts.add_row(output.styled(status), str(value))
    counts.add_row("[bold]total[/]", f"[bold]{s.total}[/]")
    facts = output.table("", "")
    facts.show_header = False
    oldest = output.ago(s.oldest_pending_at, s.now)
    facts.add_row("oldest pending item", oldest.replace(" ago", " old"))
    facts.add_row("next retry due", _due(s.next_retry_at, s.now))
    facts.add_row("finished in the last hour", f"{s.finished_last_hour} ({s.completed_last_hour} completed)")
    mean = "-" if s.mean_processing_seconds is None else format_duration(s.mean_processing_seconds)
    facts.add_row("mean processing time (last hour)", mean)
    grids = [counts, facts]
    if len(s.by_operation) > 1 or any(op not in ("process", "reprocess") for op in s.by_operation):
        per = output.table("Operation", "Pending", "In progress", "Completed", "Failed", "Cancelled")
        for op, values in sorted(s.by_operation.items()):
            per.add_row(
                op,
                *(
                    str(values.get(k, 0))
                    for k in ("pending", "in_progress", "completed", "failed", "cancelled")
                ),
            )
        grids.append(per)
    if s.leases:
        held = output.table("Item", "Operation", "Worker", "Running for", "Lease until", "Path")
        for lease in s.leases:
            running = "-" if lease.started_at is None else format_duration(s.now - lease.started_at)
            if not lease.started:
                running = "claimed ahead"
            held.add_row(
                str(lease.item_id),
                lease.operation,
                lease.worker or "-",
                running,
                output.when(lease.lease_expires_at, s.now),
                output.PathCell(lease.path),
            )
        grids.append(held)
    return grids


def _due(timestamp: float | None, now: float) -> str:
    """When a retry is due; one whose time has come is due now, not "ago" (it waits for
    the next `docq work`, which runs it)."""
    if timestamp is None or timestamp > now or not output.out().is_terminal:
        return output.when(timestamp, now)
    since = output.ago(timestamp, now).removesuffix(" ago")
    return f"now (for {since}): the next `docq work` runs it"
