"""The one hunt: discover → load → reference tables → classify → detect → merge → correlate →
notes, written once for every mode.

A mode differs only in which files it selects and what it commits afterwards:

* a plain hunt (:func:`imdshunt.api.hunt`) selects every file under its paths, local or
  ``s3://``, into a fresh engine;
* an incremental hunt (:mod:`imdshunt.state`, ``--state``/``watch``) selects the files its state
  has not read and commits what this run read and reported;
* a compiled store (``--store``) is attached as already decoded rows;
* an engine that queries in place (Athena) selects nothing: it is handed the window instead.

:func:`run` is that shared part. It takes an engine (any :class:`~imdshunt.engine.base.Engine`),
the selected files sorted by source, and a :class:`HuntConfig`, and returns a
:class:`HuntResult`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imdshunt.detect import Detection, load_detections
from imdshunt.engine.base import Engine
from imdshunt.enrich.inventory import Inventory, load_inventory, register_inventory
from imdshunt.enrich.ipranges import (
    STALE_AFTER_DAYS,
    AddressClassifier,
    IpRangesInfo,
    load_classifier,
)
from imdshunt.findings import Finding, FindingKind, from_arrow, sort_findings
from imdshunt.lineage import add_lineage, is_lineage_detection
from imdshunt.merge import merge_findings
from imdshunt.sources.discover import RunStats
from imdshunt.sources.inputs import InputFile, Reader
from imdshunt.sources.registry import SOURCES, LoadContext, Progress
from imdshunt.window import EVERYTHING, HuntWindow


@dataclass
class HuntConfig:
    """Everything a hunt is told, beyond its files and engine; parsed once per run."""

    ip_ranges: str | os.PathLike | None = None
    allowlist: Sequence[str] = ()
    fetch_ip_ranges: bool = True
    detections: dict[str, Detection] | None = None
    params: dict[str, dict[str, Any]] | None = None
    kinds: Sequence[str] = ("credential", "web")
    web_log_type: str | None = None
    #: Web target address -> instance id, beyond what inventory and learned egress give.
    instance_by_ip: dict[str, str] | None = None
    chain_window_hours: float = 24
    inventory: Inventory = field(default_factory=Inventory)
    window: HuntWindow = EVERYTHING
    #: How the run goes, not what it finds (left out of an incremental state's config digest).
    workers: int | None = field(default=None, metadata={"changes_findings": False})
    progress: Progress | None = field(default=None, metadata={"changes_findings": False})

    @classmethod
    def make(
        cls,
        *,
        inventory: Iterable[str | os.PathLike] | Inventory = (),
        org_accounts: Iterable[str] = (),
        since: Any = None,
        until: Any = None,
        accounts: Iterable[str] | str | None = None,
        regions: Iterable[str] | str | None = None,
        **kw: Any,
    ) -> HuntConfig:
        """A config from the library's keyword arguments (inventory paths or a loaded
        :class:`Inventory`, org account ids, the window's four values)."""
        if isinstance(inventory, Inventory):
            inv = inventory
            inv.org_accounts.update(load_inventory((), org_accounts).org_accounts)
        else:
            inv = load_inventory(inventory, org_accounts)
        window = kw.pop("window", None) or HuntWindow.make(since, until, accounts, regions)
        return cls(inventory=inv, window=window, **kw)

    def classifier(self) -> tuple[AddressClassifier, list[str]]:
        """The address classifier, and a warning when its ip-ranges copy is old."""
        classifier = load_classifier(self.ip_ranges, self.allowlist, fetch=self.fetch_ip_ranges)
        warnings = []
        age = classifier.info.age_days() if classifier.info else None
        if age is not None and age > STALE_AFTER_DAYS:
            warnings.append(
                f"AWS ip-ranges copy {classifier.info.path} is {int(age)} days old; "
                "run 'imdshunt ip-ranges update' (AWS changes it several times a week)"
            )
        return classifier, warnings


@dataclass
class HuntResult:
    findings: list[Finding]
    stats: RunStats
    naive: dict[str, Any] = field(default_factory=dict)
    ip_ranges: IpRangesInfo | None = None
    warnings: list[str] = field(default_factory=list)
    engine: Engine | None = None
    #: What evidence the run had and lacked (e.g. no inventory: binding rests on learned egress).
    notes: list[str] = field(default_factory=list)
    inventory: Inventory | None = None
    #: The files this run read completely (incremental runs mark these as read).
    files_done: list[InputFile] = field(default_factory=list)


#: Hooks a mode may add around the shared steps (e.g. attaching a compiled store).
Step = Callable[[Engine, RunStats], None]


