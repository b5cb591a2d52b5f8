"""``docq serve``: the queue over HTTP (the ``[web]`` extra: FastAPI, uvicorn).

`create_app` (in `docq.web.api`) builds the ASGI app: the dashboard, the API behind a
token, ``/healthz`` and ``/metrics``. `api_router` gives the API alone, for a FastAPI
application of your own to mount. `docq.web.metrics` writes the Prometheus metrics and
`docq.web.dashboard` the page. Everything calls the library (`DocumentQueueService`,
`docq.views`, `docq.stats`) and answers in the shapes of the CLI's ``--json`` (see the
README's JSON reference). Imported by ``docq serve`` and by applications that mount it.
"""

from __future__ import annotations

from docq.web.api import api_router, create_app

__all__ = ["api_router", "create_app"]
