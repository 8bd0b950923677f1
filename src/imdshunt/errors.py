"""Typed errors of the library. Only the CLI turns them into exit codes
(:mod:`imdshunt.commands._common`, ``EXIT_STATUS``).

Every error may name the file it is about and the line in it (``path``, ``line``); ``str()``
of the error is then ``<file>[:<line>]: <what>``, the shape the CLI prints.
"""

from __future__ import annotations

import json
import os
from typing import Any


class ImdshuntError(Exception):
    """Base class of every error the library raises on purpose."""

    def __init__(
        self, message: str, *, path: str | os.PathLike | None = None, line: int | None = None
    ):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self.__str__())

    @property
    def where(self) -> str | None:
        """``file`` or ``file:line``; None when the error is about no file."""
        if self.path is None:
            return None
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def __reduce__(self) -> tuple:
        # Errors cross process boundaries (decoder workers); subclasses have other __init__
        # signatures, so rebuild from the state rather than by calling __init__ again.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type, args: tuple, state: dict[str, Any]) -> ImdshuntError:
    exc = cls.__new__(cls)
    Exception.__init__(exc, *args)
    exc.__dict__.update(state)
    return exc


class UsageError(ImdshuntError):
    """The caller asked for something that cannot be done as asked."""


class ConfigError(ImdshuntError):
    """The configuration file or a parameter value is wrong."""


class InputError(ImdshuntError):
    """A log or reference file cannot be read. Carries the file and, where known, the line."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        super().__init__(message, path=path, line=line)


def not_json(
    path: str | os.PathLike, exc: json.JSONDecodeError, line: int | None = None
) -> InputError:
    """The one way a file that is not valid JSON is reported: file, line, what, column.

    ``line`` is the file's line when ``exc`` comes from parsing one line of it (JSON lines).
    """
    return InputError(path, f"not valid JSON: {exc.msg} (column {exc.colno})", line or exc.lineno)


class IpRangesError(ImdshuntError):
    """AWS's ip-ranges.json could not be fetched, found or parsed."""


class DetectionError(ImdshuntError):
    """A detection folder is malformed (bad metadata, id and folder disagree, bad SQL)."""

    def __init__(self, folder: str | os.PathLike, message: str, line: int | None = None):
        self.folder = str(folder)
        super().__init__(message, path=folder, line=line)


class EngineError(ImdshuntError):
    """A query engine failed to run a detection."""


class AwsActionError(ImdshuntError):
    """A response action failed or was refused (for example on a service-linked role)."""
