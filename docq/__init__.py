"""docq: a durable queue for batches of documents.

Library use needs no CLI::

    from docq import DocumentQueueService, process_document_queue

Names are imported on first use, so that ``import docq`` (and ``docq --help``) stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "DocumentQueueService": "docq.queue",
    "Database": "docq.db",
    "Settings": "docq.config",
    "process_document_queue": "docq.worker",
    "WorkOptions": "docq.worker",
    "WorkSummary": "docq.worker",
    "enqueue_paths": "docq.enqueue",
}

if TYPE_CHECKING:
    from docq.config import Settings
    from docq.db import Database
    from docq.enqueue import enqueue_paths
    from docq.queue import DocumentQueueService
    from docq.worker import WorkOptions, WorkSummary, process_document_queue

__all__ = [
    "Database",
    "DocumentQueueService",
    "Settings",
    "WorkOptions",
    "WorkSummary",
    "__version__",
    "enqueue_paths",
    "process_document_queue",
]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'docq' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
