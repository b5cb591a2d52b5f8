"""``docq bench --web``: uploads over HTTP to ``docq serve``, beside a bare FastAPI
endpoint that only writes the file, with the same clients in the same run.

Both servers run as programs on free loopback ports (uvicorn, one process each). The
clients are threads sending multipart uploads with urllib; each server gets the same
number of uploads of the same small file. What docq adds is the queue's transaction
(hashing, the insert, the commit) and the upload's safe name.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from docq.bench.common import BenchOptions, Measure, Progress, Report, docq_command

SECTION = "docq serve: uploads, {clients} clients x {each}"
TOKEN = "bench"
BARE_APP = """
import os, secrets
from typing import Annotated
from fastapi import FastAPI, File, UploadFile
app = FastAPI()
ROOT = os.environ["BENCH_UPLOADS"]

@app.post("/api/documents", status_code=202)
async def upload(file: Annotated[UploadFile, File()]):
    with open(os.path.join(ROOT, secrets.token_hex(6) + "-upload"), "xb") as out:
        out.write(await file.read())
    return {"status": "stored"}
"""


def web(
    report: Report, options: BenchOptions, scratch: str, progress: Progress, *, clients: int = 20
) -> None:
    """Uploads/s and p50/p99 latency of ``docq serve`` and of the bare endpoint."""
    each = max(1, options.uploads // clients)
    section = SECTION.format(clients=clients, each=each)
    rates = {}
    for name in ("bare", "docq"):
        label = "docq serve" if name == "docq" else "bare FastAPI endpoint, file written only"
        progress(f"{clients} clients x {each} uploads: {label}")
        folder = os.path.join(scratch, f"web-{name}")
        os.makedirs(folder)
        port, server = _start(name, folder)
        try:
            seconds, latencies = _load(port, clients, each)
        finally:
            server.terminate()
            server.wait(timeout=30)
        latencies.sort()
        rates[name] = len(latencies) / seconds
        report.add(Measure(section, f"{label}: uploads/s", rates[name], "uploads/s"))
        report.add(Measure(section, f"{label}: p50", latencies[len(latencies) // 2] * 1000, "ms"))
        report.add(Measure(section, f"{label}: p99", latencies[int(len(latencies) * 0.99) - 1] * 1000, "ms"))
    ratio = rates["docq"] / rates["bare"]
    report.add(Measure(section, "docq serve / bare endpoint", ratio * 100, "%"))


def _start(name: str, folder: str) -> tuple[int, subprocess.Popen[bytes]]:
    port = _free_port()
    env = {**os.environ, "DOCQ_TOKEN": TOKEN, "BENCH_UPLOADS": folder}
    if name == "docq":
        db = os.path.join(folder, "q.db")
        subprocess.run(
            [*docq_command(), "--db", db, "enqueue", "--from", os.devnull], capture_output=True, check=True
        )
        argv = [*docq_command(), "--db", db, "serve", "--port", str(port), "--upload-dir", folder]
    else:
        with open(os.path.join(folder, "bare_app.py"), "w", encoding="utf-8") as stream:
            stream.write(BARE_APP)
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    server = subprocess.Popen(argv, env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return port, server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"bench: the {name} server did not start")


def _load(port: int, clients: int, each: int) -> tuple[float, list[float]]:
    boundary = "benchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="upload.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + b"x" * 2048
        + f"\r\n--{boundary}--\r\n".encode()
    )

    def client(number: int) -> list[float]:
        times = []
        for n in range(each):
            # each upload different, so that docq never skips one as already seen
            payload = body.replace(b"x" * 16, f"{number:08d}{n:08d}".encode(), 1)
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/documents", data=payload, method="POST"
            )
            request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
            request.add_header("Authorization", f"Bearer {TOKEN}")
            began = time.perf_counter()
            with urllib.request.urlopen(request, timeout=60) as answer:
                if answer.status != 202:
                    raise RuntimeError(f"bench: upload answered {answer.status}")
            times.append(time.perf_counter() - began)
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = [t for times in pool.map(client, range(clients)) for t in times]
    return time.perf_counter() - started, latencies


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
