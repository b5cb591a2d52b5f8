"""The dashboard of ``docq serve``: one page of HTML with a little JavaScript of its own
(``dashboard.html``: no CDN, no third-party code), over the JSON API: counts and workers
refreshed every five seconds, the items with a status filter and pages, an item's detail,
and buttons for retry, cancel, reprocess and purge (each confirmed; purge shows its
dry-run count first)."""

from __future__ import annotations

import html
from functools import cache
from importlib import resources

from docq import __version__


@cache
def _template() -> str:
    return resources.files("docq.web").joinpath("dashboard.html").read_text(encoding="utf-8")


def page(*, csrf: str, read_only: bool) -> str:
    """The dashboard, with this server's CSRF token for the page's own requests."""
    return (
        _template()
        .replace("@CSRF@", html.escape(csrf))
        .replace("@VERSION@", html.escape(__version__))
        .replace("@READONLY@", ' <span class="muted">read-only</span>' if read_only else "")
        .replace("@READONLY_JS@", "true" if read_only else "false")
    )
