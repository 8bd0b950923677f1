"""Attacker-controlled strings stay inert in every output."""

from __future__ import annotations

import csv
import io
import json

import pytest

from imdshunt.findings import Finding
from imdshunt.outputs import OUTPUTS, RunContext
from imdshunt.sanitize import csv_cell, inert

HOSTILE_UA = '\x1b[2J\x1b]8;;http://evil/\x07click\x1b]8;;\x07 [bold red]pwned[/] =HYPERLINK("x")'


def _finding(**kw):
    f = {
        "finding_id": "abc",
        "detection": "ec2_instance_credential_outside_aws",
        "severity": "high",
        "kind": "credential",
        "account_id": "111122223333",
        "role": "web",
        "credential_type": "ec2-instance",
        "credential_id": "i-0123456789abcdef0",
        "source_ip": "198.199.65.17",
        "network": "internet",
        "access_key_ids": ["ASIAX"],
        "actions": ["s3:ListBuckets"],
        "user_agents": [HOSTILE_UA],
        "reasons": ["=cmd|' /C calc'!A0"],
        "first_seen": "2026-11-02T10:01:00Z",
    }
    f.update(kw)
    return Finding(f)


def _render(fmt, findings):
    buf = io.StringIO()
    OUTPUTS[fmt]().write(findings, buf, RunContext())
    return buf.getvalue()


def test_inert_shows_control_characters_as_escapes():
    assert inert("a\x1b[31mb\u202ec") == "a\\x1b[31mb\\u202ec"


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_cells_never_start_a_formula(value):
    assert not csv_cell(value).startswith(("=", "+", "-", "@", "\t", "\r"))


def test_table_prints_no_escape_sequences_and_no_markup():
    out = _render("table", [_finding(role="[red]x[/red]\x1b[31m")])
    assert "\x1b" not in out
    assert "[red]x[/red]" in out  # shown literally, not interpreted


def test_csv_neutralises_formulas_and_controls():
    out = _render("csv", [_finding()])
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows[0]["reasons"].startswith("'=")
    assert "\x1b" not in out and "\\x1b" in rows[0]["user_agents"]


def test_jsonl_round_trips_hostile_text_as_escaped_data():
    out = _render("jsonl", [_finding()])
    assert "\x1b" not in out
    assert json.loads(out)["user_agents"] == [HOSTILE_UA]


def test_jsonl_contract_fields_come_first_in_order():
    rec = json.loads(_render("jsonl", [_finding()]))
    assert list(rec)[:3] == ["finding_id", "detection", "severity"]