def run(
    engine: Engine,
    selected: dict[str, list[InputFile]],
    reader: Reader,
    cfg: HuntConfig,
    stats: RunStats,
    *,
    classified: tuple[AddressClassifier, Sequence[str]] | None = None,
    after_load: Step | None = None,
    naive: Callable[[Engine], dict[str, int]] | None = None,
) -> HuntResult:
    """Load the selected files into ``engine`` and hunt everything it then holds.

    ``naive`` replaces :func:`naive_rule` where single calls are not at hand (an incremental
    state hunts from stored call groups). ``classified`` is :meth:`HuntConfig.classifier`'s
    result when the caller made it already (to fail on a bad ip-ranges file before reading)."""
    classifier, warnings = classified if classified is not None else cfg.classifier()
    warnings = list(warnings)
    ctx = LoadContext(
        reader=reader,
        stats=stats,
        workers=cfg.workers,
        web_log_type=cfg.web_log_type,
        progress=cfg.progress,
    )
    kinds = tuple(k for k in cfg.kinds if engine.kinds is None or k in engine.kinds)
    # 1. load: API activity first, so reference tables and address classes are settled before
    # the web sources' first query builds the shared views.
    if engine.queries_in_place:
        engine.prepare(cfg.window)
        for files in selected.values():
            for f in files:
                stats.skip_file(f.uri, f"not read: the {engine.name} engine queries in place")
    else:
        for name, files in selected.items():
            if files and SOURCES[name].table == "api_activity":
                SOURCES[name].load(files, engine, ctx)
    if after_load is not None:
        after_load(engine, stats)
    # 2. reference tables (the binding views read them, empty or not) and 3. address classes
    register_inventory(engine, cfg.inventory)
    classify_addresses(engine, classifier)
    if not engine.queries_in_place:
        for name, files in selected.items():
            if not files or SOURCES[name].table == "api_activity":
                continue
            if FindingKind.WEB in kinds:
                SOURCES[name].load(files, engine, ctx)
            else:
                for f in files:
                    stats.skip_file(f.uri, "web log (not asked for)")
    engine.ensure_views()
    stats.duplicate_records = engine.duplicate_records
    # 4. detect and merge, 5. correlate
    findings = run_detections(engine, cfg.detections, cfg.params, kinds=kinds)
    # 4b. lineage: what the stolen credentials minted, and its use (imdshunt.lineage)
    if FindingKind.CREDENTIAL in kinds:
        findings = add_lineage(
            engine,
            findings,
            cfg.detections if cfg.detections is not None else load_detections(),
            cfg.params,
        )
    findings = sort_findings(
        findings
        + link_chains(
            findings,
            engine,
            {**cfg.inventory.instance_by_ip(), **(cfg.instance_by_ip or {})},
            window_hours=cfg.chain_window_hours,
            workload_by_ip=cfg.inventory.workload_by_ip(),
        )
    )
    # 6. what the run had and lacked
    naive = (naive or naive_rule)(engine)
    notes = evidence_notes(engine, cfg.inventory) if FindingKind.CREDENTIAL in kinds else []
    return HuntResult(
        findings,
        stats,
        naive,
        classifier.info,
        warnings + list(engine.warnings),
        engine,
        notes=notes,
        inventory=cfg.inventory,
        files_done=ctx.done,
    )


def classify_addresses(engine: Engine, classifier: AddressClassifier) -> int:
    """Classify each distinct source address once and register ``ip_class``."""
    engine.ensure_views()
    ips = (
        engine.distinct_values("api_activity", "src_ip")
        if engine.table_exists("api_activity")
        else []
    )
    engine.register_table("ip_class", classifier.classify_table(ips))
    return len(ips)


def naive_rule(engine: Engine) -> dict[str, int]:
    """What "AssumedRole from a non-AWS address" would flag: the noise imdshunt avoids."""
    row = engine.query(
        "SELECT count(*) AS events, count(DISTINCT principal_id) AS sessions "
        "FROM api_activity a JOIN ip_class ip ON ip.src_ip = a.src_ip "
        "WHERE a.actor_type = 'AssumedRole' AND ip.network_kind = 'internet'",
        label="naive rule",
    ).to_pylist()[0]
    return {"events": int(row["events"] or 0), "sessions": int(row["sessions"] or 0)}


def run_detections(
    engine: Engine,
    detections: dict[str, Detection] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    *,
    kinds: Sequence[str] = (FindingKind.CREDENTIAL, FindingKind.WEB),
    merge: bool = True,
) -> list[Finding]:
    """Run every detection of ``kinds`` whose input tables hold data; returns findings.

    With ``merge`` (the default) credential findings about the same credential and source
    address are folded into one (see :mod:`imdshunt.merge`). Lineage detections (``stage:
    lineage``) run after, in :func:`imdshunt.lineage.add_lineage`.
    """
    detections = detections if detections is not None else load_detections()
    params = params or {}
    findings: list[Finding] = []
    engine.ensure_views()
    has = {
        kind: engine.has_rows(table)
        for kind, table in (
            (FindingKind.CREDENTIAL, "api_activity"),
            (FindingKind.WEB, "http_request"),
        )
        if kind in kinds
    }
    for det in detections.values():
        if det.kind not in kinds or not has.get(det.kind, True) or is_lineage_detection(det):
            continue
        if not all(engine.has_rows(t) for t in det.requires):
            continue
        table = engine.run_detection(det, params.get(det.id))
        findings.extend(from_arrow(table, det))
    if merge:
        findings = merge_findings(findings)
    return sort_findings(findings)


