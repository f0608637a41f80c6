"""The one error boundary of ``prl``: a mistake is one line, exit code 2, no traceback.

:func:`run` runs the command tree. What a user can fix (an unknown name, a missing file, a
bad option value, a store that needs migrating) is printed as ``error: <what is wrong and
how to fix it>`` with exit code 2; anything else is a bug of ours, printed as one line with
exit code 1 and a pointer to ``--debug``. With ``prl --debug …`` or ``PRL_DEBUG=1`` the
full traceback is printed as well.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click
import typer
import typer.exceptions

# Typer 0.2x vendors its own copy of click: catch both copies' classes.
try:
    from typer._click import exceptions as _tclick
except ImportError:  # a Typer on plain click
    _tclick = click.exceptions
EXIT = (click.exceptions.Exit, typer.exceptions.Exit)
CLICK_ERRORS = (click.ClickException, _tclick.ClickException)
ABORT = (click.exceptions.Abort, typer.exceptions.Abort)

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, LookupError, OSError)
"""What counts as a user's mistake: bad values and names (``ValueError``, pydantic's
``ValidationError``, ``UnknownNameError``), missing files and busy ports (``OSError``)."""


class CliError(Exception):
    """A mistake the user can fix; ``str(exc)`` says what is wrong and how to fix it."""


_debug_flag = False  # set by ``prl --debug`` for the current invocation


def set_debug(on: bool) -> None:
    global _debug_flag
    _debug_flag = on


def debug_enabled() -> bool:
    return _debug_flag or os.environ.get("PRL_DEBUG", "").lower() not in ("", "0", "false", "no")


def explain(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an exception left by a command."""
    from services.cli.hints import hint_for

    hinted = hint_for(exc)
    if hinted is not None:
        return hinted, 2
    if isinstance(exc, (CliError, *USER_ERRORS)):
        text = " ".join(str(exc).split()) or type(exc).__name__
        return text, 2
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text} (a bug in prl? rerun with --debug for the traceback)", 1


def run(argv: Sequence[str] | None = None, *, prog_name: str = "prl") -> int:
    """Run ``prl`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from services.cli import load_commands
    from services.cli.base import app

    load_commands()
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    set_debug(False)
    try:
        out = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except EXIT as exc:
        return int(exc.exit_code)
    except CLICK_ERRORS as exc:
        exc.show()
        return int(exc.exit_code)
    except ABORT:
        click.echo("aborted", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if debug_enabled():
            traceback.print_exception(exc)
        message, code = explain(exc)
        click.echo(f"error: {message}", err=True)
        return code
    return int(out) if isinstance(out, int) else 0
