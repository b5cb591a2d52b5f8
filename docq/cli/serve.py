"""``docq serve``: the queue's HTTP API and metrics (the ``[web]`` extra)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from docq.cli.app import Invocation, command, size
from docq.errors import DatabaseError, UsageError
from docq.render import output

INSTALL_HINT = 'the web server is not installed: pip install "docq[web]"'


@command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Listen on this address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Listen on this port.")] = 8080,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Read only: no uploads, retries, cancels, purges or runs.")
    ] = False,
    upload_dir: Annotated[
        str | None,
        typer.Option(metavar="DIR", help="Where uploads are stored (default: uploads/ beside the database)."),
    ] = None,
    max_size: Annotated[
        int,
        typer.Option(
            parser=size, metavar="SIZE", envvar="DOCQ_MAX_SIZE", help="Refuse larger uploads (413)."
        ),
    ] = "256M",  # type: ignore[assignment]
    public_metrics: Annotated[
        bool, typer.Option("--public-metrics", help="Serve /metrics without the token (for Prometheus).")
    ] = False,
) -> None:
    """Serve the queue over HTTP: upload, documents, items, purge, stats, metrics.

    A dashboard at /, a JSON API (OpenAPI at /docs) with the shapes of the CLI's --json,
    a cron endpoint (POST /api/process runs a bounded docq work in a subprocess), /healthz
    and /metrics (Prometheus). Every endpoint but /healthz needs the token: DOCQ_TOKEN, else
    one made at start and printed with the URL, which a browser opens once. Needs the web
    extra: pip install "docq[web]".

    **Examples**

          docq serve
          DOCQ_TOKEN=secret docq serve --host 0.0.0.0 --port 8080 --read-only
    """
    try:
        import uvicorn

        from docq.web.api import create_app, new_token
    except ImportError:
        raise DatabaseError(INSTALL_HINT) from None
    run = Invocation.of(ctx)
    queue = run.service()
    token = os.environ.get("DOCQ_TOKEN") or new_token()
    if upload_dir is None and queue.db.target.path is None:
        raise UsageError("give --upload-dir: the queue is not a file, so there is no folder beside it")
    app = create_app(
        queue,
        token=token,
        upload_dir=upload_dir,
        max_size=max_size,
        read_only=read_only,
        public_metrics=public_metrics,
    )
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    output.warn(f"serving {queue.db.target.display} at http://{shown}:{port}/?token={token}")
    uvicorn.run(app, host=host, port=port, log_level="warning")
