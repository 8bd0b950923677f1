"""Typed errors of the library. Only the CLI turns them into exit codes."""

from __future__ import annotations


class ImdshuntError(Exception):
    """Base class of every error the library raises on purpose."""


class UsageError(ImdshuntError):
    """The caller asked for something that cannot be done as asked."""


class ConfigError(ImdshuntError):
    """The configuration file or a parameter value is wrong."""


class InputError(ImdshuntError):
    """A log or reference file cannot be read. Carries the file and, where known, the line."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class IpRangesError(ImdshuntError):
    """AWS's ip-ranges.json could not be fetched, found or parsed."""


class DetectionError(ImdshuntError):
    """A detection folder is malformed (bad metadata, id and folder disagree, bad SQL)."""

    def __init__(self, folder: str, message: str):
        self.folder = str(folder)
        super().__init__(f"{self.folder}: {message}")


class EngineError(ImdshuntError):
    """A query engine failed to run a detection."""


class AwsActionError(ImdshuntError):
    """A response action failed or was refused (for example on a service-linked role)."""
