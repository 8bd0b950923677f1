"""imdshunt.toml: what is not understood is refused with the file and line, never ignored."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imdshunt.cli import cli
from imdshunt.config import load_config
from imdshunt.errors import ConfigError
from tests.test_cloudtrail_source import FIXTURE, RANGES

GOOD = """\
allowlist = ["198.51.100.0/24"]

[detections.ec2_instance_credential_outside_aws]
max_event_ids = 7
"""


def _write(tmp_path, text):
    path = tmp_path / "imdshunt.toml"
    path.write_text(text)
    return path


def test_detection_params_are_read(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.detection_params == {"ec2_instance_credential_outside_aws": {"max_event_ids": 7}}
    assert cfg.allowlist == ["198.51.100.0/24"]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            GOOD.replace("outside_aws]", "outside_awz]"),
            3,
            "[detections.ec2_instance_credential_outside_awz]: no detection has this id "
            "(did you mean ec2_instance_credential_outside_aws?)",
        ),
        (
            GOOD.replace("max_event_ids", "max_events"),
            3,
            "[detections.ec2_instance_credential_outside_aws]: no parameter(s) max_events; "
            "it has max_event_ids",
        ),
        ("org_acounts = []\n" + GOOD, 1, "unknown key(s) org_acounts"),
        (GOOD + "[detections.lambda_credential_outside_aws\n", 5, "not valid TOML"),
    ],
    ids=["unknown detection", "unknown parameter", "unknown key", "bad TOML"],
)
def test_what_is_not_understood_is_refused_with_file_and_line(tmp_path, text, line, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.path, caught.value.line) == (str(path), line)
    assert str(caught.value).startswith(f"{path}:{line}: {message}")


def test_the_hunt_refuses_a_config_naming_an_unknown_detection(tmp_path):
    path = _write(tmp_path, GOOD.replace("outside_aws]", "outside_awz]"))
    out = CliRunner().invoke(
        cli, ["hunt", str(FIXTURE), "--ip-ranges", str(RANGES), "--config", str(path)]
    )
    assert out.exit_code == 2
    assert out.stderr.startswith(f"imdshunt: error: {path}:3: [detections.")
