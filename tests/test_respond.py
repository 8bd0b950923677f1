"""Containment plans against a moto server over real HTTP: one role, three instances."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from imdshunt.errors import AwsActionError
from imdshunt.respond import (
    REISSUED_TAG,
    Clock,
    PlanFailed,
    ServiceLinkedRoleError,
    apply_plan,
    build_plan,
    target_from_finding,
)
from imdshunt.respond.plan import APPLIED, FAILED, IN_PLACE, NOT_RUN, PENDING, UNCHANGED
from imdshunt.respond.policies import ROLE_WIDE_POLICY_NAME, iso_z, session_policy_name
from tests.respond_world import denied_by, make_world

pytestmark = pytest.mark.moto

NO_MARGIN = timedelta(0)


@pytest.fixture()
def world(aws_env):
    return make_world()


def _plan(world, **kw):
    finding = world.finding(world.victim)
    others = [world.finding(i) for i in world.others]
    target = target_from_finding(finding, [finding, *others])
    return build_plan(world.session, target, margin=NO_MARGIN, **kw)


def _inline_policies(world) -> list[str]:
    return world.iam().list_role_policies(RoleName=world.role_name)["PolicyNames"]


def test_plan_without_apply_changes_nothing(world):
    plan = _plan(world)

    text = plan.render()

    assert [s.status for s in plan.steps[:3]] == [PENDING, PENDING, PENDING]
    assert "iam:PutRolePolicy" in text and "ec2:ModifyInstanceMetadataOptions" in text
    assert "blast radius" in text and "undo" in text
    assert _inline_policies(world) == []
    assert world.metadata_options(world.victim)["HttpTokens"] == "optional"


def test_surgical_revoke_denies_the_stolen_session_only(world, tmp_path):
    plan = _plan(world)
    apply_plan(plan, world.session, tmp_path / "audit.jsonl")

    name = session_policy_name(world.victim)
    assert _inline_policies(world) == [name]
    doc = world.iam().get_role_policy(RoleName=world.role_name, PolicyName=name)["PolicyDocument"]
    (statement,) = doc["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "*"
    assert statement["Resource"] == "*"
    cond = statement["Condition"]
    assert cond["StringEquals"] == {"aws:userId": f"{world.role_id}:{world.victim}"}
    assert cond["DateLessThan"] == {"aws:TokenIssueTime": iso_z(plan.cutoff)}

    before = iso_z(plan.cutoff - timedelta(hours=1))
    after = iso_z(plan.cutoff + timedelta(minutes=5))
    stolen = {"aws:userId": f"{world.role_id}:{world.victim}", "aws:TokenIssueTime": before}
    assert denied_by(doc, stolen)
    assert not denied_by(doc, {**stolen, "aws:TokenIssueTime": after}), "fresh creds work"
    for other in world.others:
        assert not denied_by(doc, {**stolen, "aws:userId": f"{world.role_id}:{other}"})


def test_respond_replaces_the_victims_profile_and_enforces_imdsv2_on_it_only(world, tmp_path):
    audit = tmp_path / "audit.jsonl"
    report = apply_plan(_plan(world), world.session, audit)

    assert [r.result for r in report.results[:3]] == [APPLIED, APPLIED, APPLIED]
    calls = [
        c["call"] for line in audit.read_text().splitlines() for c in json.loads(line)["calls"]
    ]
    assert "ec2:ReplaceIamInstanceProfileAssociation" in calls
    assert world.association(world.victim)["IamInstanceProfile"]["Arn"] == world.profile_arn
    assert REISSUED_TAG in world.tags(world.victim)
    opts = world.metadata_options(world.victim)
    assert (opts["HttpTokens"], opts["HttpPutResponseHopLimit"], opts["HttpEndpoint"]) == (
        "required",
        1,
        "enabled",
    )
    for other in world.others:
        assert world.metadata_options(other)["HttpTokens"] == "optional"
        assert REISSUED_TAG not in world.tags(other)


def test_replacement_profile_is_associated_with_the_victim_only(world, tmp_path):
    iam = world.iam()
    spare = iam.create_instance_profile(InstanceProfileName=world.role_name + "-fresh")
    iam.add_role_to_instance_profile(
        InstanceProfileName=world.role_name + "-fresh", RoleName=world.role_name
    )
    spare_arn = spare["InstanceProfile"]["Arn"]

    apply_plan(_plan(world, replacement_profile_arn=spare_arn), world.session, tmp_path / "a")

    assert world.association(world.victim)["IamInstanceProfile"]["Arn"] == spare_arn
    for other in world.others:
        assert world.association(other)["IamInstanceProfile"]["Arn"] == world.profile_arn


def test_second_apply_changes_nothing_and_says_so(world, tmp_path):
    first = _plan(world)
    apply_plan(first, world.session, tmp_path / "audit.jsonl")

    second = _plan(world)
    report = apply_plan(second, world.session, tmp_path / "audit.jsonl")

    assert [s.status for s in second.steps[:3]] == [IN_PLACE, IN_PLACE, IN_PLACE]
    assert second.cutoff == first.cutoff, "the existing revoke cut-off is kept"
    assert "Nothing to apply" in second.render()
    assert [r.result for r in report.results[:3]] == [UNCHANGED, UNCHANGED, UNCHANGED]
    assert not report.changed
    assert "Nothing changed" in report.render()


def test_a_later_theft_than_the_existing_cutoff_gets_a_new_revoke(world, tmp_path):
    apply_plan(_plan(world), world.session, tmp_path / "audit.jsonl")
    later = world.finding(world.victim, last_seen="2099-01-01T00:00:00Z")

    plan = build_plan(world.session, target_from_finding(later), margin=NO_MARGIN)

    assert plan.steps[0].status == PENDING


def test_role_wide_writes_aws_revoke_older_sessions_and_names_the_other_instances(world, tmp_path):
    plan = _plan(world, role_wide=True)

    warning = " ".join(plan.warnings)
    for other in world.others:
        assert other in warning
    apply_plan(plan, world.session, tmp_path / "audit.jsonl")
    doc = world.iam().get_role_policy(RoleName=world.role_name, PolicyName=ROLE_WIDE_POLICY_NAME)[
        "PolicyDocument"
    ]
    (statement,) = doc["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": iso_z(plan.cutoff)}}
    assert "StringEquals" not in statement["Condition"]
    issued_before = iso_z(plan.cutoff - timedelta(minutes=1))
    for session in world.instances:
        ctx = {"aws:userId": f"{world.role_id}:{session}", "aws:TokenIssueTime": issued_before}
        assert denied_by(doc, ctx)


def test_other_instances_are_found_from_inventory_when_no_finding_names_them(world):
    target = target_from_finding(world.finding(world.victim))

    plan = build_plan(world.session, target, role_wide=True, margin=NO_MARGIN)

    assert all(other in " ".join(plan.warnings) for other in world.others)


def test_service_linked_role_is_refused(aws_env):
    world = make_world()
    iam = world.iam()
    name = "AWSServiceRoleForImdshuntTest" + world.role_name[-8:]
    iam.create_role(
        RoleName=name, Path="/aws-service-role/test.amazonaws.com/", AssumeRolePolicyDocument="{}"
    )
    finding = world.finding(world.victim, role=name)

    with pytest.raises(ServiceLinkedRoleError, match="service-linked"):
        build_plan(world.session, target_from_finding(finding), margin=NO_MARGIN)
    assert isinstance(ServiceLinkedRoleError("x"), AwsActionError)


def test_the_instance_identity_role_is_refused_with_what_to_contain_instead(world):
    """aws:ec2-instance findings are reported, but AWS manages that role: no policy applies."""
    finding = world.finding(world.victim, role="aws:ec2-instance")

    with pytest.raises(ServiceLinkedRoleError, match="instance identity role.*IMDSv2"):
        build_plan(world.session, target_from_finding(finding), margin=NO_MARGIN)


def test_apply_appends_one_audit_line_per_step_with_who_when_calls_result(world, tmp_path):
    audit = tmp_path / "audit.jsonl"
    plan = _plan(world)

    apply_plan(plan, world.session, audit)

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert len(records) == len(plan.steps)
    first = records[0]
    assert first["who"]["arn"].startswith("arn:aws:")
    assert first["who"]["account"] == "123456789012"
    assert first["time"].endswith("Z")
    assert first["result"] == APPLIED
    assert first["calls"][0]["call"] == "iam:PutRolePolicy"
    assert first["calls"][0]["params"]["PolicyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert {r["plan_id"] for r in records} == {plan.plan_id}
    assert records[-1]["result"] == "printed"


def test_a_failing_step_stops_the_plan_and_reports_what_was_done(world, tmp_path):
    audit = tmp_path / "audit.jsonl"
    plan = _plan(world)
    # The victim loses its profile between planning and applying: step 2 cannot replace it.
    ec2 = world.ec2()
    ec2.disassociate_iam_instance_profile(
        AssociationId=world.association(world.victim)["AssociationId"]
    )

    with pytest.raises(PlanFailed) as err:
        apply_plan(plan, world.session, audit)

    report = err.value.report
    assert [r.result for r in report.results[:3]] == [APPLIED, FAILED, NOT_RUN]
    assert "no instance-profile association" in report.results[1].error
    assert "STOPPED" in report.render() and "Changed: 1" in report.render()
    assert world.metadata_options(world.victim)["HttpTokens"] == "optional", "step 3 not run"
    results = [json.loads(line)["result"] for line in audit.read_text().splitlines()]
    assert results[:3] == [APPLIED, FAILED, NOT_RUN]


def test_pin_policy_allows_the_networks_egress_and_is_explained(world, tmp_path):
    ec2 = world.ec2()
    inst = ec2.describe_instances(InstanceIds=[world.victim])["Reservations"][0]["Instances"][0]
    alloc = ec2.allocate_address(Domain="vpc")
    nat = ec2.create_nat_gateway(SubnetId=inst["SubnetId"], AllocationId=alloc["AllocationId"])
    nat_ip = nat["NatGateway"]["NatGatewayAddresses"][0]["PublicIp"]

    plan = _plan(world, pin=True, egress_addresses=["198.51.100.7"])
    (pin,) = [s for s in plan.steps if s.action == "pin"]

    assert pin.status == PENDING
    assert "aws:Ec2InstanceSourceVpc" in pin.explanation and nat_ip in pin.explanation
    (egress,) = [s for s in pin.document["Statement"] if "NotIpAddress" in s["Condition"]]
    ips = egress["Condition"]["NotIpAddress"]["aws:SourceIp"]
    assert f"{nat_ip}/32" in ips and "198.51.100.7/32" in ips
    if inst.get("PublicIpAddress"):
        assert f"{inst['PublicIpAddress']}/32" in ips
    apply_plan(plan, world.session, tmp_path / "audit.jsonl")
    assert "imdshunt-pin-instance-credentials" in _inline_policies(world)


class FakeClock(Clock):
    """A clock that jumps forward when slept on."""

    def __init__(self, start):
        self.t = start
        self.slept = 0.0

    def now(self):
        return self.t

    def sleep(self, seconds):
        self.slept += seconds
        self.t += timedelta(seconds=seconds)


def test_profile_is_replaced_only_after_the_cutoff_has_passed(world, tmp_path):
    clock = FakeClock(datetime.now(UTC))
    target = target_from_finding(world.finding(world.victim))
    plan = build_plan(world.session, target, margin=timedelta(seconds=90), clock=clock)
    assert plan.cutoff > clock.now()
    messages = []

    apply_plan(plan, world.session, tmp_path / "audit.jsonl", clock=clock, progress=messages.append)

    assert clock.now() > plan.cutoff and clock.slept >= 89
    assert any("waiting for the cut-off" in m for m in messages)


def test_a_console_written_revoke_policy_that_covers_the_theft_is_kept(world, tmp_path):
    console_doc = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-11-27T12:00:00Z"}},
        },
    }
    world.iam().put_role_policy(
        RoleName=world.role_name,
        PolicyName=ROLE_WIDE_POLICY_NAME,
        PolicyDocument=json.dumps(console_doc),
    )

    plan = _plan(world, role_wide=True)
    report = apply_plan(plan, world.session, tmp_path / "audit.jsonl")

    assert plan.steps[0].status == IN_PLACE
    assert report.results[0].result == UNCHANGED
    assert iso_z(plan.cutoff) == "2026-11-27T12:00:00Z"
