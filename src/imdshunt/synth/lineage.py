"""Planted lineage: what a thief minted with a stolen instance credential, and look-alikes.

With the admin instance credential of one planted theft (``ec2_outside_aws`` on an instance
whose role is of kind ``admin``), from the thief's address:

* ``sts:AssumeRole`` into the account's ``OrganizationAccountAccessRole``, the admin role
  people also switch into from the internet, with a person's name as session name; the chained
  session is used later from another address;
* ``iam:CreateUser``, ``CreateAccessKey``, ``CreateLoginProfile`` and ``AttachUserPolicy``
  (AdministratorAccess); the new key is used later from another address.

"Later" is a day after, or the last hours of the generated window when it ends sooner.

Look-alikes that must stay quiet: a person switching into the same admin role from home; the
victim instance chaining into another role from its own address with the very key that was
stolen; a CI user whose key a person made, used from hosted runners.

The attack's ground-truth entry gets ``derived`` (each minted credential: ``kind``,
``access_key_id``, ``principal_arn``, ``minting_event_id``, ``minting_event_name``,
``source_ip``, ``first_seen``, ``event_ids``) and ``artifacts`` (the event ids of every
lineage call, which are also among its ``event_ids``: the stolen session made them).
"""

from __future__ import annotations

from typing import Any

from .model import (
    ALNUM_UPPER,
    ATTACKER_IPS,
    CI_RUNNER_IPS,
    CORPORATE_IPS,
    HOME_IPS,
    Org,
    stable_rng,
    stable_token,
)
from .records import UA_ATTACKER, UA_CI, UA_HUMAN, UA_WORKLOAD, Builder, assumed_role_identity, iso

DAY = 86400.0
ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"


def _iam(b: Builder, t: float, ident: dict, name: str, src: str, ua: str, req, resp) -> dict:
    """An IAM write call: the record of a read call of the same identity, renamed, with the
    request and response CloudTrail logs for ``name``."""
    rec = b.call(t, iso(t), ident, "iam:ListUsers", src, ua)
    rec.update(eventName=name, requestParameters=req, responseElements=resp, readOnly=False)
    return rec


def _user_identity(account: str, user: str, key: str, seed: int) -> dict:
    return {
        "type": "IAMUser",
        "principalId": "AIDA" + stable_token(ALNUM_UPPER, 17, seed, "uid", account, user),
        "arn": f"arn:aws:iam::{account}:user/{user}",
        "accountId": account,
        "accessKeyId": key,
        "userName": user,
    }


def _created(t: float) -> str:
    """IAM's createDate as CloudTrail writes it in responseElements."""
    import time

    return time.strftime("%b %-d, %Y, %-I:%M:%S %p", time.gmtime(t))


