"""The worker: `process_document_queue()` and everything a running ``docq work`` needs.

* `docq.worker.loop`: the loop (claim, renew, record, stop), once or ``--loop``;
* `docq.worker.crew`: the child processes, and the claimed items waiting for one;
* `docq.worker.child_handle`: the worker's side of a child process;
* `docq.worker.child_main`: the program a child process runs;
* `docq.worker.protocol`: the typed messages between the two;
* `docq.worker.handlers`: what a child runs per item (the extraction, a Python function);
* `docq.worker.commands`: running a user's command over an item, safely;
* `docq.worker.waker`: stop signals turned into something the loop can wait on.

Names are imported on first use: a child process starts as ``python -m
docq.worker.child_main`` and must not pay for the loop's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docq.worker.loop import ItemEvent, WorkOptions, WorkSummary, process_document_queue

__all__ = ["ItemEvent", "WorkOptions", "WorkSummary", "process_document_queue"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from docq.worker import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'docq.worker' has no attribute {name!r}")
