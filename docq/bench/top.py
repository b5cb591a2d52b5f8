"""``docq top`` on a large queue: how long its first screen and a page of items take.

The app runs headless (Textual's test driver) on a scratch queue of ``options.top_items``
pending items. Its reads are the library's cheap ones (the kept counters, the recent end
of an index, a page of items by primary key), so the times should not grow with the queue.
"""

from __future__ import annotations

import asyncio
import time

from docq.bench.common import (
    BenchOptions,
    Measure,
    Progress,
    Report,
    fake_files,
    open_service,
    scratch_database,
)
from docq.config import Settings

SECTION = "docq top"


def top_screens(
    report: Report, options: BenchOptions, settings: Settings, scratch: str, progress: Progress
) -> None:
    """Time the first screen (start-up to the items view drawn) and paging, in ms."""
    progress(f"docq top on {options.top_items:,} items: the first screen and a page")
    with scratch_database(options, scratch, "top") as target:
        service = open_service(target, settings)
        try:
            for start in range(0, options.top_items, 50_000):
                count = min(50_000, options.top_items - start)
                service.add_documents(fake_files(count, f"top{start}"))
            first, page, back = asyncio.run(_drive(service, target))
        finally:
            service.close()
    items = f"{options.top_items:,} items"
    report.add(
        Measure(
            SECTION, f"first screen, {items} (start-up included)", first, "ms", "<= 1000 ms", first <= 1000
        )
    )
    report.add(Measure(SECTION, f"next page of 200, {items}", page, "ms", "<= 250 ms", page <= 250))
    report.add(Measure(SECTION, f"a refresh (every second), {items}", back, "ms", "<= 250 ms", back <= 250))


async def _drive(service: object, target: str) -> tuple[float, float, float]:
    from docq.tui.app import TopApp

    started = time.perf_counter()
    app = TopApp(service, where=target, interval=3600)  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("i")
        await pilot.pause()
        first = (time.perf_counter() - started) * 1000
        begun = time.perf_counter()
        await pilot.press("right_square_bracket")
        await pilot.pause()
        page = (time.perf_counter() - begun) * 1000
        begun = time.perf_counter()
        app.refresh_all()
        await pilot.pause()
        refresh = (time.perf_counter() - begun) * 1000
        await pilot.press("q")
    return first, page, refresh