def plan_lineage(
    org: Org,
    seed: int,
    start: float,
    days: int,
    truth: list[dict],
    planted: dict[tuple[str, str, int], list],
    identities: dict[str, dict],
) -> None:
    """Plant the lineage of the first admin theft in ``truth`` and its look-alikes; see the
    module doc. ``identities`` maps attack id -> the stolen session's ``userIdentity``."""
    theft = next(
        (
            a
            for a in truth
            if a["kind"] == "ec2_outside_aws"
            and org.roles.get((a["account"], a["role"]))
            and org.roles[(a["account"], a["role"])].kind == "admin"
        ),
        None,
    )
    if theft is None:
        return
    acct, region = theft["account"], theft["region"]
    end = start + days * DAY
    rng = stable_rng(seed, "lineage")
    b = Builder(rng, acct, region)
    stolen = identities[theft["id"]]
    thief_ip, thief_ua = theft["source_ip"], theft["user_agent"]
    t_mint = _t(theft["last_seen"]) + 90

    def later(t: float) -> float:
        return min(t + DAY, end - 3 * 3600 + (t % 600))

    def put(t: float, rec: dict, population: str) -> None:
        planted.setdefault((acct, region, int((t - start) // DAY)), []).append((t, rec, population))

    derived: list[dict[str, Any]] = []
    artifacts: list[str] = []

    # 1. a role chain into the admin role people switch into
    admin = org.roles[(acct, "OrganizationAccountAccessRole")]
    person = org.iam_users[1]
    chained_key = "ASIA" + stable_token(ALNUM_UPPER, 16, seed, "lineage", "chain")
    rec = b.assume_role(
        iso(t_mint), stolen, thief_ip, thief_ua, admin.arn, person, chained_key, t_mint,
        role_id=admin.role_id,
    )  # fmt: skip
    put(t_mint, rec, "attack")
    artifacts.append(rec["eventID"])
    chained = assumed_role_identity(
        acct, admin.name, admin.path, admin.role_id, person, chained_key, iso(t_mint)
    )
    t = later(t_mint)
    uses = []
    for act in ("sts:GetCallerIdentity", "iam:ListUsers", "s3:ListBuckets"):
        use = b.call(t, iso(t), chained, act, ATTACKER_IPS[8], UA_ATTACKER[2])
        put(t, use, "attack")
        uses.append((t, use))
        t += rng.randrange(20, 90)
    derived.append(
        {
            "kind": "role-session",
            "access_key_id": chained_key,
            "principal_arn": chained["arn"],
            "role": admin.name,
            "credential_id": person,
            "minting_event_id": rec["eventID"],
            "minting_event_name": "AssumeRole",
            "source_ip": ATTACKER_IPS[8],
            "first_seen": iso(uses[0][0]),
            "event_ids": [u["eventID"] for _, u in uses],
        }
    )

    # 2. a user, its key, a console password and admin rights
    user = "svc-backup-sync"
    user_arn = f"arn:aws:iam::{acct}:user/{user}"
    user_key = "AKIA" + stable_token(ALNUM_UPPER, 16, seed, "lineage", "user-key")
    t = t_mint + 240
    calls = [
        ("CreateUser", {"userName": user}, {"user": {"path": "/", "userName": user,
         "userId": "AIDA" + stable_token(ALNUM_UPPER, 17, seed, "uid", acct, user),
         "arn": user_arn, "createDate": _created(t)}}),
        ("CreateAccessKey", {"userName": user}, {"accessKey": {"userName": user,
         "accessKeyId": user_key, "status": "Active", "createDate": _created(t + 40)}}),
        ("CreateLoginProfile", {"userName": user, "passwordResetRequired": False},
         {"loginProfile": {"userName": user, "createDate": _created(t + 80),
                           "passwordResetRequired": False}}),
        ("AttachUserPolicy", {"userName": user, "policyArn": ADMIN_POLICY}, None),
    ]  # fmt: skip
    key_event = None
    for name, req, resp in calls:
        rec = _iam(b, t, stolen, name, thief_ip, thief_ua, req, resp)
        put(t, rec, "attack")
        artifacts.append(rec["eventID"])
        if name == "CreateAccessKey":
            key_event = rec["eventID"]
        t += 40
    made = _user_identity(acct, user, user_key, seed)
    t = later(t_mint + 400)
    uses = []
    for act in ("s3:ListBuckets", "secretsmanager:ListSecrets"):
        use = b.call(t, iso(t), made, act, ATTACKER_IPS[9], UA_ATTACKER[0])
        put(t, use, "attack")
        uses.append((t, use))
        t += rng.randrange(20, 90)
    derived.append(
        {
            "kind": "access-key",
            "access_key_id": user_key,
            "principal_arn": user_arn,
            "user_name": user,
            "credential_id": user_key,
            "minting_event_id": key_event,
            "minting_event_name": "CreateAccessKey",
            "source_ip": ATTACKER_IPS[9],
            "first_seen": iso(uses[0][0]),
            "event_ids": [u["eventID"] for _, u in uses],
        }
    )
    theft["derived"] = derived
    theft["artifacts"] = artifacts
    # the minting calls are the stolen session's calls too
    theft["event_ids"] = theft["event_ids"] + artifacts
    theft["event_count"] += len(artifacts)
    theft["actions"] = sorted(
        set(theft["actions"]) | {"sts:AssumeRole"} | {f"iam:{name}" for name, _, _ in calls}
    )
    theft["last_seen"] = iso(t_mint + 240 + 40 * (len(calls) - 1))

    # Look-alikes. a) a person switches into the same admin role from home.
    mg = org.management
    human = org.iam_users[2]
    caller = _user_identity(
        mg, human, "AKIA" + stable_token(ALNUM_UPPER, 16, seed, "akia", human), seed
    )
    t = t_mint + 1800
    hkey = "ASIA" + stable_token(ALNUM_UPPER, 16, seed, "lineage", "human")
    rec = b.assume_role(
        iso(t), caller, HOME_IPS[1], UA_HUMAN[0], admin.arn, human, hkey, t, role_id=admin.role_id
    )
    put(t, rec, "role_switch")
    hident = assumed_role_identity(acct, admin.name, admin.path, admin.role_id, human, hkey, iso(t))
    for act in ("iam:ListUsers", "iam:ListRoles"):
        t += 60
        put(t, b.call(t, iso(t), hident, act, HOME_IPS[1], UA_HUMAN[0]), "role_switch")
    # b) the victim instance chains into another role from its own address with the very key
    #    that was stolen (its business, not the thief's).
    own = theft.get("victim_usual_source")
    other = next(
        (r for (a, _), r in sorted(org.roles.items()) if a == acct and r.kind == "data-reader"),
        None,
    )
    if own and other is not None:
        t = t_mint + 600
        okey = "ASIA" + stable_token(ALNUM_UPPER, 16, seed, "lineage", "onbox")
        rec = b.assume_role(
            iso(t), stolen, own, UA_WORKLOAD[0], other.arn, "etl-42", okey, t,
            role_id=other.role_id,
        )  # fmt: skip
        put(t, rec, "ec2_workload")
        oident = assumed_role_identity(
            acct, other.name, other.path, other.role_id, "etl-42", okey, iso(t)
        )
        t += 30
        put(t, b.call(t, iso(t), oident, "s3:ListBuckets", own, UA_WORKLOAD[0]), "ec2_workload")
    # c) a CI user a person made (day 0), its key used from hosted runners.
    sso = next(r for (a, _), r in sorted(org.roles.items()) if a == acct and r.kind == "sso")
    admin_person = org.sso_users[0]
    pident = assumed_role_identity(
        acct, sso.name, sso.path, sso.role_id, admin_person,
        "ASIA" + stable_token(ALNUM_UPPER, 16, seed, "lineage", "sso"), iso(start + 9 * 3600),
    )  # fmt: skip
    ci_user, ci_key = "ci-legacy-deploy", "AKIA" + stable_token(ALNUM_UPPER, 16, seed, "ci-key")
    t = start + 9 * 3600 + 300
    for name, req, resp in (
        ("CreateUser", {"userName": ci_user}, {"user": {"userName": ci_user,
         "arn": f"arn:aws:iam::{acct}:user/{ci_user}", "path": "/"}}),
        ("CreateAccessKey", {"userName": ci_user}, {"accessKey": {"userName": ci_user,
         "accessKeyId": ci_key, "status": "Active"}}),
    ):  # fmt: skip
        put(t, _iam(b, t, pident, name, CORPORATE_IPS[0], UA_HUMAN[0], req, resp), "sso")
        t += 30
    cident = _user_identity(acct, ci_user, ci_key, seed)
    t = t_mint + 3600
    for i in range(3):
        put(
            t,
            b.call(t, iso(t), cident, "s3:ListBuckets", CI_RUNNER_IPS[i], UA_CI),
            "ci_oidc",
        )
        t += 900


def _t(text: str) -> float:
    import calendar
    import time

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
