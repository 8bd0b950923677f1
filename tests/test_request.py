"""One hunt request: built once, handed whole to every mode, and narrow entry points."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imdshunt import api
from imdshunt.cli import cli, request_from_options
from imdshunt.enrich.inventory import Inventory
from imdshunt.pipeline import HuntConfig
from imdshunt.request import HuntRequest
from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import list_inputs
from imdshunt.state import StateOptions, _config_digest, hunt_incremental
from imdshunt.window import HuntWindow
from tests.test_cloudtrail_source import RANGES, _layout, _records

SRC = Path(__file__).resolve().parents[1] / "src" / "imdshunt"

#: The modules a hunt passes through, from the command line to the detections.
HUNT_PATH = ["api", "request", "pipeline", "state", "cli", "commands/engines", "sources/selection"]


def _logs(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    _layout(root, "a_CloudTrail_us-east-1_20261102T0915Z_0001.json.gz", _records())
    return root


def _ids(findings) -> list[tuple]:
    return sorted((f["detection"], f["finding_id"], f["event_count"]) for f in findings)


def test_a_request_and_the_keyword_style_give_the_same_hunt(tmp_path):
    logs = _logs(tmp_path)
    request = HuntRequest.make([logs], ip_ranges=RANGES, fetch_ip_ranges=False, workers=1)
    by_request = api.hunt(request)
    by_keywords = api.hunt([logs], ip_ranges=RANGES, fetch_ip_ranges=False, workers=1)
    assert by_request.findings, "the fixture holds a stolen instance credential"
    assert _ids(by_request.findings) == _ids(by_keywords.findings)
    assert by_request.stats.records_read == by_keywords.stats.records_read == len(_records())


def test_inputs_named_directly_are_hunted_like_the_paths_that_list_them(tmp_path):
    """What an SQS notification names (request.files) goes through the plain hunt too."""
    logs = _logs(tmp_path)
    files = list_inputs([logs], RunStats()).files
    named = api.hunt(HuntRequest.make(files=files, ip_ranges=RANGES, fetch_ip_ranges=False))
    listed = api.hunt(HuntRequest.make([logs], ip_ranges=RANGES, fetch_ip_ranges=False))
    assert _ids(named.findings) == _ids(listed.findings) != []


def test_a_misspelt_option_is_refused_not_ignored(tmp_path):
    with pytest.raises(TypeError, match="allowlsit"):
        HuntRequest.make([tmp_path], allowlsit=["198.51.100.0/24"])
    with pytest.raises(Exception, match="options"):
        api.hunt(HuntRequest.make([tmp_path]), workers=2)


def test_the_state_refuses_an_engine_or_a_store(tmp_path):
    from imdshunt.engine.duckdb import DuckDBEngine
    from imdshunt.errors import UsageError

    with DuckDBEngine() as engine, pytest.raises(UsageError, match="own DuckDB"):
        hunt_incremental(HuntRequest.make([tmp_path], engine=engine), StateOptions(tmp_path / "s"))


def test_the_state_digest_follows_every_field_that_changes_findings():
    """A field added to HuntConfig counts in the incremental state's digest by itself; only
    fields that declare they change nothing (workers, progress) are left out."""
    base = HuntConfig(ip_ranges=RANGES)
    digest = _config_digest(base, 30)
    changed = {
        "allowlist": ["198.51.100.0/24"],
        "fetch_ip_ranges": False,
        "detections": {},
        "params": {"ec2_instance_credential_outside_aws": {"x": 1}},
        "kinds": ("web",),
        "web_log_type": "alb",
        "instance_by_ip": {"10.0.0.5": "i-0123456789abcdef0"},
        "chain_window_hours": 48,
        # the workload inventory (tasks, pods, functions) binds credentials to their workload
        "inventory": Inventory(workloads=[{"workload_id": "arn:aws:ecs:task/1"}]),
        "window": HuntWindow.make("2026-11-01", "2026-11-02", None, None),
    }
    for f in dataclasses.fields(HuntConfig):
        if f.name == "ip_ranges":
            continue  # a file: its identity counts (test_state covers a changed copy)
        if f.metadata.get("changes_findings", True):
            assert f.name in changed, f"give {f.name} a changed value in this test"
            other = dataclasses.replace(base, **{f.name: changed[f.name]})
            assert _config_digest(other, 30) != digest, f.name
        else:
            other = dataclasses.replace(base, **{f.name: 4 if f.name == "workers" else print})
            assert _config_digest(other, 30) == digest, f.name
    assert _config_digest(base, None) != digest  # retention changes what the state keeps


def test_the_command_line_builds_its_request_from_the_config_file_and_the_options(tmp_path):
    config = tmp_path / "imdshunt.toml"
    config.write_text('allowlist = ["203.0.113.0/24"]\n')
    allow = tmp_path / "egress.txt"
    allow.write_text("198.51.100.0/24\n")
    request = request_from_options(
        ["logs"],
        {
            "config_path": str(config),
            "allowlist_files": (str(allow),),
            "allow_cidrs": ("192.0.2.0/24",),
            "since": "2026-11-01",
            "until": "2026-11-02",
            "accounts": "111122223333",
            "workers": 2,
        },
    )
    assert request.paths == ("logs",)
    assert sorted(request.config.allowlist) == [
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
    ]
    assert request.config.window == HuntWindow.make(
        "2026-11-01", "2026-11-02", "111122223333", None
    )
    assert request.config.workers == 2


def test_watch_writes_the_jsonl_output_of_a_hunt_with_the_change(tmp_path):
    logs = _logs(tmp_path)
    out = tmp_path / "changes.jsonl"
    args = ["watch", str(logs), "--state", str(tmp_path / "state"), "--ip-ranges", str(RANGES)]
    result = CliRunner().invoke(cli, [*args, "--iterations", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    hunt = CliRunner().invoke(
        cli, ["hunt", str(logs), "--ip-ranges", str(RANGES), "--format", "jsonl", "-q"]
    )
    plain = [json.loads(line) for line in hunt.stdout.splitlines()]
    assert lines and [dict(f, change="new") for f in plain] == lines


def _width(fn: ast.FunctionDef) -> int:
    a = fn.args
    names = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    return len([n for n in names if n.arg not in ("self", "cls")])


def test_no_function_on_the_hunt_path_takes_more_than_eight_parameters():
    """The request carries the options; a function that restates them grows with every
    option. (Click's command callbacks declare the command's options and are not counted.)"""
    wide = []
    for module in HUNT_PATH:
        tree = ast.parse((SRC / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any(".command" in d or "click." in d for d in decorators):
                continue
            if _width(node) > 8:
                wide.append(f"{module}.{node.name}: {_width(node)}")
    assert wide == []
