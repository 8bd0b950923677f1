"""The core hunt on real, public CloudTrail (../shared/realdata; skipped when absent)."""

from __future__ import annotations

from imdshunt import api


def _hunt(realdata, *parts, ranges="ip-ranges.json"):
    return api.hunt(
        [realdata.joinpath(*parts)],
        ip_ranges=realdata / "aws-ip-ranges" / ranges,
        workers=1,
        fetch_ip_ranges=False,
    )


def test_otrf_reverse_proxy_ssrf_theft_is_reported_with_its_pivot_data(realdata):
    result = _hunt(
        realdata, "otrf-ec2-proxy-s3-exfiltration", ranges="ip-ranges-2020-09-14-15-41-17.json"
    )
    outside = [
        f for f in result.findings if f["detection"] == "ec2_instance_credential_outside_aws"
    ]
    assert len(outside) == 1
    f = outside[0]
    assert f["credential_id"] == "i-0317f6c6b66ae9c40"
    assert f["source_ip"] == "1.2.3.4"
    assert f["access_key_ids"] == ["ASIA5FLZVX4OPVKKVBMX"]
    assert f["actions"] == ["s3:GetObject", "s3:ListBuckets", "s3:ListObjects"]
    assert f["event_count"] == 11  # the ground truth's 11 attacker events
    assert f["first_seen"] == "2020-09-14T01:00:04Z" and f["last_seen"] == "2020-09-14T01:13:20Z"
    assert f["key_issued_at"] == "2020-09-14T00:48:30Z"
    assert f["account_id"] == "123456789123"
    assert result.stats.records_read == 103


def test_otrf_benign_console_user_from_the_same_address_is_not_reported(realdata):
    result = _hunt(
        realdata, "otrf-ec2-proxy-s3-exfiltration", ranges="ip-ranges-2020-09-14-15-41-17.json"
    )
    assert all(f["credential_id"] == "i-0317f6c6b66ae9c40" for f in result.findings)
    # user/pedro shares 1.2.3.4 but is an IAM user, not an instance credential
    assert result.naive["events"] == 11


def test_stratus_steal_instance_credentials_is_not_outside_aws(realdata):
    """Stratus' anonymiser moved the attacker's address into AWS space (18.236.0.0/15, EC2
    us-west-2), so 'outside AWS' must stay silent; the binding detections (other account,
    cross instance) are what can catch it."""
    result = _hunt(
        realdata,
        "stratus-red-team-detonation-logs",
        "aws.credential-access.ec2-steal-instance-credentials.json",
    )
    assert [
        f for f in result.findings if f["detection"] == "ec2_instance_credential_outside_aws"
    ] == []
    assert result.stats.records_read == 45


def test_flaws2_has_no_ec2_instance_credential_findings(realdata):
    result = _hunt(
        realdata, "flaws2-defender-cloudtrail", ranges="ip-ranges-2018-11-27-02-33-25.json"
    )
    assert not [f for f in result.findings if f.get("credential_type") == "ec2-instance"]
    assert result.stats.records_read == 37
    assert [s.reason for s in result.stats.files_skipped] == ["JSON that is not CloudTrail"]


def test_all_cloudtrail_samples_parse_without_loss(realdata):
    result = _hunt(realdata, "cloudtrail-samples")
    assert result.stats.records_read == 42
    assert sum(result.stats.records_skipped.values()) == 0
