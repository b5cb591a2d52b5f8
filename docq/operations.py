"""What a worker runs for each item: the built-in extraction, a no-op, a command, or a
Python function. A `Handler` is a small picklable description; `run` executes it inside
a worker's child process and reports a `HandlerOutcome`.

Commands run without a shell: placeholders such as ``{path}`` are replaced inside each
argument and never split or interpreted, so a file named ``$(rm -rf ~).pdf`` is just a
name. The command gets ``DOCQ_DOCUMENT_ID``, ``DOCQ_DOCUMENT_PATH``, ``DOCQ_ITEM_ID`` and
``DOCQ_ATTEMPT`` in its environment and runs in a process group of its own, which is
killed as a whole on timeout, cancel or worker death, and once the command has exited
(so that nothing it started in the background is left running).
"""

from __future__ import annotations

import importlib
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from docq.config import BUILTIN_OPERATIONS, NOOP_OPERATION
from docq.errors import UsageError

EX_TEMPFAIL = 75
"""A command exiting 75 asks for a retry later, whatever the other settings say."""

STDERR_TAIL = 4096
AFTER_EXIT = 1.0  # seconds to keep reading a command's pipes after it exited
PLACEHOLDERS = ("path", "dir", "id", "name", "stem", "suffix", "sha256", "attempt")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(\w+)\}")

HandlerKind = Literal["extract", "noop", "command", "python"]


@dataclass(frozen=True)
class Handler:
    """How to process one item: ``kind`` and, for commands, the argv template; for
    Python functions, ``target`` as ``module:function``."""

    kind: HandlerKind
    argv: tuple[str, ...] = ()
    target: str = ""
    max_size: int = 256 * 1024 * 1024
    output_cap: int = 1024 * 1024
    permanent_exit_codes: frozenset[int] = field(default_factory=frozenset)

    @property
    def runs_subprocesses(self) -> bool:
        """Whether the child must clean up a process group when its worker dies."""
        return self.kind == "command"


@dataclass(frozen=True)
class Job:
    """One item as a child process sees it."""

    item_id: int
    document_id: int
    path: str
    attempt: int
    sha256: str | None


@dataclass(frozen=True)
class HandlerOutcome:
    """What a handler produced: text and metadata (or a note), or an error."""

    ok: bool
    text: str | None = None
    metadata: dict[str, Any] | None = None
    note: str | None = None
    error: str | None = None
    permanent: bool = False


def handler_for(
    operation: str,
    *,
    command: list[str] | None = None,
    target: str | None = None,
    max_size: int,
    output_cap: int,
    permanent_exit_codes: frozenset[int] = frozenset(),
) -> Handler:
    """The handler a worker uses for ``operation`` (validated; raises `UsageError`)."""
    if command and target:
        raise UsageError("give either a command after -- or --handler, not both")
    if operation in BUILTIN_OPERATIONS or (operation == NOOP_OPERATION and not command and not target):
        if command or target:
            raise UsageError(f"{operation!r} is built in: run custom commands under another --operation name")
        kind: HandlerKind = "noop" if operation == NOOP_OPERATION else "extract"
        return Handler(kind, max_size=max_size)
    if command:
        for argument in command:
            substitute(argument, {})  # raises UsageError on an unknown placeholder
        return Handler(
            "command",
            argv=tuple(command),
            output_cap=output_cap,
            permanent_exit_codes=permanent_exit_codes,
        )
    if target:
        _check_importable(target)
        return Handler("python", target=target)
    raise UsageError(
        f"operation {operation!r} is not built in: give the command to run after --, "
        f"e.g. docq work --operation {operation} -- mytool {{path}}"
    )


def _check_importable(target: str) -> None:
    """Fail now, before any item is claimed, if ``module:function`` cannot be loaded."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--handler {target!r}: use module:function")
    if "" not in sys.path and os.getcwd() not in sys.path:
        # The children run `python -m`, which puts the current directory first on
        # sys.path: look where they will look.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure of user code is the user's to fix
        raise UsageError(f"--handler {target!r}: cannot import {module_name}: {exc}") from None
    if not callable(getattr(module, attr, None)):
        raise UsageError(f"--handler {target!r}: {module_name} has no function {attr}")


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


def run(handler: Handler, job: Job, on_started: Any = None) -> HandlerOutcome:
    """Process ``job`` with ``handler``. Raises nothing for a document's failure: it is
    reported as an outcome. ``on_started`` (commands only) is called with the command's pid."""
    if handler.kind == "noop":
        return HandlerOutcome(ok=True)
    if handler.kind == "command":
        return _run_command(handler, job, on_started)
    if handler.kind == "extract":
        from docq.processing import _process_document_content

        function: Any = _process_document_content
        kwargs: dict[str, Any] = {"max_size": handler.max_size}
    else:
        module_name, _, attr = handler.target.partition(":")
        function = getattr(importlib.import_module(module_name), attr)
        kwargs = {}
    try:
        result = function(job.path, **kwargs)
    except Exception as exc:  # any failure of one document is that document's outcome
        return HandlerOutcome(ok=False, error=describe_error(exc, job.path), permanent=_is_permanent(exc))
    if isinstance(result, str):
        return HandlerOutcome(ok=True, text=result)
    text = getattr(result, "text", None)
    metadata = getattr(result, "metadata", None)
    return HandlerOutcome(ok=True, text=text, metadata=dict(metadata) if metadata is not None else None)


def _is_permanent(exc: BaseException) -> bool:
    return bool(getattr(exc, "permanent", False))


def describe_error(exc: BaseException, path: str) -> str:
    """A one-line description of why a document failed."""
    from docq.errors import ProcessingError

    if isinstance(exc, ProcessingError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return f"file missing: {path}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {path}"
    if isinstance(exc, MemoryError):
        return "memory limit exceeded"
    if isinstance(exc, OSError):
        return f"I/O error: {exc.strerror or exc}: {path}"
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def _run_command(handler: Handler, job: Job, on_started: Any) -> HandlerOutcome:
    values = placeholder_values(job)
    argv = [substitute(argument, values) for argument in handler.argv]
    env = dict(os.environ)
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
        return HandlerOutcome(ok=False, error=f"command not found: {argv[0]}", permanent=True)
    except PermissionError:
        return HandlerOutcome(ok=False, error=f"command not executable: {argv[0]}", permanent=True)
    if on_started is not None:
        on_started(process.pid)
    try:
        stdout, truncated, stderr_tail = _collect(process, handler.output_cap)
        code = process.wait()
    finally:
        kill_group(process.pid)
    note = stderr_tail.decode("utf-8", "replace").strip() or None
    if code == 0:
        text = stdout.decode("utf-8", "replace")
        if truncated:
            note = ((note or "") + f"\n[stdout truncated at {handler.output_cap} bytes]").strip()
        return HandlerOutcome(ok=True, text=text, note=note)
    if code < 0:
        error = f"command killed by {signal_name(-code)}"
    else:
        error = f"command exited with code {code}"
    if note:
        error += f": {note.splitlines()[-1][:500]}"
    permanent = code != EX_TEMPFAIL and code in handler.permanent_exit_codes
    return HandlerOutcome(ok=False, error=error, permanent=permanent, note=note)


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
