from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO

from imdshunt.findings import Finding


@dataclass
class RunContext:
    """What a run read and what the naive rule would have said, for summaries."""

    stats: Any = None
    naive: dict[str, Any] = field(default_factory=dict)
    ip_ranges: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Output:
    """Writes findings to a text stream. Subclasses set ``name`` and implement ``write``."""

    name = "base"
    binary = False

    def write(self, findings: list[Finding], stream: TextIO, context: RunContext) -> None:
        raise NotImplementedError
