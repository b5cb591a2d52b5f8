"""``docq serve``: the queue over HTTP (the ``[web]`` extra: FastAPI, uvicorn).

`docq.web.api` builds the FastAPI app (upload, documents, items, purge, stats, the cron
endpoint, health) and `docq.web.metrics` its Prometheus metrics. Both call the library
(`DocumentQueueService`, `docq.views`, `docq.stats`) and answer in the shapes of the
CLI's ``--json`` (see the README's JSON reference). Imported by ``docq serve`` alone.
"""
