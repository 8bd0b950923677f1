"""Containment reaches what the thief minted: chained sessions, keys, users, login profiles,
policies and trust changes (the finding's ``artifacts``), on a moto server over real HTTP."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from imdshunt.respond import apply_plan, build_plan, target_from_finding
from imdshunt.respond.plan import IN_PLACE, MANUAL, PENDING, UNCHANGED
from imdshunt.respond.policies import session_policy_name
from tests.respond_world import make_world

pytestmark = pytest.mark.moto

NO_MARGIN = timedelta(0)
EC2_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
THIEF_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


def _art(kind: str, event: str, **kw) -> dict:
    return {
        "type": kind,
        "event_name": event,
        "event_id": str(uuid.uuid4()),
        "time": "2026-11-27T10:05:00Z",
        "source_ip": "203.0.113.50",
        "depth": 1,
        **kw,
    }


@pytest.fixture()
def thief(aws_env):
    """A world where the stolen session chained into an admin role, made a user with a key,
    console password, admin policy and group, made a key for an existing CI user, put an
    inline policy on the admin role, and let another account into a role's trust."""
    world = make_world()
    iam = world.iam()
    sfx = uuid.uuid4().hex[:6]
    admin_role, backdoor, ci, made = f"OrgAdmin-{sfx}", f"runner-{sfx}", f"ci-{sfx}", f"bk-{sfx}"
    group = f"admins-{sfx}"
    iam.create_role(RoleName=admin_role, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.create_role(RoleName=backdoor, AssumeRolePolicyDocument=json.dumps(EC2_TRUST))
    iam.create_user(UserName=ci)
    ci_own_key = iam.create_access_key(UserName=ci)["AccessKey"]["AccessKeyId"]
    iam.create_group(GroupName=group)
    # moto's server loads no AWS managed policy: an admin policy of the account's own
    policy = iam.create_policy(
        PolicyName=f"admin-{sfx}",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )["Policy"]["Arn"]
    # what the thief did
    iam.create_user(UserName=made)
    made_key = iam.create_access_key(UserName=made)["AccessKey"]["AccessKeyId"]
    iam.create_login_profile(UserName=made, Password="Thief-Passw0rd!")
    iam.attach_user_policy(UserName=made, PolicyArn=policy)
    iam.add_user_to_group(UserName=made, GroupName=group)
    ci_thief_key = iam.create_access_key(UserName=ci)["AccessKey"]["AccessKeyId"]
    iam.add_user_to_group(UserName=ci, GroupName=group)
    iam.put_role_policy(
        RoleName=admin_role,
        PolicyName="ops",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    iam.update_assume_role_policy(RoleName=backdoor, PolicyDocument=json.dumps(THIEF_TRUST))
    arts = [
        _art("role-session", "AssumeRole", role_name=admin_role, session_name="jdoe",
             access_key_id="ASIA5FLZVX4OCHAINED1"),
        _art("user", "CreateUser", user_name=made),
        _art("access-key", "CreateAccessKey", user_name=made, access_key_id=made_key),
        _art("login-profile", "CreateLoginProfile", user_name=made),
        _art("user-policy", "AttachUserPolicy", user_name=made, policy_arn=policy),
        _art("group-membership", "AddUserToGroup", user_name=made, group_name=group),
        _art("access-key", "CreateAccessKey", user_name=ci, access_key_id=ci_thief_key, depth=2),
        _art("group-membership", "AddUserToGroup", user_name=ci, group_name=group, depth=2),
        _art("role-policy", "PutRolePolicy", role_name=admin_role, policy_name="ops"),
        _art("trust-policy", "UpdateAssumeRolePolicy", role_name=backdoor,
             trust_policy_before=json.dumps(EC2_TRUST), trust_policy_after=json.dumps(THIEF_TRUST)),
    ]  # fmt: skip
    finding = world.finding(world.victim, artifacts=arts)
    return {
        "world": world,
        "finding": finding,
        "admin_role": admin_role,
        "backdoor": backdoor,
        "ci": ci,
        "ci_own_key": ci_own_key,
        "ci_thief_key": ci_thief_key,
        "made": made,
        "made_key": made_key,
        "group": group,
    }


def _plan(t, finding=None):
    world = t["world"]
    return build_plan(world.session, target_from_finding(finding or t["finding"]), margin=NO_MARGIN)


def test_the_plan_names_every_derived_credential_and_artifact_in_a_safe_order(thief):
    plan = _plan(thief)
    text = plan.render()
    for name in (thief["made_key"], thief["ci_thief_key"], thief["made"], thief["backdoor"]):
        assert name in text
    actions = [s.action for s in plan.steps]
    # cut access first (the stolen session, the chained one, keys, console, trust) ...
    first_cleanup = actions.index("detach-policy")
    for cut in ("deactivate-key", "delete-login-profile", "restore-trust"):
        assert actions.index(cut) < first_cleanup
    assert actions[:2] == ["revoke", "revoke"]
    # ... then clean up; the thief's user last, once its keys and profile are gone
    assert actions.index("deactivate-key") < actions.index("delete-key")
    assert actions.index("delete-principal") > max(
        i for i, a in enumerate(actions) if a in ("delete-key", "detach-policy")
    )
    chained = plan.steps[1]
    assert chained.calls[0].params["PolicyName"] == session_policy_name("jdoe")
    assert chained.calls[0].params["RoleName"] == thief["admin_role"]
    (trust,) = [s for s in plan.steps if s.action == "restore-trust"]
    assert '-        "AWS": "arn:aws:iam::999988887777:root"' in trust.explanation
    assert '+        "Service": "ec2.amazonaws.com"' in trust.explanation
    assert all(s.status in (PENDING, MANUAL) for s in plan.steps)


def test_apply_removes_what_the_thief_made_and_a_second_apply_changes_nothing(thief, tmp_path):
    world, iam = thief["world"], thief["world"].iam()
    report = apply_plan(_plan(thief), world.session, tmp_path / "audit.jsonl")
    assert report.ok and report.changed
    users = {u["UserName"] for u in iam.list_users()["Users"]}
    assert thief["made"] not in users and thief["ci"] in users
    ci_keys = {
        k["AccessKeyId"] for k in iam.list_access_keys(UserName=thief["ci"])["AccessKeyMetadata"]
    }
    assert ci_keys == {thief["ci_own_key"]}
    groups = iam.list_groups_for_user(UserName=thief["ci"])["Groups"]
    assert groups == []
    assert iam.list_role_policies(RoleName=thief["admin_role"])["PolicyNames"] == [
        session_policy_name("jdoe")
    ]
    trust = iam.get_role(RoleName=thief["backdoor"])["Role"]["AssumeRolePolicyDocument"]
    assert (json.loads(trust) if isinstance(trust, str) else trust) == EC2_TRUST

    again = _plan(thief)
    assert not again.pending, [(s.title, s.status) for s in again.pending]
    second = apply_plan(again, world.session, tmp_path / "audit.jsonl")
    assert not second.changed
    assert {r.result for r in second.results} <= {UNCHANGED, "printed", "skipped"}


def test_respond_to_a_derived_key_finding_contains_that_key(thief, tmp_path):
    derived = {
        "detection": "derived_credential_use",
        "severity": "high",
        "account_id": "123456789012",
        "role": None,
        "credential_type": "iam-user-key",
        "credential_id": thief["ci_thief_key"],
        "derived_kind": "access-key",
        "derived_access_key_id": thief["ci_thief_key"],
        "derived_user_name": thief["ci"],
        "minting_event_name": "CreateAccessKey",
        "minting_event_id": str(uuid.uuid4()),
        "minting_time": "2026-11-27T10:06:00Z",
        "access_key_ids": [thief["ci_thief_key"]],
        "first_seen": "2026-11-28T10:00:00Z",
        "last_seen": "2026-11-28T10:30:00Z",
    }
    plan = _plan(thief, derived)
    assert [s.action for s in plan.steps] == ["deactivate-key", "delete-key"]
    assert f"iam-user-key {thief['ci_thief_key']}" in plan.render()
    apply_plan(plan, thief["world"].session, tmp_path / "audit.jsonl")
    iam = thief["world"].iam()
    keys = {
        k["AccessKeyId"] for k in iam.list_access_keys(UserName=thief["ci"])["AccessKeyMetadata"]
    }
    assert keys == {thief["ci_own_key"]}
    assert all(s.status == IN_PLACE for s in _plan(thief, derived).steps)


def test_an_unknown_earlier_trust_policy_is_left_to_a_human_with_the_thiefs_document(thief):
    finding = dict(thief["finding"])
    finding["artifacts"] = [
        dict(a, trust_policy_before=None) if a["type"] == "trust-policy" else a
        for a in finding["artifacts"]
        if a["type"] == "trust-policy"
    ]
    plan = _plan(thief, finding)
    (manual,) = [s for s in plan.steps if "trust policy" in s.title]
    assert manual.status == MANUAL and "999988887777" in manual.effect
