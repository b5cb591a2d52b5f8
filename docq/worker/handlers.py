"""What a worker runs for each item: the built-in extraction, a no-op, a user's command
or a Python function. `handler_for` builds and checks the `Handler` in the worker, before
anything is claimed; `run` executes it for one job inside a child process.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from docq.config import BUILTIN_OPERATIONS, NOOP_OPERATION
from docq.errors import UsageError
from docq.items import Result
from docq.worker.commands import run_command, substitute
from docq.worker.protocol import Handler, HandlerKind, Job


def handler_for(
    operation: str,
    *,
    command: list[str] | None = None,
    target: str | None = None,
    max_size: int,
    output_cap: int,
    permanent_exit_codes: frozenset[int] = frozenset(),
    pass_env: frozenset[str] = frozenset(),
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
            pass_env=pass_env,
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


def run(handler: Handler, job: Job, on_started: Callable[[int], None] | None = None) -> Result:
    """Process ``job`` with ``handler``. Raises nothing for a document's failure: it is
    reported as the result. ``on_started`` (commands only) is called with the command's pid."""
    if handler.kind == "noop":
        return Result(ok=True)
    if handler.kind == "command":
        return run_command(handler, job, on_started)
    if handler.kind == "extract":
        from docq.processing import _process_document_content

        function: Any = _process_document_content
        kwargs: dict[str, Any] = {"max_size": handler.max_size}
    else:
        module_name, _, attr = handler.target.partition(":")
        function = getattr(importlib.import_module(module_name), attr)
        kwargs = {}
    try:
        output = function(job.path, **kwargs)
    except Exception as exc:  # any failure of one document is that document's result
        return Result.failure(describe_error(exc, job.path), permanent=bool(getattr(exc, "permanent", False)))
    if isinstance(output, str):
        return Result(ok=True, text=output)
    text = getattr(output, "text", None)
    metadata = getattr(output, "metadata", None)
    return Result(ok=True, text=text, metadata=dict(metadata) if metadata is not None else None)


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
