"""The HTTP API of ``docq serve``: what the CLI does, as JSON over HTTP.

Every endpoint but ``/healthz`` needs the server's token (``Authorization: Bearer T``,
``?token=T`` or the ``docq_token`` cookie). Answers have the shapes of the CLI's
``--json``; errors are ``{"error": "..."}`` with 400 (bad input), 403 (read-only), 404
(not found), 409 (not allowed in the item's state), 413 (upload too large) or 503 (the
database is busy or away). Endpoints are ``async`` and call the library in the event
loop's thread: each call is one short transaction, and one thread keeps the database
connection to itself. Processing never runs in a request: uploads are queued, and
``POST /api/process`` runs a bounded ``docq work`` in a subprocess.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from docq import __version__
from docq.config import parse_duration
from docq.errors import DatabaseBusy, DatabaseError, DocqError, InvalidTransition, NotFoundError, UsageError

if TYPE_CHECKING:
    from docq.queue import DocumentQueueService

CHUNK = 1024 * 1024  # bytes an upload is streamed to disk in
_UNSAFE = re.compile(r"[^\w.\-]+")
STATUS_OF = {
    NotFoundError: 404,
    InvalidTransition: 409,
    UsageError: 400,
    DatabaseBusy: 503,
    DatabaseError: 503,
}


def create_app(
    service: DocumentQueueService,
    *,
    token: str,
    upload_dir: str,
    max_size: int,
    read_only: bool = False,
    work_command: list[str] | None = None,
) -> FastAPI:
    """The FastAPI app over ``service``'s queue. ``work_command`` is how to start
    ``docq`` for the cron endpoint (default: this Python's ``-m docq``)."""
    app = FastAPI(title="docq", version=__version__, summary="A durable queue for batches of documents.")
    upload_root = Path(upload_dir)
    target = service.db.target.path or service.db.target.url or ""
    docq = work_command or [sys.executable, "-m", "docq"]

    def authorised(request: Request) -> None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        given = given or request.query_params.get("token", "") or request.cookies.get("docq_token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "a token is needed: Authorization: Bearer TOKEN, or ?token=TOKEN")

    def writable() -> None:
        if read_only:
            raise HTTPException(403, "read-only: docq serve was started with --read-only")

    guard = [Depends(authorised)]
    change = [Depends(authorised), Depends(writable)]

    @app.exception_handler(DocqError)
    async def docq_error(_request: Request, error: DocqError) -> JSONResponse:
        status = next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 500)
        return JSONResponse({"error": str(error)}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 when the database answers, 503 when it does not."""
        try:
            service.get_queue_stats()
        except DocqError as error:
            return JSONResponse({"status": "unavailable", "error": str(error)}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.post("/api/documents", status_code=202, dependencies=change)
    async def upload_document(
        file: Annotated[UploadFile, File()],
        priority: Annotated[int, Form()] = 0,
        operation: Annotated[str, Form()] = "process",
    ) -> dict[str, Any]:
        """Store the upload under --upload-dir and queue it; processing happens in a worker."""
        from docq.enqueue import enqueue_paths

        path = await _store(file, upload_root, max_size)
        try:
            report = enqueue_paths(service, [str(path)], operation=operation, priority=priority)
        except DocqError:
            path.unlink(missing_ok=True)
            raise
        if report.rejected:
            path.unlink(missing_ok=True)
            raise HTTPException(400, report.rejected[0].error)
        [queued] = report.queued
        return {"document_id": queued.document_id, "item_id": queued.item_id, "status": "pending"}

    @app.get("/api/documents/{document_id}", dependencies=guard)
    async def show_document(document_id: int) -> dict[str, Any]:
        from docq.render.show import document_dict
        from docq.views import show_document as read

        return document_dict(read(service.db, _id(document_id)))

    @app.get("/api/documents/{document_id}/text", dependencies=guard, response_class=PlainTextResponse)
    async def document_text(document_id: int) -> str:
        from docq.views import show_document as read

        return read(service.db, _id(document_id)).document.text or ""

    @app.post("/api/documents/{document_id}/reprocess", status_code=202, dependencies=change)
    async def reprocess_document(document_id: int) -> dict[str, Any]:
        return _changes(service.reprocess([_id(document_id)]))

    @app.get("/api/items", dependencies=guard)
    async def list_items(
        status: str | None = None,
        operation: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        cursor: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """Items newest first; ``next_cursor`` gives the next page (by id, never OFFSET)."""
        from docq.render.listing import item_row_dict
        from docq.views import ItemFilter
        from docq.views import list_items as read

        statuses = tuple(part for part in (status or "").split(",") if part)
        rows = read(
            service.db, ItemFilter(statuses=statuses, operation=operation, limit=limit, before=cursor)
        )
        more = len(rows) == limit
        return {
            "items": [item_row_dict(row) for row in rows],
            "next_cursor": rows[-1].item.id if more else None,
        }

    @app.post("/api/items/{item_id}/retry", dependencies=change)
    async def retry_item(item_id: int) -> dict[str, Any]:
        return _changes(service.retry([item_id]))

    @app.post("/api/items/{item_id}/cancel", dependencies=change)
    async def cancel_item(item_id: int) -> dict[str, Any]:
        return _changes(service.cancel([item_id]))

    @app.post("/api/purge", dependencies=change)
    async def purge(
        older_than: Annotated[str, Query(description="e.g. 7d")],
        status: str = "completed,failed,cancelled",
        dry_run: bool = True,
    ) -> dict[str, Any]:
        statuses = tuple(part for part in status.split(",") if part)
        count = service.purge(older_than=parse_duration(older_than), statuses=statuses, dry_run=dry_run)
        return {
            "dry_run": dry_run,
            "items": count.items,
            "attempts": count.attempts,
            "documents": count.documents,
        }

    @app.get("/api/stats", dependencies=guard)
    async def stats() -> dict[str, Any]:
        from docq.render.stats import stats_dict

        return stats_dict(service.get_queue_stats())

    @app.post("/api/process", dependencies=change)
    async def process(
        max_items: Annotated[int, Query(ge=1)] = 100,
        max_seconds: Annotated[float, Query(gt=0, le=3600)] = 60,
    ) -> JSONResponse:
        """The cron endpoint: one bounded ``docq work`` in a subprocess; its summary."""
        command = [*docq, "work", "--json", "--max-items", str(max_items), "--max-seconds", f"{max_seconds}s"]
        env = {**os.environ, "DOCQ_DB": target}  # not on the command line, where ps shows a password
        child = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        out, err = await child.communicate()
        try:
            summary = json.loads(out)
        except ValueError:
            message = err.decode(errors="replace").strip().splitlines()
            raise HTTPException(
                503, message[-1] if message else f"docq work exited {child.returncode}"
            ) from None
        return JSONResponse({**summary, "exit_code": child.returncode})

    @app.get("/metrics", dependencies=guard)
    async def metrics() -> Response:
        from docq.web.metrics import render

        body, content_type = render(service)
        return Response(body, media_type=content_type)

    return app


def new_token() -> str:
    """A token for a server started without ``DOCQ_TOKEN``."""
    return secrets.token_urlsafe(24)


def _id(number: int) -> str:
    from docq.config import MAX_ID

    if not 0 < number <= MAX_ID:
        raise NotFoundError(f"no document {number}")
    return str(number)


def _changes(changes: list[Any]) -> dict[str, Any]:
    return {
        "changes": [
            {"item_id": c.item_id, "document_id": c.document_id, "operation": c.operation, "action": c.action}
            for c in changes
        ]
    }


async def _store(upload: UploadFile, root: Path, max_size: int) -> Path:
    """Stream ``upload`` into ``root`` under a name of its own (a random prefix and the
    client's name made safe: no folder, no way out of ``root``, never over another file).
    Over ``max_size`` bytes: 413, and nothing is kept."""
    root.mkdir(parents=True, exist_ok=True)
    name = _UNSAFE.sub("_", os.path.basename(upload.filename or "")).strip("._-")[:120] or "upload"
    path = root / f"{secrets.token_hex(6)}-{name}"
    size = 0
    with open(path, "xb") as stream:  # x: never over an existing file
        try:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > max_size:
                    raise HTTPException(413, f"too large: over the {max_size}-byte cap (--max-size)")
                stream.write(chunk)
        except BaseException:
            stream.close()
            path.unlink(missing_ok=True)
            raise
    return path
