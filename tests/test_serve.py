"""``docq serve``: the installed program serving a real SQLite queue over real HTTP
(uvicorn on a free local port), asked with urllib as any client would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import docq_command, docq_env, run_docq
from jsonref import check

pytest.importorskip("fastapi", reason='the web extra is not installed: pip install "docq[web]"')

TOKEN = "test-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A running ``docq serve`` and a small client for it."""

    def __init__(self, db: str, *options: str) -> None:
        self.port = free_port()
        env = docq_env(db, DOCQ_TOKEN=TOKEN)
        self.process = subprocess.Popen(
            [*docq_command(), "serve", "--port", str(self.port), *options],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.call("GET", "/healthz", token=None)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
            if self.process.poll() is not None:
                raise AssertionError(f"docq serve exited: {self.process.communicate()}")
        raise AssertionError("docq serve did not answer in 30 s")

    def call(
        self, method: str, path: str, *, token: str | None = TOKEN, body: bytes | None = None, kind: str = ""
    ) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if kind:
            request.add_header("Content-Type", kind)
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, raw, type_ = answer.status, answer.read(), answer.headers.get("content-type", "")
        except urllib.error.HTTPError as error:
            status, raw, type_ = error.code, error.read(), error.headers.get("content-type", "")
        return status, json.loads(raw) if "json" in type_ else raw.decode()

    def upload(self, name: str, content: bytes, **fields: str) -> tuple[int, Any]:
        boundary = "docqboundary7MA4YWxkTrZu0gW"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
            for key, value in fields.items()
        ]
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.call(
            "POST", "/api/documents", body=body, kind=f"multipart/form-data; boundary={boundary}"
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server on a SQLite queue holding one pending document (item 1)."""
    db = str(tmp_path / "q.db")
    (tmp_path / "seed.txt").write_text("seed\n", encoding="utf-8")
    assert run_docq("enqueue", str(tmp_path / "seed.txt"), db=db).returncode == 0
    running = Server(db, "--upload-dir", str(tmp_path / "uploads"), "--max-size", "1K")
    yield running
    running.stop()


def test_the_token_is_needed_everywhere_but_healthz(server: Server) -> None:
    assert server.call("GET", "/healthz", token=None) == (200, {"status": "ok"})
    for path in ("/api/stats", "/api/items", "/metrics"):
        status, answer = server.call("GET", path, token=None)
        assert status == 401 and "token" in answer["error"], (path, answer)
        assert server.call("GET", path, token="wrong")[0] == 401
    assert server.call("GET", f"/api/stats?token={TOKEN}", token=None)[0] == 200


def test_upload_is_queued_at_once_and_processed_by_the_cron_endpoint(server: Server, tmp_path: Path) -> None:
    status, queued = server.upload("../../escape me.txt", b"hello from an upload\n", priority="5")
    assert status == 202 and queued["status"] == "pending", queued
    stored = list((tmp_path / "uploads").iterdir())
    assert len(stored) == 1 and stored[0].name.endswith("-escape_me.txt"), stored  # no way out of the folder
    status, again = server.upload("../../escape me.txt", b"hello from an upload\n")
    assert status == 202 and again["document_id"] != queued["document_id"]  # never over another file
    assert len(list((tmp_path / "uploads").iterdir())) == 2

    status, summary = server.call("POST", "/api/process?max_items=10&max_seconds=30")
    assert status == 200 and summary["completed"] == 3 and summary["exit_code"] == 0, summary
    status, document = server.call("GET", f"/api/documents/{queued['document_id']}")
    assert status == 200 and document["status"] == "processed"
    check("docq show DOC --json", document)
    assert server.call("GET", f"/api/documents/{queued['document_id']}/text") == (
        200,
        "hello from an upload\n",
    )
    status, stats = server.call("GET", "/api/stats")
    check("docq stats --json", stats)
    assert stats["completed"] == 3


def test_an_upload_over_the_cap_is_refused_and_nothing_is_kept(server: Server, tmp_path: Path) -> None:
    before = server.call("GET", "/api/stats")[1]["total"]
    status, answer = server.upload("big.txt", b"x" * 5000)
    assert status == 413 and "too large" in answer["error"]
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").iterdir()) == []
    assert server.call("GET", "/api/stats")[1]["total"] == before


def test_items_page_by_cursor_and_actions_answer_like_the_cli(server: Server) -> None:
    for name in ("a.txt", "b.txt"):
        assert server.upload(name, f"text of {name}\n".encode())[0] == 202
    status, first = server.call("GET", "/api/items?limit=2")
    assert status == 200 and [item["id"] for item in first["items"]] == [3, 2] and first["next_cursor"] == 2
    for item in first["items"]:
        check("docq list --json", [item])
    status, second = server.call("GET", f"/api/items?limit=2&cursor={first['next_cursor']}")
    assert [item["id"] for item in second["items"]] == [1] and second["next_cursor"] is None

    assert server.call("POST", "/api/items/3/cancel") == (
        200,
        {"changes": [{"item_id": 3, "document_id": 3, "operation": "process", "action": "cancelled"}]},
    )
    status, refused = server.call("POST", "/api/items/3/cancel")
    assert status == 400 and "cancelled" in refused["error"]
    assert server.call("POST", "/api/items/3/retry")[1]["changes"][0]["action"] == "retried"
    status, missing = server.call("POST", "/api/items/99/retry")
    assert status == 404 and "no queue item 99" in missing["error"]
    assert server.call("POST", "/api/documents/1/reprocess")[0] == 202
    assert server.call("GET", "/api/documents/99")[0] == 404


def test_purge_counts_first_and_deletes_only_when_asked(server: Server) -> None:
    assert server.call("POST", "/api/process?max_items=10")[1]["completed"] == 1
    status, counted = server.call("POST", "/api/purge?older_than=0s")
    assert status == 200 and counted == {"dry_run": True, "items": 1, "attempts": 1, "documents": 1}
    assert server.call("GET", "/api/stats")[1]["total"] == 1
    status, done = server.call("POST", "/api/purge?older_than=0s&dry_run=false")
    assert done["items"] == 1 and server.call("GET", "/api/stats")[1]["total"] == 0
    assert server.call("POST", "/api/purge?older_than=soon")[0] == 400


def test_metrics_in_prometheus_text(server: Server) -> None:
    status, text = server.call("GET", "/metrics")
    assert status == 200
    for line in (
        'docq_items{operation="process",status="pending"} 1.0',
        "docq_retrying_items 0.0",
        "docq_items_completed_total 0.0",
        'docq_workers{state="alive"} 0.0',
    ):
        assert line in text.splitlines(), text
    assert any(line.startswith("docq_oldest_pending_age_seconds ") for line in text.splitlines())


def test_read_only_refuses_every_change(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    (tmp_path / "a.txt").write_text("a\n", encoding="utf-8")
    assert run_docq("enqueue", str(tmp_path / "a.txt"), db=db).returncode == 0
    running = Server(db, "--read-only", "--upload-dir", str(tmp_path / "uploads"))
    try:
        for method, path in (
            ("POST", "/api/items/1/cancel"),
            ("POST", "/api/documents/1/reprocess"),
            ("POST", "/api/purge?older_than=0s"),
            ("POST", "/api/process"),
        ):
            status, answer = running.call(method, path)
            assert status == 403 and "read-only" in answer["error"], (path, answer)
        assert running.upload("b.txt", b"b\n")[0] == 403
        assert running.call("GET", "/api/stats")[1]["pending"] == 1
    finally:
        running.stop()


def test_without_the_web_extra_serve_names_the_install_command(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    assert run_docq("enqueue", "--from", "/dev/null", db=db).returncode == 0
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None; "
        f"sys.argv = ['docq', '--db', {db!r}, 'serve']; from docq.__main__ import main; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 5, result.stderr
    assert result.stderr == 'docq: error: the web server is not installed: pip install "docq[web]"\n'


def test_healthz_says_503_when_the_database_is_gone(pg_url: str, tmp_path: Path) -> None:
    """On PostgreSQL: the queue's schema dropped under the running server."""
    import urllib.parse

    import psycopg

    assert run_docq("enqueue", "--from", "/dev/null", db=pg_url).returncode == 0
    running = Server(pg_url, "--upload-dir", str(tmp_path / "uploads"))
    try:
        assert running.call("GET", "/healthz", token=None) == (200, {"status": "ok"})
        schema = urllib.parse.unquote(pg_url).rsplit("search_path=", 1)[1]
        admin = pg_url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        status, answer = running.call("GET", "/healthz", token=None)
        assert status == 503 and answer["status"] == "unavailable", answer
    finally:
        running.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_a_browser_gets_the_token_as_a_cookie_and_needs_the_csrf_token_to_change_anything(
    server: Server,
) -> None:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(f"http://127.0.0.1:{server.port}/?token={TOKEN}", timeout=30)
        raise AssertionError("no redirect")
    except urllib.error.HTTPError as answer:
        assert answer.code == 303 and answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"docq_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=strict" in cookie

    def browser(method: str, path: str, csrf: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method)
        request.add_header("Cookie", f"docq_token={TOKEN}")
        if csrf is not None:
            request.add_header("X-CSRF-Token", csrf)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    status, page = browser("GET", "/")
    assert status == 200 and "<title>docq</title>" in page
    csrf = page.split('<meta name="csrf" content="', 1)[1].split('"', 1)[0]
    assert len(csrf) == 64 and TOKEN not in page
    status, refused = browser("POST", "/api/items/1/cancel")
    assert status == 403 and "CSRF" in json.loads(refused)["error"]
    assert browser("POST", "/api/items/1/cancel", csrf="0" * 64)[0] == 403
    assert browser("POST", "/api/items/1/cancel", csrf=csrf)[0] == 200
    assert "https://" not in page and "http://" not in page  # nothing from a CDN: it works offline


def test_metrics_parse_and_match_the_stats(server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert server.upload("a.txt", b"a\n")[0] == 202
    assert server.call("POST", "/api/process?max_items=1")[1]["completed"] == 1
    stats = server.call("GET", "/api/stats")[1]
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(server.call("GET", "/metrics")[1])
        for sample in family.samples
    }
    for status in ("pending", "in_progress", "completed", "failed", "cancelled"):
        expected = stats["by_operation"]["process"][status]
        assert samples[("docq_items", (("operation", "process"), ("status", status)))] == expected, status
    assert samples[("docq_items_completed_total", ())] == stats["completed"]
    assert samples[("docq_retrying_items", ())] == stats["retrying"]
    assert samples[("docq_workers", (("state", "stopped"),))] == 1  # the cron endpoint's worker


def test_public_metrics_need_no_token(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    assert run_docq("enqueue", "--from", "/dev/null", db=db).returncode == 0
    running = Server(db, "--public-metrics")
    try:
        assert running.call("GET", "/metrics", token=None)[0] == 200
        assert running.call("GET", "/api/stats", token=None)[0] == 401
    finally:
        running.stop()


def test_an_application_of_your_own_mounts_the_router(tmp_path: Path) -> None:
    db = str(tmp_path / "q.db")
    assert run_docq("enqueue", "--from", "/dev/null", db=db).returncode == 0
    (tmp_path / "myapp.py").write_text(
        "from fastapi import FastAPI\n"
        "from docq.web import api_router\n"
        "app = FastAPI()\n"
        f"app.include_router(api_router({db!r}), prefix='/queue')\n",
        encoding="utf-8",
    )
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "myapp:app", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=docq_env(db),
    )
    try:
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline and answer is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/queue/api/stats", timeout=5
                ) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(0.2)
        assert answer is not None and answer["total"] == 0
        check("docq stats --json", answer)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_twenty_clients_uploading_fifty_documents_each_lose_nothing(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    db = str(tmp_path / "q.db")
    assert run_docq("enqueue", "--from", "/dev/null", db=db).returncode == 0
    running = Server(db, "--upload-dir", str(tmp_path / "uploads"))

    def client(number: int) -> list[int]:
        return [
            running.upload(f"c{number}-{n}.txt", f"client {number} upload {n}\n".encode())[0]
            for n in range(50)
        ]

    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = [status for answers in pool.map(client, range(20)) for status in answers]
        seconds = time.monotonic() - started
        assert statuses.count(202) == 1000, sorted(set(statuses))
        stats = running.call("GET", "/api/stats")[1]
        assert stats["pending"] == 1000 and stats["total"] == 1000
        assert len(list((tmp_path / "uploads").iterdir())) == 1000
        print(f"\n1,000 uploads from 20 clients in {seconds:.1f} s ({1000 / seconds:.0f}/s)")
    finally:
        running.stop()


def test_a_pdf_uploaded_is_pending_then_processed_and_a_failed_one_retried(
    db_target: str, tmp_path: Path, sample_docs: Path
) -> None:
    """The seed's flow, on SQLite and PostgreSQL: upload, "pending" at once, a worker
    processes it, the text is there; a corrupt PDF fails and is retried over HTTP."""
    assert run_docq("enqueue", "--from", "/dev/null", db=db_target).returncode == 0
    running = Server(db_target, "--upload-dir", str(tmp_path / "uploads"))
    try:
        status, report = running.upload("report.pdf", (sample_docs / "report.pdf").read_bytes())
        assert status == 202 and report["status"] == "pending"
        status, broken = running.upload("broken.pdf", (sample_docs / "broken.pdf").read_bytes())
        assert running.call("GET", f"/api/documents/{report['document_id']}")[1]["status"] == "pending"
        assert run_docq("work", db=db_target).returncode == 3  # the broken one fails for good
        document = running.call("GET", f"/api/documents/{report['document_id']}")[1]
        assert document["status"] == "processed" and document["metadata"]["pages"] == 3
        text = running.call("GET", f"/api/documents/{report['document_id']}/text")[1]
        assert "Riverside" in text
        item = running.call("GET", f"/api/items/{broken['item_id']}")[1]
        assert item["status"] == "failed" and "corrupt" in item["last_error"]
        check("docq show --item ID --json", item)
        assert (
            running.call("POST", f"/api/items/{broken['item_id']}/retry")[1]["changes"][0]["action"]
            == "retried"
        )
        assert running.call("GET", f"/api/items/{broken['item_id']}")[1]["status"] == "pending"
    finally:
        running.stop()
