"""Bulk enqueue: turn paths (arguments, directories, a list on stdin) into queued items.

Paths stream through in batches, so a directory of 100,000 files or
``find -print0 | docq enqueue -0 --from -`` runs in bounded memory: each batch is
inspected (stat, SHA-256, type) outside any transaction, several files at a time on
threads (hashing and reading release the GIL), then registered in one transaction. An
input that cannot be queued (missing, unreadable, not a regular file, a directory
without ``-r``) is rejected with its reason and the rest still go in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from docq.paths import to_db
from docq.queue import DocumentQueueService, Queued, Skipped

BATCH_SIZE = 20_000
"""Paths registered per transaction: a batch of this many is all-or-nothing."""

_INSPECT_TASK = 64  # paths per thread task: enough to amortise the task's overhead
_INSPECT_THREADS = 4
_PARALLEL_FROM = 256 * 1024  # mean file size from which hashing on threads pays off


@dataclass(frozen=True)
class Rejected:
    """An input that was not queued, and why."""

    path: str
    error: str


@dataclass
class EnqueueReport:
    """What ``docq enqueue`` did with each input."""

    queued: list[Queued] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """The ``--json`` form (paths as stored, so that names that are not UTF-8 stay
        valid JSON: see `docq.paths`)."""
        return {
            "queued": [
                {"document_id": q.document_id, "item_id": q.item_id, "path": to_db(q.path)}
                for q in self.queued
            ],
            "skipped": [
                {"path": to_db(s.path), "reason": s.reason, "document_id": s.document_id}
                for s in self.skipped
            ],
            "rejected": [{"path": to_db(r.path), "error": r.error} for r in self.rejected],
        }


def read_path_list(stream: IO[bytes], *, null: bool) -> Iterator[str]:
    """Paths from ``stream``, one a line (or NUL-separated with ``null``, as ``find
    -print0`` writes them). Bytes are decoded as the file system does, so names that are
    not UTF-8 survive. Empty entries are skipped."""
    separator = b"\0" if null else b"\n"
    pending = b""
    while chunk := stream.read(65536):
        pending += chunk
        *complete, pending = pending.split(separator)
        for raw in complete:
            if path := _clean_entry(raw, null):
                yield path
    if path := _clean_entry(pending, null):
        yield path


def _clean_entry(raw: bytes, null: bool) -> str:
    if not null:
        raw = raw.removesuffix(b"\r")
    return os.fsdecode(raw) if raw else ""


def expand(paths: Iterable[str], *, recursive: bool) -> Iterator[str | Rejected]:
    """Each input path, with directories replaced by the files under them (sorted) when
    ``recursive``, or rejected when not. A directory that cannot be read is rejected."""
    for path in paths:
        if not os.path.isdir(path):
            yield path
        elif not recursive:
            yield Rejected(path, "is a directory (use -r/--recursive to queue the files in it)")
        else:
            unreadable: list[OSError] = []
            for root, dirs, files in os.walk(path, onerror=unreadable.append):
                yield from _rejections(unreadable)
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
            yield from _rejections(unreadable)


def _rejections(errors: list[OSError]) -> Iterator[Rejected]:
    while errors:
        error = errors.pop(0)
        yield Rejected(str(error.filename), f"cannot read directory: {describe_os_error(error)}")


def enqueue_paths(
    service: DocumentQueueService,
    paths: Iterable[str],
    *,
    recursive: bool = False,
    operation: str = "process",
    priority: int = 0,
    force: bool = False,
    max_attempts: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    report: EnqueueReport | None = None,
    batch_size: int = BATCH_SIZE,
    stop: Callable[[], bool] | None = None,
) -> EnqueueReport:
    """Queue ``operation`` for every file named by ``paths`` (see `DocumentQueueService.add_documents`
    for what is skipped). ``on_progress`` is called with the number of inputs handled so far.

    Each batch of ``batch_size`` paths is one transaction, not the whole call. ``stop`` is
    asked between files: once it says so, the batch in progress is dropped before its
    transaction and the report tells what the batches before queued (an exception does
    the same, but then pass your own ``report`` to see it). Calling again with the same
    paths queues the rest: what is queued already is skipped."""
    report = report if report is not None else EnqueueReport()
    handled = 0
    inspector = _Inspector()
    try:
        for batch in _batches(expand(paths, recursive=recursive), batch_size):
            names = [entry for entry in batch if isinstance(entry, str)]
            report.rejected.extend(entry for entry in batch if isinstance(entry, Rejected))
            handled += len(batch) - len(names)
            facts = []
            for inspected in inspector.map(names):
                if stop is not None and stop():
                    return report
                for outcome in inspected:
                    if isinstance(outcome, Rejected):
                        report.rejected.append(outcome)
                    else:
                        facts.append(outcome)
                handled += len(inspected)
                if on_progress is not None:
                    on_progress(handled)
            if stop is not None and stop():
                return report
            added = service.add_documents(
                facts, operation=operation, priority=priority, force=force, max_attempts=max_attempts
            )
            for result in added:
                if isinstance(result, Queued):
                    report.queued.append(result)
                else:
                    report.skipped.append(result)
    finally:
        inspector.close()
    return report


class _Inspector:
    """Inspects files in tasks of a few dozen: inline while files are small (threads only
    add overhead there), on a thread pool once they are large enough for reading and
    hashing, which release the GIL, to run in parallel."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._files = 0
        self._bytes = 0

    def map(self, names: list[str]) -> Iterator[list[Any]]:
        tasks = _batches(names, _INSPECT_TASK)
        if self._pool is None and self._files and self._bytes / self._files >= _PARALLEL_FROM:
            self._pool = ThreadPoolExecutor(_INSPECT_THREADS, thread_name_prefix="docq-inspect")
        results = self._pool.map(_inspect_many, tasks) if self._pool else map(_inspect_many, tasks)
        for inspected in results:
            for outcome in inspected:
                if not isinstance(outcome, Rejected):
                    self._files += 1
                    self._bytes += outcome.size
            yield inspected

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _inspect_many(paths: list[str]) -> list[Any]:
    from docq.processing import inspect_file

    outcomes: list[Any] = []
    for path in paths:
        try:
            outcomes.append(inspect_file(path))
        except OSError as exc:
            outcomes.append(Rejected(path, describe_os_error(exc)))
    return outcomes


def describe_os_error(exc: OSError) -> str:
    """Why a path cannot be queued, in a few words."""
    from docq.processing import NotARegularFile

    if isinstance(exc, NotARegularFile):
        return f"not a regular file ({exc.kind.removeprefix('inode/')})"
    if isinstance(exc, FileNotFoundError):
        return "no such file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory (use -r/--recursive to queue the files in it)"
    return exc.strerror or str(exc)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
