"""``docq export``: results for scripts, as JSON Lines or CSV, and text files in a folder.

Documents stream out in batches, so an export of any size runs in bounded memory. Text
files are named ``<document id>-<sanitised file name>.txt``: the id keeps names unique, so
one document can never overwrite another's file, and sanitising keeps every name inside
the folder (no ``/``, no ``..``, no leading dot); files are opened without following
symbolic links.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from docq.config import iso
from docq.db import Database
from docq.errors import UsageError
from docq.models import Document, ItemOutput, QueueItem
from docq.paths import from_db
from docq.views import ItemFilter, iter_documents

Format = Literal["jsonl", "csv"]

CSV_COLUMNS = (
    "id",
    "path",
    "status",
    "mime_type",
    "size",
    "sha256",
    "pages",
    "title",
    "author",
    "created",
    "words",
    "characters",
    "encrypted",
    "needs_ocr",
    "extractor",
    "extractor_version",
    "processed_at",
    "last_error",
)
_UNSAFE = re.compile(r"[^\w.\-]+")
MAX_NAME = 120  # bytes; with the id and ".txt" well within the usual 255-byte limit


@dataclass
class ExportCount:
    """How much an export wrote."""

    documents: int = 0
    text_files: int = 0


def export(
    db: Database,
    stream: IO[str] | None,
    *,
    fmt: Format = "jsonl",
    where: ItemFilter | None = None,
    text_dir: str | None = None,
) -> ExportCount:
    """Write one record per document to ``stream`` (if given) and, with ``text_dir``, one
    ``.txt`` file per processed document. ``where`` narrows the documents to those with
    matching items (without it: every document)."""
    where = where or ItemFilter(limit=None)
    if text_dir is not None:
        _prepare_dir(text_dir)
    writer = csv.writer(stream, lineterminator="\n") if fmt == "csv" and stream is not None else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    count = ExportCount()
    for document, items, outputs in iter_documents(db, where):
        count.documents += 1
        metadata = json.loads(document.metadata_json) if document.metadata_json else {}
        if stream is not None:
            if writer is not None:
                writer.writerow(_csv_row(document, metadata, items, iso(document.processed_at)))
            else:
                record = _json_record(document, metadata, items, outputs, iso(document.processed_at))
                stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        if text_dir is not None and document.text is not None:  # extracted, whatever is queued since
            write_text_file(text_dir, document, document.text)
            count.text_files += 1
    return count


def _facts(document: Document, processed_at: str | None) -> dict[str, Any]:
    """The document's own columns, shared by both formats."""
    return {
        "id": document.id,
        "path": document.path,
        "status": document.status,
        "mime_type": document.mime_type,
        "size": document.size,
        "sha256": document.sha256,
        "processed_at": processed_at,
    }


def _json_record(
    document: Document,
    metadata: dict[str, Any],
    items: Sequence[QueueItem],
    outputs: dict[int, ItemOutput],
    processed_at: str | None,
) -> dict[str, Any]:
    records = []
    for item in items:
        record: dict[str, Any] = {
            "id": item.id,
            "operation": item.operation,
            "status": item.status,
            "last_error": item.last_error,
        }
        output = outputs.get(item.id or 0)  # what a custom operation's command printed
        record["output"] = None if output is None else {"text": output.text, "note": output.note}
        records.append(record)
    return {**_facts(document, processed_at), "metadata": metadata, "text": document.text, "items": records}


def _csv_row(
    document: Document, metadata: dict[str, Any], items: Sequence[QueueItem], processed_at: str | None
) -> list[Any]:
    values = _facts(document, processed_at)
    values["last_error"] = items[-1].last_error if items else None
    return [values[column] if column in values else metadata.get(column) for column in CSV_COLUMNS]


def text_file_name(document_id: int, path: str) -> str:
    """The file name of a document's text: ``<id>-<name>.txt``, safe in any folder and
    short enough for any file system (at most ``MAX_NAME`` bytes of the original name)."""
    base = os.path.basename(from_db(path)) or "document"
    safe = _UNSAFE.sub("_", base).strip("._-") or "document"
    encoded = safe.encode("utf-8")
    if len(encoded) > MAX_NAME:
        safe = encoded[:MAX_NAME].decode("utf-8", "ignore")  # never cut a character in two
    return f"{document_id}-{safe}.txt"


def write_text_file(directory: str, document: Document, text: str) -> str:
    """Write ``text`` to the document's file in ``directory``; returns the file's path.

    The file is written beside its final name and renamed over it, which replaces
    whatever was there (a symbolic link included) without ever following a link. Its mode
    is what the umask allows a new file (0644 under the usual 022, 0600 under 077). A
    directory standing at the file's name is a `UsageError`.
    """
    import tempfile

    assert document.id is not None
    target = os.path.join(directory, text_file_name(document.id, document.path))
    if os.path.isdir(target) and not os.path.islink(target):
        raise UsageError(f"cannot write {target}: a directory stands at that name in --text-dir")
    fd, scratch = tempfile.mkstemp(dir=directory, prefix=".docq-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(scratch, 0o666 & ~_umask())  # mkstemp makes it 0600 whatever the umask
        os.replace(scratch, target)
    except BaseException:
        if os.path.exists(scratch):
            os.remove(scratch)
        raise
    return target


def _umask() -> int:
    """This process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and put back at once
    os.umask(mask)
    return mask


def _prepare_dir(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --text-dir {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise UsageError(f"--text-dir {directory} is not writable")
