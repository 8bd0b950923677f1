"""Shared CLI plumbing: the session from ``--profile``/``--region``, and the one table that
turns errors into messages and exit statuses (README, "Exit status").

Every command's class is :class:`ImdshuntCommand` or :class:`ImdshuntGroup`, so the table
applies however a command is run (``imdshunt ...``, or one command invoked on its own in a
test). Library code raises :mod:`imdshunt.errors`; only this module decides the exit status.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import click

from imdshunt.errors import AwsActionError, ImdshuntError

#: 0: done, nothing found.
EXIT_OK = 0
#: 1: findings (hunt, ssrf, exposure, guardduty check's problems) or an AWS action refused or
#: failed (respond, inventory collect). Never an error of the tool itself.
EXIT_FINDINGS = 1
#: 2: usage or input error: bad arguments or config, a missing or malformed file.
EXIT_USAGE = 2
#: 3: an unexpected exception, i.e. a bug; the traceback is written to a file.
EXIT_BUG = 3
#: 130: interrupted (Ctrl-C); 141: standard output closed early (``imdshunt ... | head``).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

#: Library error class -> exit status; the first match wins. Anything else is a bug.
EXIT_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (AwsActionError, EXIT_FINDINGS),  # AWS refused the action, or it failed to verify
    (ImdshuntError, EXIT_USAGE),  # usage, config, input, ip-ranges, detection, engine
)

# Kept for the commands that name them.
EXIT_FAILED = EXIT_FINDINGS


def make_session(profile: str | None, region: str | None) -> Any:
    """A boto3 session for the command (created when the command runs, never at import)."""
    import boto3

    return boto3.Session(profile_name=profile, region_name=region)


def print_iam_policy_option(*commands: str, what: str) -> Any:
    """``--print-iam-policy``: print the policy derived from the call sites, and exit."""

    def show(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if not value or ctx.resilient_parsing:
            return
        from imdshunt.permissions import print_iam_policy

        click.echo(print_iam_policy(commands))
        ctx.exit(EXIT_OK)

    return click.option(
        "--print-iam-policy",
        is_flag=True,
        is_eager=True,
        expose_value=False,
        callback=show,
        help=f"Print the least-privilege IAM policy {what} needs, and exit.",
    )


def error(message: str) -> None:
    """``imdshunt: error: <message>`` on standard error: the one shape of every error."""
    click.echo(f"imdshunt: error: {message}", err=True)


def traceback_folder() -> Path:
    """Where a bug's traceback is written: the user cache, else the temporary folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "imdshunt" / "tracebacks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    except OSError:
        return Path(tempfile.gettempdir())


def _write_traceback(exc: BaseException) -> Path | None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = (
        f"imdshunt {_version()} on Python {sys.version.split()[0]}\n"
        f"argv: {sys.argv!r}\n\n"
        + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    )
    for folder in (traceback_folder(), Path(tempfile.gettempdir())):
        try:
            fd, name = tempfile.mkstemp(prefix=f"imdshunt-{stamp}-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            return Path(name)
        except OSError:
            continue
    return None


def _version() -> str:
    from imdshunt import __version__

    return __version__


def exit_status(exc: BaseException) -> int:
    """Print what went wrong (one line) and return the exit status for ``exc``."""
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, click.UsageError):
        error(exc.format_message())
        if exc.ctx is not None:
            click.echo(f"Try '{exc.ctx.command_path} -h' for help.", err=True)
        return EXIT_USAGE
    if isinstance(exc, click.ClickException):  # click's own file errors (FileError ...)
        error(exc.format_message())
        return EXIT_USAGE
    if isinstance(exc, KeyboardInterrupt | click.Abort):
        error("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, _OutputClosed):
        try:  # nothing more can be written; keep Python's exit-time flush quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        return EXIT_BROKEN_PIPE
    for cls, status in EXIT_STATUS:
        if isinstance(exc, cls):
            report = getattr(exc, "report", None)  # respond: what was and was not done
            if report is not None:
                click.echo(report.render())
            error(str(exc))
            return status
    if isinstance(exc, OSError) and exc.filename is not None:
        # the environment, not a bug: an output folder that does not exist, no permission
        error(f"{exc.filename}: {exc.strerror or exc}")
        return EXIT_USAGE
    where = _write_traceback(exc)
    error(
        f"internal error (a bug in imdshunt, please report it): {type(exc).__name__}: {exc}; "
        + (f"traceback written to {where}" if where else "the traceback could not be written")
    )
    return EXIT_BUG


class _OutputClosed(Exception):
    """Standard output was closed by its reader (``| head``): not a failure of the hunt."""


class _ExitTable:
    """``main`` runs the command and turns whatever it raises into one line and a status."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except OSError as exc:
            # click's main would turn a broken pipe into status 1, which means "findings"
            if exc.errno == errno.EPIPE:
                raise _OutputClosed() from exc
            raise

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # a caller embedding the CLI handles exceptions itself
            return super().main(args, prog_name, complete_var, False, **extra)  # type: ignore[misc]
        try:
            returned = super().main(args, prog_name, complete_var, False, **extra)  # type: ignore[misc]
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001 - this is the one place that decides
            sys.exit(exit_status(exc))
        # click returns ctx.exit()'s code in place of raising when not standalone
        sys.exit(returned if isinstance(returned, int) else EXIT_OK)


class ImdshuntCommand(_ExitTable, click.Command):
    """A command whose errors go through :data:`EXIT_STATUS`."""


class ImdshuntGroup(_ExitTable, click.Group):
    """A command group whose errors, and its commands', go through :data:`EXIT_STATUS`."""

    command_class = ImdshuntCommand


ImdshuntGroup.group_class = ImdshuntGroup
