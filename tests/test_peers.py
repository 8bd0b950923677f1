"""Public test sets written by others (../shared/realdata/peers): every expected result holds.

Each folder there holds inputs and an ``expected.json`` (see its README): runs of the hunt or
ssrf command with extra arguments, and per case whether a finding must appear (``report``),
must not (``no_report``) or is not scored (``either``). Runs go through the library API with the
arguments translated; every folder found is run, so held-back sets of the same kinds work too.
Skipped cleanly where the folder is absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from imdshunt import api

from .conftest import REALDATA

PEERS = REALDATA / "peers"
IP_RANGES = REALDATA / "aws-ip-ranges" / "ip-ranges.json"


def _runs() -> list[tuple[Path, dict]]:
    if not PEERS.is_dir():
        return []
    return [
        (folder, run)
        for folder in sorted(p for p in PEERS.iterdir() if (p / "expected.json").is_file())
        for run in json.loads((folder / "expected.json").read_text())["runs"]
    ]


RUNS = _runs()


@dataclass
class HuntArgs:
    kinds: tuple[str, ...] = ("credential", "web")
    web_log_type: str | None = None
    allowlist: tuple[str, ...] = ()
    ip_ranges: Path = IP_RANGES
    inventory: tuple[Path, ...] = ()
    org_accounts: tuple[str, ...] = ()


def _translate(folder: Path, run: dict) -> HuntArgs:
    """The command line of ``run`` as :func:`imdshunt.api.hunt` arguments."""
    command = run.get("command", "hunt")
    if command not in ("hunt", "ssrf"):
        pytest.fail(f"{folder.name}/{run['run_id']}: command {command!r} is not translated")
    out = HuntArgs(kinds=("web",) if command == "ssrf" else ("credential", "web"))
    args = list(run.get("args", []))
    while args:
        flag = args.pop(0)
        value = args.pop(0) if args else pytest.fail(f"{flag} without a value")
        if flag == "--source":
            out.web_log_type = value
        elif flag == "--allow":
            out.allowlist += (value,)
        elif flag == "--ip-ranges":
            out.ip_ranges = folder / value
        elif flag == "--inventory":
            out.inventory += (folder / value,)
        elif flag == "--org-accounts":
            out.org_accounts += tuple(v for v in value.split(",") if v)
        else:
            pytest.fail(f"{folder.name}/{run['run_id']}: argument {flag!r} is not translated")
    return out


def _urls(finding: dict) -> list[str]:
    urls = [finding.get("request_url") or ""]
    urls += [u["url"] for u in finding.get("request_urls") or () if u.get("url")]
    return urls + [unquote(unquote(u)) for u in urls]


def _matches(finding: dict, match: dict) -> bool:
    """Does ``finding`` answer the case described by ``match`` (expected.json's vocabulary)?"""
    known = {"any", "client_ip", "url_contains", "no_url", "detections", "credential_id"}
    if set(match) - known - {"source_ip"}:
        pytest.fail(f"match keys not understood: {sorted(set(match) - known - {'source_ip'})}")
    if match.get("any"):
        return True
    if "client_ip" in match:
        if finding.get("kind") != "web" or finding.get("client_ip") != match["client_ip"]:
            return False
        if "url_contains" in match and not any(match["url_contains"] in u for u in _urls(finding)):
            return False
        # A request without a URL: a finding about one of this client's URLs is another case's.
        return not (match.get("no_url") and (finding.get("request_url") or "/") != "/")
    if finding.get("kind") != "credential":
        return False
    if match.get("detections") and finding["detection"] not in match["detections"]:
        return False
    return all(
        finding.get(key) == match[key] for key in ("credential_id", "source_ip") if key in match
    )


def _describe(f: dict) -> str:
    keys = ("detection", "severity", "client_ip", "request_url", "credential_id", "source_ip")
    return ", ".join(f"{k}={f[k]!r}" for k in keys if f.get(k) is not None)


@pytest.mark.skipif(not RUNS, reason=f"no peer test sets at {PEERS}")
@pytest.mark.parametrize(
    ("folder", "run"), RUNS, ids=[f"{f.name}/{r['run_id']}" for f, r in RUNS] or None
)
def test_peer_set_gives_its_expected_result(folder: Path, run: dict) -> None:
    args = _translate(folder, run)
    result = api.hunt(
        [folder / p for p in run["paths"]],
        ip_ranges=args.ip_ranges,
        allowlist=args.allowlist,
        fetch_ip_ranges=False,
        workers=1,
        kinds=args.kinds,
        web_log_type=args.web_log_type,
        inventory=args.inventory,
        org_accounts=args.org_accounts,
    )
    findings = result.findings
    missed, false_alarms = [], []
    for case in run["cases"]:
        hits = [f for f in findings if _matches(f, case["match"])]
        if case["expect"] == "report" and not hits:
            missed.append(f"{case['id']}: {case.get('why', '')}")
        elif case["expect"] == "no_report" and hits:
            false_alarms += [f"{case['id']}: {_describe(f)}" for f in hits]
    if run.get("unmatched_findings") == "false_alarm":
        answered = [c for c in run["cases"] if c["expect"] in ("report", "either")]
        false_alarms += [
            f"unexpected: {_describe(f)}"
            for f in findings
            if not any(_matches(f, c["match"]) for c in answered)
        ]
    assert not missed and not false_alarms, (
        f"{len(missed)} missed, {len(false_alarms)} false alarms\n"
        + "\n".join(["missed:", *missed, "false alarms:", *false_alarms])
    )