def learned_instance_addresses(engine: Engine) -> dict[str, str]:
    """Private addresses that exactly one instance credential was used from (its own calls
    through VPC endpoints): enough to name the instance behind an ALB target address when no
    inventory is given. Addresses shared by several instances are left out."""
    rows = engine.query(
        "SELECT src_ip, min(session_name) AS instance FROM credential_activity "
        "WHERE credential_type = 'ec2-instance' AND network_kind = 'private' "
        "GROUP BY src_ip HAVING count(DISTINCT session_name) = 1",
        label="learned instance addresses",
    ).to_pylist()
    return {r["src_ip"]: r["instance"] for r in rows}


def link_chains(
    findings: list[Finding],
    engine: Engine,
    instance_by_ip: dict[str, str] | None = None,
    *,
    window_hours: float = 24,
    workload_by_ip: dict[str, set[str]] | None = None,
) -> list[Finding]:
    """Name each SSRF target's instance and link attempts to later thefts (``imds_theft_chain``)
    of the target instance's, task's or pod's credential."""
    from imdshunt.correlate import (
        WORKLOAD_CREDENTIALS,
        correlate_chains,
        learned_workload_addresses,
    )

    web = [f for f in findings if f.kind is FindingKind.WEB]
    cred = [
        f
        for f in findings
        if f.kind is FindingKind.CREDENTIAL
        and f.credential_type in {"ec2-instance", *WORKLOAD_CREDENTIALS}
    ]
    if not web:
        return []
    has_calls = engine.has_rows("api_activity")
    mapping = learned_instance_addresses(engine) if has_calls else {}
    mapping.update(instance_by_ip or {})
    for f in web:
        if not f.target_instance and f.target_ip:
            f.target_instance = mapping.get(f.target_ip)
    if not cred:
        return []
    # Tasks and pods: learned from their own endpoint calls, then the inventory's.
    workloads = learned_workload_addresses(engine) if has_calls else {}
    for ip, keys in (workload_by_ip or {}).items():
        workloads.setdefault(ip, set()).update(keys)
    return correlate_chains(
        web, cred, mapping, workload_by_ip=workloads, window=dt.timedelta(hours=window_hours)
    )


def evidence_notes(engine: Engine, inventory: Inventory | None = None) -> list[str]:
    """Say which evidence the binding detections had, and what they lacked.

    Detections that need inventory still run without it, on learned egress, and mark their
    findings ``confidence: medium``; these notes make the gap visible in the run summary.
    """
    notes = []
    if inventory is not None and not inventory.empty:
        notes.append(inventory.summary())
    notes += _workload_evidence_notes(engine)
    if not engine.has_rows("ec2_credential_call"):
        return notes
    if not engine.has_rows("inventory_address"):
        notes.append(
            "no instance inventory: other-account and cross-instance findings rest on learned "
            "egress (each instance's first address; confidence medium), and a theft whose first "
            "use from AWS space was the attacker's is invisible to them; give --inventory"
        )
    else:
        uncovered = (
            engine.query(
                "SELECT DISTINCT account_id FROM ec2_credential_call WHERE account_id NOT IN "
                "(SELECT account_id FROM inventory_address WHERE account_id IS NOT NULL) "
                "ORDER BY 1",
                label="inventory coverage",
            )
            .column(0)
            .to_pylist()
        )
        if uncovered:
            notes.append(
                "inventory covers no instance of account(s) "
                + ", ".join(uncovered)
                + ": their findings rest on learned egress (confidence medium)"
            )
    if not engine.has_rows("org_account"):
        notes.append(
            "no org account list: VPC endpoint owners are judged against the accounts in these "
            "logs and the inventory (confidence medium); give --org-accounts or an Organizations "
            "list-accounts file"
        )
    return notes


def _workload_evidence_notes(engine: Engine) -> list[str]:
    """What the container and function binding lacked (see docs/binding.md)."""
    if not engine.has_rows("workload_credential_call"):
        return []
    uncovered = (
        engine.query(
            "SELECT DISTINCT account_id FROM workload_credential_call "
            "WHERE credential_type <> 'lambda' AND account_id NOT IN (SELECT account_id "
            "FROM inventory_address WHERE kind = 'eni' AND account_id IS NOT NULL) ORDER BY 1",
            label="workload inventory coverage",
        )
        .column(0)
        .to_pylist()
    )
    notes = []
    if uncovered:
        notes.append(
            "no describe-network-interfaces for account(s) "
            + ", ".join(uncovered)
            + ": task and pod other-account findings there rest on learned egress (each "
            "session's first address; confidence medium)"
        )
    if not engine.has_rows("inventory_workload"):
        notes.append(
            "no task, pod or function inventory (ecs describe-tasks, kubectl get pods, lambda "
            "list-functions): Lambda functions are not judged by address, and the VPC check of "
            "workload_credential_foreign_vpc_endpoint does not apply"
        )
    return notes
