"""The ground truth of a synthetic organisation, as written to ``ground_truth.json``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = "imdshunt-synth-ground-truth/1"


@dataclass
class GroundTruth:
    """What the generator planted, so tests and benchmarks can check a hunt's answers.

    ``attacks`` items: ``id``, ``kind`` (e.g. ``ec2_outside_aws``), ``detection``,
    ``credential_type``, ``account``, ``region``, ``role``, ``role_arn``, ``credential_id``
    (session name), ``source_ip``, ``network`` (``internet``, ``aws:EC2:<region>``,
    ``private``), ``vpc_endpoint_id`` (of the first call), ``vpc_endpoint_ids`` (one per
    service when calls went through the org's own interface endpoints),
    ``vpc_endpoint_account_id``, ``access_keys``,
    ``key_issued_at``, ``first_seen``, ``last_seen``, ``actions`` (``service:Action``),
    ``user_agent``, ``event_ids``, and kind-specific context (``instance_id``,
    ``source_instance_id``, ``cluster`` ...).

    ``ssrf`` holds ``attempts`` (each with ``time``, ``client_ip``, ``target_ip``,
    ``target_instance``, ``encoding``, ``endpoint``, ``request_url``, ``status``, ``file``,
    ``line``, ``chain_attack_id``; ``target_task`` when the target is an ECS task),
    ``decoys`` (same keys, never findings) and ``chains`` (``instance_id`` or ``task_id``).
    """

    format: str
    seed: int
    start: str
    end: str
    days: int
    records_requested: int
    events_unique: int
    records_delivered: int
    org_id: str
    management_account: str
    accounts: list[dict]
    regions: list[str]
    files: dict[str, int]
    populations: dict[str, int]
    naive_rule: dict
    duplicates: list[dict]
    imdsv1_instances: list[dict]
    imds_optional_without_v1_use: list[dict]
    attacks: list[dict]
    ssrf: dict
    paths: dict[str, str]
    workload_addresses: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: size, populations and what was planted."""
        kinds: dict[str, int] = {}
        for a in self.attacks:
            kinds[a["kind"]] = kinds.get(a["kind"], 0) + 1
        planted = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        return (
            f"{len(self.accounts)} accounts, {self.events_unique} CloudTrail events over "
            f"{self.days} days; planted: {planted}; "
            f"{len(self.ssrf.get('attempts', []))} SSRF attempts and "
            f"{len(self.ssrf.get('decoys', []))} decoys in ALB logs; the naive rule flags "
            f"{self.naive_rule.get('count')} events"
        )

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)

    def write(self, path: str | Path) -> None:
        """Write as indented JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        """Read a ``ground_truth.json`` written by :meth:`write`."""
        return cls(**json.loads(Path(path).read_text()))
