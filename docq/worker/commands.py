"""Running a user's command over one item, without a shell, inside a worker's child.

Placeholders such as ``{path}`` are replaced inside each argument and never split or
interpreted, so a file named ``$(rm -rf ~).pdf`` is just a name. The command gets
``DOCQ_DOCUMENT_ID``, ``DOCQ_DOCUMENT_PATH``, ``DOCQ_ITEM_ID`` and ``DOCQ_ATTEMPT`` in its
environment and runs in a process group of its own, which is killed as a whole on
timeout, cancel or worker death, and once the command has exited (so that nothing it
started in the background is left running).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from pathlib import PurePath

from docq.errors import UsageError
from docq.items import Result
from docq.worker import reaper
from docq.worker.protocol import Handler, Job

EX_TEMPFAIL = 75
"""A command exiting 75 asks for a retry later, whatever the other settings say."""

_PRIVATE_PREFIXES = ("DOCQ_", "PG")
"""Environment variables a command does not inherit (see `command_environment`)."""

STDERR_TAIL = 4096
AFTER_EXIT = 1.0  # seconds to keep reading a command's pipes after it exited
PLACEHOLDERS = ("path", "dir", "id", "name", "stem", "suffix", "sha256", "attempt")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\w+)\}")


def substitute(argument: str, values: dict[str, str]) -> str:
    """``argument`` with ``{path}``-style placeholders replaced by ``values``; ``{{`` and
    ``}}`` are literal braces. An unknown ``{word}`` raises `UsageError`. With empty
    ``values`` this only validates."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise UsageError(
                f"unknown placeholder {token} in {argument!r}: use {known} (or {{{{ }}}} for braces)"
            )
        return values.get(name, token)

    return _PLACEHOLDER.sub(replace, argument)


def placeholder_values(job: Job) -> dict[str, str]:
    """The values of every placeholder for ``job``."""
    name = os.path.basename(job.path)
    pure = PurePath(name)
    return {
        "path": job.path,
        "dir": os.path.dirname(job.path),
        "id": str(job.document_id),
        "name": name,
        "stem": pure.stem,
        "suffix": pure.suffix,
        "sha256": job.sha256 or "",
        "attempt": str(job.attempt),
    }


def command_environment(environ: Mapping[str, str], passed: Collection[str] = ()) -> dict[str, str]:
    """The environment a command runs in: the worker's, less docq's own configuration
    (``DOCQ_*``: ``DOCQ_DB`` may hold a database password) and PostgreSQL's client
    settings (``PG*``: ``PGPASSWORD`` and the like), except the names in ``passed``."""
    return {
        name: value
        for name, value in environ.items()
        if name in passed or not name.startswith(_PRIVATE_PREFIXES)
    }


def run_command(handler: Handler, job: Job, on_started: Callable[[int], None] | None = None) -> Result:
    """Run the handler's command for ``job`` and report how it went: exit 0 completes the
    item with stdout as its text (up to the output cap) and stderr's tail as a note; any
    other exit fails the attempt, permanently for the handler's permanent exit codes.
    ``on_started`` is called with the command's pid (its process group) once it runs."""
    values = placeholder_values(job)
    argv = [substitute(argument, values) for argument in handler.argv]
    env = command_environment(os.environ, handler.pass_env)
    env.update(
        DOCQ_DOCUMENT_ID=str(job.document_id),
        DOCQ_DOCUMENT_PATH=job.path,
        DOCQ_ITEM_ID=str(job.item_id),
        DOCQ_ATTEMPT=str(job.attempt),
    )
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            process_group=0,
        )
    except FileNotFoundError:
        return Result.failure(f"command not found: {argv[0]}", permanent=True)
    except PermissionError:
        return Result.failure(f"command not executable: {argv[0]}", permanent=True)
    if on_started is not None:
        on_started(process.pid)
    try:
        stdout, truncated, stderr_tail = _collect(process, handler.output_cap)
        code = process.wait()
    finally:
        kill_group(process.pid)
        reaper.kill_adopted()  # what left the group (setsid, a daemon) ends with it too
    note = stderr_tail.decode("utf-8", "replace").strip() or None
    if code == 0:
        text = stdout.decode("utf-8", "replace")
        if truncated:
            note = ((note or "") + f"\n[stdout truncated at {handler.output_cap} bytes]").strip()
        return Result(ok=True, text=text, note=note)
    if code < 0:
        error = f"command killed by {signal_name(-code)}"
    else:
        error = f"command exited with code {code}"
    if note:
        error += f": {note.splitlines()[-1][:500]}"
    permanent = code != EX_TEMPFAIL and code in handler.permanent_exit_codes
    return Result.failure(error, permanent=permanent, note=note)


def _collect(process: subprocess.Popen[bytes], cap: int) -> tuple[bytes, bool, bytes]:
    """Read the command's stdout (up to ``cap`` bytes, draining the rest so it never
    blocks) and the tail of its stderr, until both close.

    Once the command itself has exited, whatever it left in the background is killed
    with its group (it would otherwise hold the pipes open), and reading stops soon
    after even if something outside the group still holds them.
    """
    assert process.stdout is not None and process.stderr is not None
    stdout = bytearray()
    truncated = False
    tail: deque[bytes] = deque()
    tail_size = 0
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, "out")
        selector.register(process.stderr, selectors.EVENT_READ, "err")
        while selector.get_map():
            if exited_at is None and process.poll() is not None:
                exited_at = time.monotonic()
                kill_group(process.pid)
            elif exited_at is not None and time.monotonic() - exited_at > AFTER_EXIT:
                break
            for key, _ in selector.select(timeout=0.2):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                if key.data == "out":
                    room = cap - len(stdout)
                    if len(chunk) > room:
                        truncated = True
                    stdout += chunk[: max(room, 0)]
                else:
                    tail.append(chunk)
                    tail_size += len(chunk)
                    while tail_size - len(tail[0]) >= STDERR_TAIL:
                        tail_size -= len(tail.popleft())
    process.stdout.close()
    process.stderr.close()
    return bytes(stdout), truncated, b"".join(tail)[-STDERR_TAIL:]


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in process group ``pgid`` (gone already is fine)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11, and so on."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
