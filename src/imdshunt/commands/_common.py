"""Shared CLI plumbing: the session from ``--profile``/``--region`` and error-to-exit mapping."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from imdshunt.errors import ConfigError, ImdshuntError, InputError, UsageError

#: Exit codes: 0 done, 1 an AWS action failed or a check found problems, 2 bad usage or input.
EXIT_FAILED = 1
EXIT_USAGE = 2

F = TypeVar("F", bound=Callable[..., Any])


def make_session(profile: str | None, region: str | None) -> Any:
    """A boto3 session for the command (created when the command runs, never at import)."""
    import boto3

    return boto3.Session(profile_name=profile, region_name=region)


def exits_on_library_errors(func: F) -> F:
    """Turn the library's typed errors into a message on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (UsageError, InputError, ConfigError) as exc:
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(EXIT_USAGE) from exc
        except ImdshuntError as exc:
            report = getattr(exc, "report", None)
            if report is not None:
                click.echo(report.render())
            click.echo(f"error: {exc}", err=True)
            raise SystemExit(EXIT_FAILED) from exc

    return wrapper  # type: ignore[return-value]
