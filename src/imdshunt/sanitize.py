"""Attacker-controlled text (user agents, URLs, parameters) is data, never markup.

Terminal escapes, C1 controls and bidirectional overrides would let a log line repaint a
terminal or disguise itself; spreadsheet formulas in CSV cells would run on open. These helpers
make such text inert while keeping it readable.
"""

from __future__ import annotations

import re

# C0 controls except none, DEL, C1 controls, and Unicode bidi/format controls used in
# "Trojan Source"-style disguises.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|")


def _escape_char(m: re.Match) -> str:
    c = m.group(0)
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: object) -> str:
    """Text with every control or format character shown as a visible escape (``\\x1b``)."""
    if text is None:
        return ""
    return _UNSAFE.sub(_escape_char, str(text))


def csv_cell(value: object) -> str:
    """A CSV cell that no spreadsheet will evaluate: formula starters get a leading quote."""
    text = inert(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text
