"""Application Load Balancer access logs with metadata-service SSRF attempts and decoys.

Field order follows AWS's documentation ("Access log entries", Elastic Load Balancing user
guide): 29 fields up to ``classification_reason`` plus the newer ``conn_trace_id`` (30 in all).
Files use the S3 layout ``AWSLogs/<acct>/elasticloadbalancing/<region>/YYYY/MM/DD/
<acct>_elasticloadbalancing_<region>_app.<lb>.<id>_<YYYYMMDDTHHMMZ>_<lb ip>_<random>.log.gz``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from isal import igzip

from .model import ALNUM_LOWER, ATTACKER_IPS, Org, stable_rng
from .records import uuid4

ALB_FIELDS = 30
DAY = 86_400

BENIGN_PATHS = [
    "/",
    "/products/1842",
    "/products/77",
    "/cart",
    "/api/search?q=running+shoes",
    "/static/app.3f9c1a.js",
    "/static/styles.css",
    "/login",
    "/api/orders/88121",
    "/account/settings",
    "/api/recommendations?limit=12",
    "/favicon.ico",
    "/checkout",
    "/api/cart/items?sku=SKU-2209&qty=2",
    "/images/banner-1200.webp",
]
BENIGN_UA = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "ELB-HealthChecker/2.0",
]
SSRF_UA = [
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Go-http-client/1.1",
    "nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
]
CREDS = "/latest/meta-data/iam/security-credentials/"
#: (encoding, endpoint, path-and-query or absolute request URL)
ATTEMPTS = [
    ("plain", "ec2-imds-ipv4", f"/fetch?url=http://169.254.169.254{CREDS}"),
    ("integer", "ec2-imds-ipv4", f"/fetch?url=http://2852039166{CREDS}"),
    ("hex", "ec2-imds-ipv4", "/proxy?target=http://0xa9fea9fe/latest/meta-data/"),
    ("octal", "ec2-imds-ipv4", f"/fetch?url=http://0251.0376.0251.0376{CREDS}"),
    ("short_three_part", "ec2-imds-ipv4", "/fetch?url=http://169.254.43518/latest/meta-data/"),
    ("short_two_part", "ec2-imds-ipv4", "/fetch?url=http://169.16689662/latest/meta-data/"),
    (
        "mixed_hex_octal_short",
        "ec2-imds-ipv4",
        "/preview?u=http://0xa9.0376.43518/latest/meta-data/",
    ),
    ("ipv4_mapped_ipv6", "ec2-imds-ipv4", f"/fetch?url=http://[::ffff:169.254.169.254]{CREDS}"),
    ("ipv6", "ec2-imds-ipv6", f"/fetch?url=http://[fd00:ec2::254]{CREDS}"),
    (
        "percent_encoded",
        "ec2-imds-ipv4",
        "/fetch?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fapi%2Ftoken",
    ),
    (
        "double_percent_encoded",
        "ec2-imds-ipv4",
        "/fetch?url=http%253A%252F%252F169.254.169.254%252Flatest%252Fmeta-data%252Fiam"
        "%252Fsecurity-credentials%252F",
    ),
    ("dns_name", "ec2-imds-ipv4", f"/fetch?url=http://instance-data{CREDS}"),
    ("dns_name", "ec2-imds-ipv4", "/fetch?url=http://instance-data.ec2.internal/latest/meta-data/"),
    ("nip_io", "ec2-imds-ipv4", f"/fetch?url=http://169.254.169.254.nip.io{CREDS}"),
    (
        "ecs_credentials",
        "ecs-credentials",
        "/fetch?url=http://169.254.170.2/v2/credentials/5c1a9f6e-3b2d-4e8f-a1c7-9d0e2f4b6a81",
    ),
    ("eks_pod_identity", "eks-pod-identity", "/fetch?url=http://169.254.170.23/v1/credentials"),
    ("host_header", "ec2-imds-ipv4", f"http://169.254.169.254:80{CREDS}"),
]
#: Attempts that precede the theft of the target's credentials (relative hours, encoding idx).
CHAIN_ATTEMPTS = [(-3.0, 0), (-2.9, 1), (-2.8, 10), (-27.0, 0)]
DECOYS = [
    ("decimal_query_value", "/orders?order=2852039166"),
    ("near_miss_address", "/fetch?url=http://169.254.169.25/latest/"),
    ("hyphenated_slug", "/blog/169-254-169-254-explained"),
]


@dataclass(frozen=True)
class TaskTarget:
    """An ECS task in awsvpc mode behind the load balancer (an ``ip`` target group): the ALB
    logs its private address."""

    task_id: str
    private_ip: str
    instance_id: None = None


def _client(rng) -> str:
    return (
        f"{rng.choice([73, 98, 24, 86, 92, 109, 81, 151, 188, 2, 77, 94])}."
        f"{rng.randrange(1, 255)}.{rng.randrange(1, 255)}.{rng.randrange(1, 254)}"
    )


def write_alb_logs(
    org: Org,
    out: str | Path,
    start: float,
    days: int,
    lines: int,
    theft_time: float,
    theft_attack_id: str,
    task_theft: tuple[float, str, TaskTarget] | None = None,
) -> tuple[dict, int]:
    """Write the ALB logs; return the ``ssrf`` ground truth and the number of files.

    ``task_theft`` (theft time, attack id, task) adds SSRF attempts on the ECS credentials
    endpoint through that task before its credential's theft: a chain whose target is a task.
    """
    seed = org.seed
    alb = org.alb
    a, region = alb["account"], alb["region"]
    rng = stable_rng(seed, "alb")
    webs = [i for i in org.instances if i.web and i.account == a and i.region == region]
    victim = next(i for i in webs if i.delivery == "1.0")
    other = next(i for i in webs if i is not victim)
    node_ips = alb["node_ips"].split(",")
    end = start + days * DAY
    # (time, client, target instance, method, url, ua, status, kind, meta)
    rows: list[tuple] = []
    for _ in range(lines):
        t = start + rng.random() * days * DAY
        url = rng.choice(BENIGN_PATHS)
        ua = rng.choice(BENIGN_UA)
        rows.append(
            (
                t,
                _client(rng),
                rng.choice(webs),
                "GET" if rng.random() < 0.9 else "POST",
                url,
                ua,
                200 if rng.random() < 0.95 else 404,
                None,
                None,
            )
        )
    attempts_meta = []
    for hours, idx in CHAIN_ATTEMPTS:
        t = theft_time + hours * 3600
        if t < start:
            continue
        attempts_meta.append((t, ATTACKER_IPS[0], victim, idx, 200))
    task_chain_for: dict[str, tuple[float, str]] = {}
    if task_theft is not None:
        task_time, task_attack_id, task = task_theft
        ecs_idx = next(i for i, (enc, _, _) in enumerate(ATTEMPTS) if enc == "ecs_credentials")
        task_chain_for[task.private_ip] = (task_time, task_attack_id)
        for hours in (-1.5, -1.4):
            if task_time + hours * 3600 >= start:
                attempts_meta.append(
                    (task_time + hours * 3600, ATTACKER_IPS[3], task, ecs_idx, 200)
                )
    arng = stable_rng(seed, "alb-attempts")
    for idx in range(len(ATTEMPTS)):
        t = start + arng.random() * days * DAY
        tgt = victim if idx % 3 == 0 else other
        client = ATTACKER_IPS[7 + idx % 3]
        attempts_meta.append((t, client, tgt, idx, 200 if tgt is victim else 502))
    for t, client, tgt, idx, status in attempts_meta:
        enc, endpoint, path = ATTEMPTS[idx]
        rows.append(
            (t, client, tgt, "GET", path, arng.choice(SSRF_UA), status, "attempt", (enc, endpoint))
        )
    for di, (enc, path) in enumerate(DECOYS):
        for rep in range(2):
            t = start + arng.random() * days * DAY
            rows.append(
                (
                    t,
                    _client(arng),
                    webs[(di + rep) % 2],
                    "GET",
                    path,
                    BENIGN_UA[0],
                    200,
                    "decoy",
                    (enc, None),
                )
            )
    rows.sort(key=lambda r: r[0])
    by_file: dict[tuple[int, int], list] = {}
    for r in rows:
        w = int((r[0] - start) // 300)
        node = 0 if r[1].endswith(("0", "2", "4", "6", "8")) else 1
        by_file.setdefault((w, node), []).append(r)
    attempts, decoys = [], []
    out = Path(out)
    files = 0
    lb_name, lb_id = alb["name"], alb["id"]
    elb = f"app/{lb_name}/{lb_id}"
    cert = f"arn:aws:acm:{region}:{a}:certificate/{uuid4(rng)}"
    for (w, node), group in sorted(by_file.items()):
        wend = start + (w + 1) * 300
        tm = time.gmtime(wend)
        stamp = time.strftime("%Y%m%dT%H%MZ", tm)
        rel_dir = (
            f"AWSLogs/{a}/elasticloadbalancing/{region}/{tm.tm_year:04d}/"
            f"{tm.tm_mon:02d}/{tm.tm_mday:02d}"
        )
        suffix = "".join(rng.choice(ALNUM_LOWER) for _ in range(8))
        name = (
            f"{a}_elasticloadbalancing_{region}_app.{lb_name}.{lb_id}_{stamp}_"
            f"{node_ips[node]}_{suffix}.log.gz"
        )
        lines_out = []
        for ln, (t, client, tgt, method, url, ua, status, kind, meta) in enumerate(group, 1):
            full = url if url.startswith("http://") else f"https://{alb['domain']}:443{url}"
            tport = 8080
            rtime = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"
            )
            ctime = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t - 0.05))
                + f".{int(((t - 0.05) % 1) * 1e6):06d}Z"
            )
            tstatus = str(status) if status != 502 else "-"
            scheme = "http" if url.startswith("http://") else "https"
            cipher, proto = (
                ("-", "-") if scheme == "http" else ("TLS_AES_128_GCM_SHA256", "TLSv1.3")
            )
            domain = "-" if scheme == "http" else alb["domain"]
            trace = f"Root=1-{int(t):08x}-{rng.getrandbits(96):024x}"
            line = (
                f"{scheme} {rtime} {elb} {client}:{rng.randrange(1024, 65535)} "
                f"{tgt.private_ip}:{tport} 0.000 {rng.random() * 0.2:.3f} 0.000 {status} "
                f"{tstatus} {rng.randrange(200, 900)} {rng.randrange(300, 40000)} "
                f'"{method} {full} HTTP/1.1" "{ua}" {cipher} {proto} {alb["tg"]} '
                f'"{trace}" "{domain}" "{cert if scheme == "https" else "-"}" '
                f'{1 if kind else 0} {ctime} "forward" "-" '
                f'"{"-" if status != 502 else "TargetResponseError"}" '
                f'"{tgt.private_ip}:{tport}" "{tstatus}" "-" "-" '
                f"TID_{rng.getrandbits(128):032x}"
            )
            lines_out.append(line)
            if kind:
                item = {
                    "time": rtime,
                    "client_ip": client,
                    "target_ip": tgt.private_ip,
                    "target_instance": tgt.instance_id,
                    "encoding": meta[0],
                    "request_url": full,
                    "status": status,
                    "file": f"{rel_dir}/{name}",
                    "line": ln,
                }
                if isinstance(tgt, TaskTarget):
                    item["target_task"] = tgt.task_id
                if kind == "attempt":
                    item["endpoint"] = meta[1]
                    chained = tgt is victim and theft_time - DAY <= t < theft_time
                    item["chain_attack_id"] = theft_attack_id if chained else None
                    if isinstance(tgt, TaskTarget):
                        t_theft, t_id = task_chain_for[tgt.private_ip]
                        item["chain_attack_id"] = t_id if t_theft - DAY <= t < t_theft else None
                    attempts.append(item)
                else:
                    decoys.append(item)
        (out / rel_dir).mkdir(parents=True, exist_ok=True)
        (out / rel_dir / name).write_bytes(
            igzip.compress(("\n".join(lines_out) + "\n").encode(), compresslevel=1, mtime=0)
        )
        files += 1
    chained = [x for x in attempts if x["chain_attack_id"] == theft_attack_id]
    chains = (
        [
            {
                "attack_id": theft_attack_id,
                "instance_id": victim.instance_id,
                "target_ip": victim.private_ip,
                "attempts": [
                    {"time": x["time"], "client_ip": x["client_ip"], "encoding": x["encoding"]}
                    for x in chained
                ],
            }
        ]
        if chained
        else []
    )
    if task_theft is not None:
        task = task_theft[2]
        on_task = [x for x in attempts if x["chain_attack_id"] == task_theft[1]]
        if on_task:
            chains.append(
                {
                    "attack_id": task_theft[1],
                    "task_id": task.task_id,
                    "target_ip": task.private_ip,
                    "attempts": [
                        {"time": x["time"], "client_ip": x["client_ip"], "encoding": x["encoding"]}
                        for x in on_task
                    ],
                }
            )
    assert end > start
    return {
        "alb": {"account": a, "region": region, "load_balancer": elb, "field_count": ALB_FIELDS},
        "attempts": attempts,
        "decoys": decoys,
        "chains": chains,
    }, files
