"""An SSRF attempt in ALB logs followed by off-box use of the target's credential is a chain."""

from __future__ import annotations

import copy
import json

from click.testing import CliRunner

from imdshunt import api
from imdshunt.cli import cli
from tests.test_cloudtrail_source import RANGES, _records

ALB = (
    "https 2026-11-02T09:40:00.000000Z app/web/50dc6c495c0c9188 198.199.65.17:51000 "
    "10.0.12.34:8080 0.000 0.002 0.000 200 200 120 512 "
    '"GET https://shop.example.com:443/fetch?url=http://0xA9FEA9FE/latest/meta-data/iam/'
    'security-credentials/web-app-role HTTP/1.1" "python-requests/2.31.0" '
    "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-1:111122223333:"
    'targetgroup/web/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" '
    '"shop.example.com" "-" 0 2026-11-02T09:39:59.990000Z "forward" "-" "-" '
    '"10.0.12.34:8080" "200" "-" "-"\n'
)


def _org(tmp_path):
    recs = _records()
    # the instance's own call through its VPC endpoint teaches imdshunt its private address
    own = copy.deepcopy(recs[0])
    own.update(
        sourceIPAddress="10.0.12.34",
        vpcEndpointId="vpce-0a1b2c3d4e5f6a7b8",
        vpcEndpointAccountId="111122223333",
        eventID="3f1e9d7a-2b6c-4c0e-9a51-0d5c8b7e1b01",
    )
    ct = tmp_path / "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/02"
    ct.mkdir(parents=True)
    (ct / "111122223333_CloudTrail_us-east-1_20261102T1000Z_x.json").write_text(
        json.dumps({"Records": [*recs, own]})
    )
    elb = tmp_path / "AWSLogs/111122223333/elasticloadbalancing/us-east-1/2026/11/02"
    elb.mkdir(parents=True)
    (
        elb / "111122223333_elasticloadbalancing_us-east-1_app.web.50dc6c495c0c9188_"
        "20261102T0940Z_52.0.0.1_abc.log"
    ).write_text(ALB)
    return tmp_path


def test_attempt_then_theft_of_the_target_instance_is_one_chain(tmp_path):
    result = api.hunt([_org(tmp_path)], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    kinds = sorted(f["detection"] for f in result.findings)
    assert kinds == ["ec2_instance_credential_outside_aws", "imds_ssrf_attempt", "imds_theft_chain"]
    chain = next(f for f in result.findings if f["detection"] == "imds_theft_chain")
    assert chain["target_instance"] == "i-0a1b2c3d4e5f60718"
    assert chain["ssrf_client_ips"] == ["198.199.65.17"]
    assert any("0xA9FEA9FE" in u for u in chain["ssrf_request_urls"])
    assert chain["access_key_ids"] == ["ASIA5FLZVX4OPVKKAAAA"]
    assert chain["source_ip"] == "198.199.65.17"
    assert chain["first_off_box_use"] == "2026-11-02T10:01:00Z"
    assert [e["event"] for e in chain["timeline"]][:2] == ["ssrf_attempt", "first_off_box_use"]
    web = next(f for f in result.findings if f["detection"] == "imds_ssrf_attempt")
    assert web["target_instance"] == "i-0a1b2c3d4e5f60718"


def test_every_finding_carries_its_detections_named_techniques_and_description(tmp_path):
    """Outputs read MITRE names and descriptions off the finding; no output reloads detections."""
    from imdshunt import findings as contract
    from imdshunt.outputs.ocsf import to_ocsf

    result = api.hunt([_org(tmp_path)], ip_ranges=RANGES, workers=1, fetch_ip_ranges=False)
    documented = {
        "credential": set(contract.CREDENTIAL_FIELDS) | set(contract.CREDENTIAL_OPTIONAL_FIELDS),
        "web": set(contract.WEB_FIELDS) | set(contract.WEB_OPTIONAL_FIELDS),
        "correlation": set(contract.CORRELATION_FIELDS),
    }
    cited = {
        "ec2_instance_credential_outside_aws": ["T1552.005", "T1078.004"],
        "imds_ssrf_attempt": ["T1552.005", "T1190"],
        "imds_theft_chain": ["T1190", "T1552.005", "T1078.004"],
    }
    for f in result.findings:
        assert [t["id"] for t in f["mitre"]] == cited[f["detection"]]
        assert all(t["name"] and t["tactics"] for t in f["mitre"])
        assert f["description"] and f["schema_version"]
        undocumented = set(f) - documented[f["kind"]] - set(contract.COMMON_FIELDS)
        assert not undocumented, f"{f['detection']}: undocumented fields {sorted(undocumented)}"
        for attack in to_ocsf(f)["finding_info"]["attacks"]:
            for part in ("technique", "sub_technique"):
                if part in attack:
                    assert attack[part]["name"] != attack[part]["uid"], attack
    credential = next(f for f in result.findings if f["kind"] == "credential")
    assert credential["merge_priority"] == 0  # detection.yml of outside_aws


def test_ssrf_command_reads_only_the_web_side(tmp_path):
    out = CliRunner().invoke(
        cli, ["ssrf", str(_org(tmp_path)), "--ip-ranges", str(RANGES), "--format", "jsonl", "-q"]
    )
    assert out.exit_code == 1, out.output
    dets = [json.loads(line)["detection"] for line in out.stdout.splitlines() if line.strip()]
    assert dets == ["imds_ssrf_attempt"]
