"""The command line: every command documents itself with an example; exit codes are stable."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from imdshunt.cli import cli
from tests.test_cloudtrail_source import FIXTURE, RANGES


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


ALL = list(_commands(cli))


@pytest.mark.parametrize(("path", "cmd"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help_with_an_example(path, cmd):
    out = CliRunner().invoke(cli, [*path, "--help"])
    assert out.exit_code == 0
    assert cmd.help, f"{' '.join(path)} has no help"
    assert "Example" in out.output, f"{' '.join(path)} help has no example"


def test_findings_exit_1_and_no_findings_exit_0(tmp_path):
    hit = CliRunner().invoke(cli, ["hunt", str(FIXTURE), "--ip-ranges", str(RANGES), "-q"])
    assert hit.exit_code == 1
    assert "i-0a1b2c3d4e5f60718" in hit.stdout
    clean = FIXTURE.with_name("nomatch_sso_user_from_internet.json")
    assert CliRunner().invoke(cli, ["hunt", str(clean), "--ip-ranges", str(RANGES)]).exit_code == 0


def test_fail_on_raises_the_bar(tmp_path):
    out = CliRunner().invoke(
        cli, ["hunt", str(FIXTURE), "--ip-ranges", str(RANGES), "--fail-on", "critical", "-q"]
    )
    assert out.exit_code == 0


def test_input_errors_exit_2_with_a_message():
    out = CliRunner().invoke(cli, ["hunt", "/no/such/path", "--ip-ranges", str(RANGES)])
    assert out.exit_code == 2
    assert "no such file" in out.stderr


def test_csv_and_jsonl_to_a_file(tmp_path):
    for fmt in ("csv", "jsonl"):
        dest = tmp_path / f"f.{fmt}"
        out = CliRunner().invoke(
            cli,
            [
                "hunt",
                str(FIXTURE),
                "--ip-ranges",
                str(RANGES),
                "--format",
                fmt,
                "-o",
                str(dest),
                "-q",
            ],
        )
        assert out.exit_code == 1
        assert "198.199.65.17" in dest.read_text()
