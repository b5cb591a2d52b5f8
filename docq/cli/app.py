"""The Typer app: the one error boundary, the global options, and what every command shares.

A command gets its `Invocation` from the context (``Invocation.of(ctx)``): the settings
resolved once from the global options, and the queue service, opened on first use and
closed when the command ends. Command bodies parse, call one library function and hand
the result to `docq.render`; every error ends in `DocqGroup`: one line
``docq: error: ...`` on stderr and the documented exit code (tracebacks only with
``--debug``). Library modules are imported inside commands, so ``docq --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from docq import __version__
from docq.config import Settings, parse_duration, parse_size
from docq.errors import EXIT_OK, DocqError, UsageError
from docq.render import output

if TYPE_CHECKING:
    from docq.queue import DocumentQueueService


@dataclass
class Invocation:
    """What a command gets from the global options: its settings (``--db``,
    ``--lock-timeout``, ``--synchronous``), whether to show tracebacks, and the queue."""

    settings: Settings
    debug: bool
    ctx: typer.Context

    @classmethod
    def of(cls, ctx: typer.Context) -> Invocation:
        """The invocation the app's callback stored on the root context."""
        found = ctx.find_object(Invocation)
        assert found is not None, "the app callback sets the invocation up"
        return found

    def settings_with(self, **changes: Any) -> Settings:
        """This command's settings: the global options plus ``changes`` (None = default)."""
        return self.settings.with_(**changes)

    def service(
        self, config: Settings | None = None, *, create: bool = False, upgrade: bool = True
    ) -> DocumentQueueService:
        """The queue service on this command's database, closed when the command ends.
        Only commands that add work ``create`` the database; the others refuse a queue
        that does not exist. A queue made by an older docq is upgraded (the library logs
        it, and `output.log_to_stderr` shows it) unless ``upgrade`` is False (a dry run):
        then it is refused with the advice to run ``docq migrate``."""
        from docq.db import Database
        from docq.queue import DocumentQueueService

        config = config or self.settings
        database = Database(config.db, config, create=create, upgrade=upgrade)
        service = DocumentQueueService(database, settings=config)
        self.ctx.call_on_close(service.close)
        return service


F = TypeVar("F", bound=Callable[..., Any])


class _NamedArgument(TyperArgument):
    """An argument whose help shows its name alone: the metavar says what it takes."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


_TYPE_PLACEHOLDERS = {"int": "N", "float": "NUMBER"}


def _plain_parameters(params: list[Any]) -> list[Any]:
    """Help that reads as a man page: a flag shows no placeholder (Typer shows ``<bool>``,
    which reads as taking a value), an option with a value a word for it (``N``, ``TEXT``)
    where it has no metavar of its own, an argument only its metavar. Idempotent."""
    for param in params:
        if isinstance(param, TyperArgument):
            if param.metavar is None:
                param.metavar = (param.name or "value").upper() + ("..." if param.nargs != 1 else "")
            param.__class__ = _NamedArgument
        elif getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        elif param.metavar is None:
            param.metavar = _TYPE_PLACEHOLDERS.get(param.bare_type(), "TEXT")
    return params


class DocqCommand(TyperCommand):
    """A docq command: plain help placeholders, and usage lines in one form
    (``docq cancel [OPTIONS] ID...``; optional arguments in brackets)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_parameters(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar or "[OPTIONS]"]
        for param in _plain_parameters(self.get_params(ctx)):
            if isinstance(param, TyperArgument):
                name = str(param.metavar)
                pieces.append(name if param.required else f"[{name}]")
        return pieces


def command(name: str | None = None, **settings: Any) -> Callable[[F], F]:
    """Register a docq command (``@command()``, as ``@app.command()`` with `DocqCommand`)."""
    return app.command(name, cls=DocqCommand, **settings)


