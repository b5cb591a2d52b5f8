"""The dashboard of ``docq serve`` in a real browser: Debian's Chromium driven by
Playwright, against a real server on a real SQLite queue."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import run_docq
from test_serve import TOKEN, Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's chromium)"
)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (the dev extra has it)"
)


def test_a_failed_item_is_retried_from_the_browser(tmp_path: Path, sample_docs: Path) -> None:
    db = str(tmp_path / "q.db")
    shutil.copy(sample_docs / "broken.pdf", tmp_path / "broken.pdf")
    (tmp_path / "fine.txt").write_text("a fine document\n", encoding="utf-8")
    assert (
        run_docq("enqueue", str(tmp_path / "fine.txt"), str(tmp_path / "broken.pdf"), db=db).returncode == 0
    )
    assert run_docq("work", db=db).returncode == 3  # broken.pdf, item 2, fails for good
    server = Server(db, "--upload-dir", str(tmp_path / "uploads"))
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            questions: list[str] = []
            page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
            page.goto(f"http://127.0.0.1:{server.port}/?token={TOKEN}")
            assert page.url == f"http://127.0.0.1:{server.port}/"  # the token went into a cookie
            page.wait_for_selector("#counts tr:nth-child(2)")
            counts = page.inner_text("#counts")
            assert "failed" in counts and "completed" in counts
            failed_row = page.locator('#items tr[data-item="2"]')
            assert "failed" in failed_row.inner_text()
            failed_row.get_by_role("button", name="Retry").click()
            page.wait_for_function("document.getElementById('status').textContent.includes('retried')")
            assert questions and questions[0].startswith("Retry item 2")
            page.wait_for_selector('#items tr[data-item="2"] .pending')
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            browser.close()
        assert server.call("GET", "/api/items/2")[1]["status"] == "pending"
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        print(f"\nscreenshot: {tmp_path / 'dashboard.png'}")
    finally:
        server.stop()
