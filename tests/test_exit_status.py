"""One error-to-exit table: every command reports an error as ``imdshunt: error: <file>[:<line>]:
<what>`` and exits 2; findings (or a refused AWS action) exit 1; a bug exits 3 and says where
its traceback was written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from imdshunt.cli import cli
from imdshunt.commands._common import EXIT_BUG, EXIT_FINDINGS, EXIT_OK, EXIT_USAGE
from imdshunt.commands.inventory import inventory
from tests.test_cloudtrail_source import FIXTURE, RANGES

EXPOSURE = Path(__file__).parent / "fixtures" / "exposure"


@pytest.fixture()
def bad_json(tmp_path) -> Path:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "Roles": [\n    {"RoleName": "web",}\n  ]\n}\n')
    return path


def _run(args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], prog_name="imdshunt", **kw)


@pytest.mark.parametrize(
    "args",
    [
        ["exposure", EXPOSURE / "cloudtrail-org.json", "--iam", "{bad}"],
        ["hunt", FIXTURE, "--ip-ranges", "{bad}"],
        ["inventory", "show", "{bad}"],
        ["exposure", EXPOSURE / "cloudtrail-org.json", "--inventory", "{bad}"],
        ["hunt", FIXTURE, "--ip-ranges", RANGES, "--inventory", "{bad}"],
    ],
    ids=["exposure --iam", "hunt --ip-ranges", "inventory show", "exposure --inventory",
         "hunt --inventory"],
)  # fmt: skip
def test_a_malformed_json_file_is_one_line_naming_file_and_line_and_exits_2(args, bad_json):
    out = _run([str(bad_json) if a == "{bad}" else a for a in args])
    assert out.exit_code == EXIT_USAGE, out.output
    assert out.stderr.splitlines() == [
        f"imdshunt: error: {bad_json}:3: not valid JSON: Expecting property name enclosed in "
        "double quotes (column 24)"
    ]


def test_a_usage_error_has_the_same_prefix_and_exits_2():
    out = _run(["hunt", FIXTURE, "--no-such-flag"])
    assert out.exit_code == EXIT_USAGE
    first, hint = out.stderr.splitlines()
    assert first == "imdshunt: error: No such option '--no-such-flag'."
    assert hint == "Try 'imdshunt hunt -h' for help."


def test_a_missing_file_exits_2_naming_it(tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    out = _run(["respond", "--from", missing])
    assert out.exit_code == EXIT_USAGE
    assert out.stderr.startswith(f"imdshunt: error: {missing}: cannot read: No such file")


def test_an_output_folder_that_does_not_exist_is_an_input_error_not_a_bug(tmp_path):
    dest = tmp_path / "no" / "such" / "folder" / "f.jsonl"
    out = _run(["hunt", FIXTURE, "--ip-ranges", RANGES, "--format", "jsonl", "-o", dest, "-q"])
    assert out.exit_code == EXIT_USAGE
    assert out.stderr.splitlines()[-1] == f"imdshunt: error: {dest}: No such file or directory"


def test_a_command_run_on_its_own_uses_the_same_table(bad_json):
    out = CliRunner().invoke(inventory, ["show", str(bad_json)])
    assert out.exit_code == EXIT_USAGE
    assert out.stderr.startswith(f"imdshunt: error: {bad_json}:3: not valid JSON")


def test_exposure_exits_1_when_it_lists_instances_and_0_when_none(tmp_path):
    listed = _run(["exposure", EXPOSURE / "cloudtrail-org.json", "--format", "jsonl"])
    assert listed.exit_code == EXIT_FINDINGS, listed.output
    assert listed.stdout.strip()
    empty = _run(["exposure", FIXTURE.with_name("nomatch_sso_user_from_internet.json")])
    assert empty.exit_code == EXIT_OK, empty.output


def test_a_bug_exits_3_and_says_where_the_traceback_is(tmp_path, monkeypatch):
    from imdshunt import api

    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted for the test")

    monkeypatch.setattr(api, "hunt", broken)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = _run(["hunt", FIXTURE, "--ip-ranges", RANGES])
    assert out.exit_code == EXIT_BUG
    [line] = out.stderr.splitlines()
    assert line.startswith(
        "imdshunt: error: internal error (a bug in imdshunt, please report it): "
        "ZeroDivisionError: planted for the test; traceback written to "
    )
    written = Path(line.rsplit(" ", 1)[1])
    assert written.parent == tmp_path / "cache" / "imdshunt" / "tracebacks"
    text = written.read_text()
    assert "Traceback (most recent call last)" in text and "planted for the test" in text
    assert "def broken" not in out.output  # the traceback itself is not on the terminal