class DocqGroup(TyperGroup):
    """The error boundary: every failure becomes one line and an exit code."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_parameters(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (docq list | head): that is the reader's choice, not an
            # error. Point stdout at /dev/null so the exit's final flush is quiet too.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_OK) from None
        except DocqError as exc:
            if _debug(ctx):
                exc.docq_traceback = True  # type: ignore[attr-defined]
                raise
            output.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except (_CLICK_EXCEPTION, typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # the last resort: a bug must still end in one line
            if _debug(ctx):
                exc.docq_traceback = True  # type: ignore[attr-defined]
                raise
            output.error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            raise typer.Exit(1) from None

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        code: int
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else EXIT_OK
        except _CLICK_EXCEPTION as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `docq` alone: the help, as asked
                exc.show()
                code = EXIT_OK
            else:
                context = getattr(exc, "ctx", None)
                where = f" (see `{context.command_path} --help`)" if context is not None else ""
                output.error(f"{_lower_first(exc.format_message())}{where}")
                code = exc.exit_code
        except typer.Abort:
            output.error("aborted")
            code = 1
        except SystemExit as exc:  # Typer exits 1 itself when stdout is a closed pipe
            code = exc.code if isinstance(exc.code, int) else EXIT_OK
        except Exception as exc:
            if getattr(exc, "docq_traceback", False):  # --debug: the traceback, as asked,
                import traceback  # and the exit code all the same, for scripts

                traceback.print_exception(exc)
                code = exc.exit_code if isinstance(exc, DocqError) else 1
            elif isinstance(exc, DocqError):
                output.error(str(exc))
                code = exc.exit_code
            else:  # the last resort: a bug must still end in one line
                output.error(
                    f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
                )
                code = 1
        except KeyboardInterrupt:
            output.error("interrupted")
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code


# Click's base exception, found through a public class so that this works whether Typer
# ships its own copy of Click or depends on the click package.
_CLICK_EXCEPTION: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _debug(ctx: Any) -> bool:
    invocation = ctx.find_object(Invocation) if ctx is not None else None
    return bool(invocation is not None and invocation.debug)


app = typer.Typer(
    cls=DocqGroup,
    name="docq",
    help="""A durable queue for batches of documents.

Queue files with **docq enqueue**, process them with **docq work** (from cron, or
**--loop** under systemd), and watch with **docq stats**. The queue lives in a
database, so nothing is lost when a process dies.

    docq enqueue -r ~/scans
    docq work
    docq stats""",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"docq {__version__}")
        raise typer.Exit()


def duration(value: str | float) -> float:
    """Typer parser for durations (``90``, ``90s``, ``10m``, ``2h``, ``7d``)."""
    try:
        return parse_duration(str(value))
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def size(value: str | int) -> int:
    """Typer parser for sizes (``512K``, ``256M``, ``1G``)."""
    try:
        return parse_size(str(value))
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="DOCQ_DB",
            metavar="TARGET",
            help="Queue database: a file path (SQLite) or postgresql+psycopg://user@host/db. "
            "Default: docq.db in your data directory, shared by every shell and cron job.",
        ),
    ] = None,
    lock_timeout: Annotated[
        float,
        typer.Option(
            envvar="DOCQ_LOCK_TIMEOUT",
            parser=duration,
            metavar="DURATION",
            help="How long to wait for a busy database before giving up with exit code 6.",
        ),
    ] = "30s",  # type: ignore[assignment]
    synchronous: Annotated[
        str,
        typer.Option(
            envvar="DOCQ_SYNCHRONOUS",
            metavar="full|normal",
            help="SQLite durability. full: an acknowledged write survives power loss. "
            "normal: faster; the last writes may be lost on power loss (never on a crash).",
        ),
    ] = "full",
    debug: Annotated[
        bool, typer.Option("--debug", envvar="DOCQ_DEBUG", help="Show tracebacks instead of one-line errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Options that apply to every command."""
    if synchronous.lower() not in ("full", "normal"):
        raise typer.BadParameter("use full or normal", param_hint="'--synchronous'")
    settings = Settings(db=db, lock_timeout=lock_timeout, synchronous=synchronous.lower())  # type: ignore[arg-type]
    ctx.obj = Invocation(settings, debug, ctx)
    output.log_to_stderr(debug=debug)


def finish(code: int) -> NoReturn:
    """End the command with ``code``."""
    raise typer.Exit(code)


def with_memory_limit(settings: Settings, memory_limit: int | None) -> Settings:
    """``settings`` with ``--memory-limit`` applied (0 is a value: no cap)."""
    return settings if memory_limit is None else replace(settings, memory_limit=memory_limit)


# --- options shared by several commands ------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
PriorityOption = Annotated[
    int, typer.Option("--priority", "-p", help="Higher runs first; ties run in queue order.")
]
OperationOption = Annotated[
    str,
    typer.Option(
        "--operation",
        "-o",
        metavar="NAME",
        help="process (the built-in text extraction, default) or the name of your own operation.",
    ),
]
StatusOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        "-s",
        metavar="STATUS",
        help="pending, retrying, in_progress, completed, failed or cancelled (repeat, or comma-separate).",
    ),
]
OperationFilter = Annotated[
    str | None, typer.Option("--operation", "-o", metavar="NAME", help="Only this operation.")
]
ErrorFilter = Annotated[
    str | None, typer.Option("--error", metavar="TEXT", help="Only items whose last error contains TEXT.")
]
SinceFilter = Annotated[
    float | None,
    typer.Option(
        parser=duration, metavar="DURATION", help="Only items queued within this long (e.g. 2h, 7d)."
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]


def statuses(values: list[str] | None) -> tuple[str, ...]:
    """``--status`` values, repeated or comma-separated."""
    return tuple(part.strip() for value in values or [] for part in value.split(",") if part.strip())
