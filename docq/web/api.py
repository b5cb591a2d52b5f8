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
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from docq import __version__
from docq.config import parse_duration
from docq.errors import DatabaseBusy, DatabaseError, DocqError, InvalidTransition, NotFoundError, UsageError

if TYPE_CHECKING:
    from docq.db import Database
    from docq.queue import DocumentQueueService

CHUNK = 1024 * 1024  # bytes an upload is streamed to disk in
DEFAULT_MAX_UPLOAD = 256 * 1024 * 1024
COOKIE = "docq_token"
_UNSAFE = re.compile(r"[^\w.\-]+")
STATUS_OF = {
    NotFoundError: 404,
    InvalidTransition: 409,
    UsageError: 400,
    DatabaseBusy: 503,
    DatabaseError: 503,
}


def _service(db: DocumentQueueService | Database | str) -> DocumentQueueService:
    from docq.db import Database
    from docq.queue import DocumentQueueService

    if isinstance(db, DocumentQueueService):
        return db
    return DocumentQueueService(db if isinstance(db, Database) else Database(db))


def api_router(
    db: DocumentQueueService | Database | str,
    *,
    read_only: bool = False,
    upload_dir: str | None = None,
    max_size: int = DEFAULT_MAX_UPLOAD,
    work_command: list[str] | None = None,
) -> APIRouter:
    """The ``/api`` endpoints over ``db`` (a service, a `Database` or a target), for an
    application of your own to mount (``app.include_router(api_router(db))``); it adds
    its own authentication. Uploads go to ``upload_dir`` (default: ``uploads/`` beside
    a SQLite queue). ``work_command`` starts ``docq`` for ``/api/process`` (default:
    this Python's ``-m docq``)."""
    service = _service(db)
    router = APIRouter(prefix="/api")
    where = service.db.target.path
    upload_root = Path(upload_dir or (os.path.join(os.path.dirname(where), "uploads") if where else ""))
    if not str(upload_root):
        raise UsageError("give an upload folder: the queue is not a file, so there is none beside it")
    target = service.db.target.path or service.db.target.url or ""
    docq = work_command or [sys.executable, "-m", "docq"]

    def writable() -> None:
        if read_only:
            raise HTTPException(403, "read-only: docq serve was started with --read-only")

    change = [Depends(writable)]

    @router.post("/documents", status_code=202, dependencies=change)
    async def upload_document(
        file: Annotated[UploadFile, File()],
        priority: Annotated[int, Form()] = 0,
        operation: Annotated[str, Form()] = "process",
    ) -> dict[str, Any]:
        """Store the upload under the upload folder and queue it; a worker processes it."""
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

    @router.get("/documents/{document_id}")
    async def show_document(document_id: int) -> dict[str, Any]:
        """The document, as ``docq show DOC --json``."""
        from docq.render.show import document_dict
        from docq.views import show_document as read

        return document_dict(read(service.db, _id(document_id)))

    @router.get("/documents/{document_id}/text", response_class=PlainTextResponse)
    async def document_text(document_id: int) -> str:
        from docq.views import show_document as read

        return read(service.db, _id(document_id)).document.text or ""

    @router.post("/documents/{document_id}/reprocess", status_code=202, dependencies=change)
    async def reprocess_document(document_id: int) -> dict[str, Any]:
        return _changes(service.reprocess([_id(document_id)]))

    @router.get("/items")
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

    @router.get("/items/{item_id}")
    async def show_item(item_id: int) -> dict[str, Any]:
        """The item with its history and its document, as ``docq show --item ID --json``."""
        from docq.render.show import item_with_document
        from docq.views import show_item as read

        return item_with_document(*read(service.db, item_id))

    @router.post("/items/{item_id}/retry", dependencies=change)
    async def retry_item(item_id: int) -> dict[str, Any]:
        return _changes(service.retry([item_id]))

    @router.post("/items/{item_id}/cancel", dependencies=change)
    async def cancel_item(item_id: int) -> dict[str, Any]:
        return _changes(service.cancel([item_id]))

    @router.post("/purge", dependencies=change)
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

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        """As ``docq stats --json``."""
        from docq.render.stats import stats_dict

        return stats_dict(service.get_queue_stats())

    @router.get("/workers")
    async def workers() -> list[dict[str, Any]]:
        """As ``docq workers --all --json``."""
        from docq import views
        from docq.render.listing import worker_dicts

        rows = views.list_workers(service.db, include_stopped=True, limit=50)
        return worker_dicts(rows, views.claimed_ahead_by_worker(service.db), service.now())

    @router.post("/process", dependencies=change)
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

    return router


def create_app(
    db: DocumentQueueService | Database | str,
    *,
    token: str,
    read_only: bool = False,
    upload_dir: str | None = None,
    max_size: int = DEFAULT_MAX_UPLOAD,
    public_metrics: bool = False,
    work_command: list[str] | None = None,
) -> FastAPI:
    """The ASGI app of ``docq serve``: `api_router` behind the token, ``/healthz``,
    ``/metrics`` and the dashboard at ``/``. A browser opens ``/?token=T`` once: it gets
    the token as an HttpOnly, SameSite=Strict cookie and is sent to ``/``; its changes
    carry the page's CSRF token in ``X-CSRF-Token``."""
    service = _service(db)
    app = FastAPI(title="docq", version=__version__, summary="A durable queue for batches of documents.")
    csrf = hmac.new(token.encode(), b"docq-csrf", hashlib.sha256).hexdigest()

    def same(given: str | None, expected: str) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())

    def authorised(request: Request) -> None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if same(bearer, token) or same(request.query_params.get("token"), token):
            return
        if same(request.cookies.get(COOKIE), token):
            unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
            if unsafe and not same(request.headers.get("x-csrf-token"), csrf):
                raise HTTPException(
                    403, "a change from the browser needs the page's CSRF token (X-CSRF-Token)"
                )
            return
        raise HTTPException(401, "a token is needed: Authorization: Bearer TOKEN, or ?token=TOKEN")

    @app.exception_handler(DocqError)
    async def docq_error(_request: Request, error: DocqError) -> JSONResponse:
        status = next((code for kind, code in STATUS_OF.items() if isinstance(error, kind)), 500)
        return JSONResponse({"error": str(error)}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, error: Exception) -> JSONResponse:
        # the last resort, as the CLI's: one line, never a traceback in the answer
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": problems}, status_code=400)

    router = api_router(
        service, read_only=read_only, upload_dir=upload_dir, max_size=max_size, work_command=work_command
    )
    app.include_router(router, dependencies=[Depends(authorised)])

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 when the database answers, 503 when it does not."""
        try:
            service.get_queue_stats()
        except DocqError as error:
            return JSONResponse({"status": "unavailable", "error": str(error)}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", dependencies=[] if public_metrics else [Depends(authorised)])
    async def metrics() -> Response:
        from docq.web.metrics import render

        body, content_type = render(service)
        return Response(body, media_type=content_type)

    @app.get("/", dependencies=[Depends(authorised)], response_class=HTMLResponse)
    async def dashboard(request: Request) -> Response:
        from docq.web.dashboard import page

        if request.query_params.get(
            "token"
        ):  # from the printed URL: keep it in a cookie, not the address bar
            answer = RedirectResponse("/", status_code=303)
            answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return answer
        return HTMLResponse(page(csrf=csrf, read_only=read_only))

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
