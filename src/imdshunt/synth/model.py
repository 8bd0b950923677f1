"""The synthetic organisation: accounts, networks, workloads, roles and address plan.

Everything here is derived from the seed alone, so every worker process can rebuild the same
organisation without sharing state. No I/O happens in this module.

AWS addresses come from a small, self-consistent ``ip-ranges.json`` written by the generator
(:func:`ip_ranges_document`); prefixes mirror real EC2/S3 blocks so that the addresses look
familiar, but detection only relies on the generated file. Internet addresses (users, CI
runners, attackers) were checked to lie outside both the generated file and AWS's published one
at the time of writing, and avoid documentation and special-purpose ranges on purpose.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import string
from dataclasses import dataclass, field

#: Per-region synthetic AWS prefixes: EC2 (first block hosts org addresses), S3, IPv6 EC2.
REGION_PREFIXES: dict[str, dict[str, list[str]]] = {
    "us-east-1": {
        "EC2": ["3.80.0.0/12", "44.192.0.0/11"],
        "S3": ["52.216.0.0/15"],
        "EC2v6": ["2600:1f18::/32"],
        "S3v6": ["2600:1fa0:8000::/39"],
    },
    "eu-west-1": {
        "EC2": ["34.240.0.0/13", "52.208.0.0/13"],
        "S3": ["52.218.0.0/17"],
        "EC2v6": ["2a05:d018::/35"],
        "S3v6": ["2a05:d07e:c000::/40"],
    },
    "us-west-2": {
        "EC2": ["35.160.0.0/13", "44.224.0.0/11"],
        "S3": ["52.218.128.0/17"],
        "EC2v6": ["2600:1f14::/35"],
        "S3v6": ["2600:1fa0:4000::/39"],
    },
    "eu-central-1": {
        "EC2": ["3.120.0.0/14", "18.184.0.0/15"],
        "S3": ["52.219.168.0/24"],
        "EC2v6": ["2a05:d014::/35"],
        "S3v6": ["2a05:d050:8000::/40"],
    },
    "ap-southeast-2": {
        "EC2": ["3.24.0.0/14", "13.236.0.0/14"],
        "S3": ["52.95.128.0/21"],
        "EC2v6": ["2406:da1c::/36"],
        "S3v6": ["2406:daf8:8000::/40"],
    },
}
#: Global (non-regional) AMAZON and CLOUDFRONT entries, as in the real file.
GLOBAL_PREFIXES = [
    ("13.32.0.0/15", "GLOBAL", "CLOUDFRONT"),
    ("13.32.0.0/15", "GLOBAL", "AMAZON"),
    ("52.94.76.0/22", "us-west-2", "AMAZON"),
    ("15.230.39.0/24", "us-east-1", "AMAZON"),
]

#: Corporate egress (offices, VPN) of the synthetic company.
CORPORATE_IPS = ["81.2.69.142", "81.2.69.160", "62.252.48.17", "145.14.33.71", "89.246.190.5"]
#: Home broadband of people working remotely.
HOME_IPS = [
    "98.207.25.6",
    "73.162.88.14",
    "24.5.166.201",
    "86.12.207.93",
    "92.40.181.18",
    "109.147.22.60",
    "121.44.18.200",
    "203.12.6.91",
]
#: Hosted CI runners (GitHub-hosted runners live outside AWS).
CI_RUNNER_IPS = [
    "20.42.11.34",
    "20.102.35.120",
    "40.76.105.12",
    "20.57.44.81",
    "4.175.114.51",
    "172.176.202.8",
]
#: Attackers' internet addresses (VPS, Tor exits, residential proxies).
ATTACKER_IPS = [
    "185.220.101.47",
    "45.134.26.9",
    "193.32.162.58",
    "5.188.206.14",
    "91.219.236.222",
    "103.251.167.20",
    "178.128.94.113",
    "146.70.113.37",
    "77.111.246.20",
    "176.58.120.44",
]

ALNUM_UPPER = string.ascii_uppercase + "234567"
ALNUM_LOWER = string.ascii_lowercase + string.digits


def stable_rng(*parts: object) -> random.Random:
    """A :class:`random.Random` seeded from a stable hash of ``parts`` (not Python's hash())."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(h, "big"))


def stable_token(alphabet: str, n: int, *parts: object) -> str:
    """``n`` characters of ``alphabet`` derived from ``parts`` (deterministic)."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=32).digest()
    x = int.from_bytes(h, "big")
    out = []
    for _ in range(n):
        x, r = divmod(x, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


def stable_hex(n: int, *parts: object) -> str:
    """``n`` lowercase hex digits derived from ``parts``."""
    return hashlib.blake2b(repr(parts).encode(), digest_size=(n + 1) // 2).hexdigest()[:n]


def stable_uuid(*parts: object) -> str:
    """A UUID-4-shaped string derived from ``parts``."""
    h = stable_hex(32, *parts)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def access_key(seed: int, cred: str, period: int) -> str:
    """The temporary (ASIA) key vended to credential ``cred`` in rotation ``period``."""
    return "ASIA" + stable_token(ALNUM_UPPER, 16, seed, "key", cred, period)


def role_id(seed: int, account: str, role: str) -> str:
    """The unique id (``AROA…``) of a role."""
    return "AROA" + stable_token(ALNUM_UPPER, 17, seed, "roleid", account, role)


@dataclass
class Role:
    """An IAM role of the organisation."""

    account: str
    name: str
    kind: str  # admin, data-reader, harmless, app, eks-node, ecs-task, lambda, irsa, pod, sso, ...
    path: str = "/"
    role_id: str = ""

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role{self.path}{self.name}"


@dataclass
class Instance:
    """An EC2 instance with an instance profile."""

    instance_id: str
    account: str
    region: str
    vpc_id: str
    subnet_id: str
    eni_id: str
    private_ip: str
    ipv6: str
    public_ip: str | None  # own public IP (EIP or auto-assigned) when it egresses directly
    egress: str  # "public", "nat" or "vpce"
    role: Role
    name: str
    http_tokens: str  # "required" or "optional"
    delivery: str  # "2.0", or "1.0" for instances whose software still uses IMDSv1
    nat_id: str | None = None
    eip_alloc: str | None = None
    web: bool = False
    eks_node: bool = False
    launch_time: str = "2026-09-14T08:12:44+00:00"
    vend_offset: int = 0  # seconds after start of the first key rotation in the logs


@dataclass
class NatGateway:
    """A NAT gateway with its Elastic IP."""

    nat_id: str
    account: str
    region: str
    vpc_id: str
    subnet_id: str
    eni_id: str
    private_ip: str
    public_ip: str
    alloc_id: str


@dataclass
class Vpc:
    """One VPC of an account in a region, with its interface endpoints."""

    vpc_id: str
    account: str
    region: str
    cidr: str
    ipv6_cidr: str
    public_subnet: str
    private_subnet: str
    vpce_ids: dict[str, str] = field(default_factory=dict)  # service -> vpce id


@dataclass
class Workload:
    """A non-EC2 credential holder: ECS task, EKS pod (pod identity or IRSA) or Lambda."""

    kind: str  # ecs-task, eks-pod-identity, eks-irsa, lambda
    cred_id: str  # session name
    account: str
    region: str
    role: Role
    egress_ips: list[str]
    extra: dict[str, str] = field(default_factory=dict)
    #: Calls go through the account's own VPC endpoints from ``egress_ips`` (private addresses).
    through_vpce: bool = False


@dataclass
class Account:
    """A member account."""

    account_id: str
    name: str
    email: str


class AddressPool:
    """Hands out unique addresses from a network, deterministically."""

    def __init__(self, network: str, skip: int = 16):
        self.net = ipaddress.ip_network(network)
        self.next = skip

    def take(self) -> str:
        addr = self.net.network_address + self.next
        self.next += 1
        return str(addr)


@dataclass
class Org:
    """The whole synthetic organisation."""

    seed: int
    org_id: str
    management: str
    accounts: list[Account]
    regions: list[str]
    vpcs: dict[tuple[str, str], Vpc]
    instances: list[Instance]
    nats: list[NatGateway]
    roles: dict[tuple[str, str], Role]
    workloads: list[Workload]
    lambda_ips: dict[str, list[str]]
    other_account_ips: list[str]
    foreign_account: str
    foreign_vpce: str
    sso_users: list[str]
    iam_users: list[str]
    alb: dict[str, str]

    def instance(self, instance_id: str) -> Instance:
        return next(i for i in self.instances if i.instance_id == instance_id)


SSO_PERMSETS = ["AdministratorAccess", "PowerUserAccess", "ReadOnlyAccess", "DataEngineer"]
FIRST = [
    "alice",
    "bob",
    "carol",
    "dan",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "wendy",
]
LAST = ["nguyen", "smith", "garcia", "okafor", "kowalski", "tanaka", "silva", "muller", "rossi"]


def build_org(
    seed: int = 0, accounts: int = 3, regions: tuple[str, ...] = ("us-east-1", "eu-west-1")
) -> Org:
    """Build the organisation for ``seed`` (pure; no I/O)."""
    for r in regions:
        if r not in REGION_PREFIXES:
            raise ValueError(f"unsupported region {r!r}; choose from {sorted(REGION_PREFIXES)}")
    rng = stable_rng(seed, "org")
    org_id = "o-" + stable_token(string.ascii_lowercase + string.digits, 10, seed, "org")
    names = ["prod-platform", "prod-data", "staging", "sandbox", "shared-services", "security"]
    accts = []
    for a in range(accounts):
        aid = str(rng.randrange(100_000_000_000, 999_999_999_999))
        nm = names[a % len(names)] + ("" if a < len(names) else f"-{a}")
        accts.append(Account(aid, nm, f"aws+{nm}@anycompany.com"))
    management = accts[0].account_id
    foreign_account = str(rng.randrange(100_000_000_000, 999_999_999_999))

    roles: dict[tuple[str, str], Role] = {}

    def role(account: str, name: str, kind: str, path: str = "/") -> Role:
        r = roles.get((account, name))
        if r is None:
            r = Role(account, name, kind, path, role_id(seed, account, name))
            roles[(account, name)] = r
        return r

    # Address plan: org public addresses come from the first half of each region's first EC2
    # block, Lambda/Fargate egress from the second EC2 block, and "another AWS customer" from the
    # last /16 of the first block which the org never uses.
    pub_pools = {r: AddressPool(REGION_PREFIXES[r]["EC2"][0], skip=256 * 7 + 10) for r in regions}
    lam_pools = {r: AddressPool(REGION_PREFIXES[r]["EC2"][1], skip=256 * 3 + 40) for r in regions}
    other_ips = []
    for r in regions[:1]:
        net = ipaddress.ip_network(REGION_PREFIXES[r]["EC2"][0])
        last16 = list(net.subnets(new_prefix=16))[-1]
        other_ips += [
            str(last16.network_address + 256 * 37 + 121),
            str(last16.network_address + 256 * 201 + 14),
        ]

    vpcs: dict[tuple[str, str], Vpc] = {}
    instances: list[Instance] = []
    nats: list[NatGateway] = []
    workloads: list[Workload] = []
    lambda_ips: dict[str, list[str]] = {r: [lam_pools[r].take() for _ in range(6)] for r in regions}
    # Special instance roles used by the exposure ranking.
    kinds_cycle = ["app", "app", "data-reader", "harmless", "app", "admin"]
    for ai, acct in enumerate(accts):
        a = acct.account_id
        admin = role(a, "ops-admin-instance-role", "admin")
        reader = role(a, "data-reader-instance-role", "data-reader")
        harmless = role(a, "metrics-agent-instance-role", "harmless")
        web_role = role(a, "web-frontend-instance-role", "app")
        app_role = role(a, "orders-api-instance-role", "app")
        node_role = role(a, f"eks-node-group-{stable_hex(8, seed, a, 'ng')}", "eks-node")
        by_kind = {"admin": admin, "data-reader": reader, "harmless": harmless, "app": app_role}
        for ri, region in enumerate(regions):
            o2 = 16 * ai + ri
            v6base = ipaddress.ip_network(REGION_PREFIXES[region]["EC2v6"][0])
            v6net = ipaddress.ip_network(
                f"{v6base.network_address + ((0x0A00 + o2) << 80) + (0x0000 << 72)}/56"
            )
            vpc = Vpc(
                vpc_id="vpc-" + stable_hex(17, seed, a, region, "vpc"),
                account=a,
                region=region,
                cidr=f"10.{o2}.0.0/16",
                ipv6_cidr=str(v6net),
                public_subnet="subnet-" + stable_hex(17, seed, a, region, "pub"),
                private_subnet="subnet-" + stable_hex(17, seed, a, region, "priv"),
            )
            for svc in ("s3", "sts", "kms", "secretsmanager", "ssm"):
                vpc.vpce_ids[svc] = "vpce-" + stable_hex(17, seed, a, region, svc)
            vpcs[(a, region)] = vpc
            priv = AddressPool(f"10.{o2}.0.0/16", skip=256 * 1 + 10)
            v6pool = AddressPool(str(v6net), skip=0x1000)

            def eni(a=a, region=region, priv=priv) -> str:
                return "eni-" + stable_hex(17, seed, a, region, "eni", priv.next)

            nat_list = []
            for ni in range(2):
                nat_list.append(
                    NatGateway(
                        nat_id="nat-" + stable_hex(17, seed, a, region, "nat", ni),
                        account=a,
                        region=region,
                        vpc_id=vpc.vpc_id,
                        subnet_id=vpc.public_subnet,
                        eni_id=eni(),
                        private_ip=priv.take(),
                        public_ip=pub_pools[region].take(),
                        alloc_id="eipalloc-" + stable_hex(17, seed, a, region, "natip", ni),
                    )
                )
            nats += nat_list
            n_inst = 9
            for ii in range(n_inst):
                iid = "i-" + stable_hex(17, seed, a, region, "inst", ii)
                egress = ["public", "public", "nat", "nat", "nat", "vpce", "vpce", "public", "nat"][
                    ii
                ]
                web = ii in (0, 1) and ri == 0
                eks_node = ii == 8
                if web:
                    r = web_role if ii == 1 else by_kind["app"]
                    name = f"web-{ii + 1:02d}"
                elif eks_node:
                    r = node_role
                    name = f"eks-node-{ri}"
                else:
                    k = kinds_cycle[(ii + ai + ri) % len(kinds_cycle)]
                    r = by_kind[k]
                    name = f"{k}-{region.split('-')[1]}-{ii:02d}"
                eni_id = eni()
                private_ip = priv.take()
                public_ip = pub_pools[region].take() if egress == "public" or web else None
                nat = nat_list[ii % 2] if egress == "nat" else None
                inst = Instance(
                    instance_id=iid,
                    account=a,
                    region=region,
                    vpc_id=vpc.vpc_id,
                    subnet_id=vpc.public_subnet if public_ip else vpc.private_subnet,
                    eni_id=eni_id,
                    private_ip=private_ip,
                    ipv6=v6pool.take(),
                    public_ip=public_ip,
                    egress=egress,
                    role=r,
                    name=name,
                    http_tokens="required",
                    delivery="2.0",
                    nat_id=nat.nat_id if nat else None,
                    eip_alloc=("eipalloc-" + stable_hex(17, seed, iid, "eip"))
                    if public_ip and ii == 7
                    else None,
                    web=web,
                    eks_node=eks_node,
                    vend_offset=rng.randrange(0, 6 * 3600),
                    launch_time=f"2026-{9 + (ii % 2):02d}-{10 + ii:02d}T0{ii % 10}:12:44+00:00",
                )
                instances.append(inst)
            # IMDS exposure: in the first region of each account, web-01 (or app) uses v1 and
            # two more answer v1 (HttpTokens optional) without using it yet / using it.
        # per account workloads
        r0 = regions[0]
        ecs_role = role(a, "orders-worker-task-role", "ecs-task")
        lam_role = role(a, "thumbnailer-lambda-role", "lambda", "/service-role/")
        pod_role = role(a, "payments-pod-role", "pod-identity")
        irsa_role = role(a, "reports-irsa-role", "irsa")
        nat0 = [n.public_ip for n in nats if n.account == a and n.region == r0]
        node = next(i for i in instances if i.account == a and i.region == r0 and i.eks_node)
        node_egress = [nat0[0]]
        cluster = ["platform-prod", "data-cluster", "staging-eks"][ai % 3]
        # awsvpc task and pod addresses: a /24 of the first region's VPC the instances never reach
        wl_priv = AddressPool(f"10.{16 * ai}.200.0/24", skip=10)
        vpc0 = vpcs[(a, r0)]
        for ti in range(4):
            tid = stable_hex(32, seed, a, "task", ti) if ti % 2 else stable_uuid(seed, a, "t", ti)
            # task 3 is a Fargate task on its own public IP (assigned below, after the ALB's)
            public = ti == 3
            workloads.append(
                Workload(
                    "ecs-task",
                    tid,
                    a,
                    r0,
                    ecs_role,
                    [] if public else nat0,
                    {
                        "cluster": "orders",
                        "service": "orders-public-api" if public else "orders-worker",
                        "private_ip": wl_priv.take(),
                        "eni_id": "eni-" + stable_hex(17, seed, a, "taskeni", ti),
                        "vpc_id": vpc0.vpc_id,
                    },
                )
            )
        for pi in range(3):
            pod = f"payments-{stable_hex(10, seed, a, 'pod', pi)[:10]}-{stable_hex(5, a, pi)}"
            # EKS truncates cluster and pod names so that the session name fits 64 characters.
            sess = f"eks-{cluster[:10]}-{pod[:12]}-{stable_uuid(seed, a, 'podsess', pi)}"
            pod_ip = wl_priv.take()
            # pod 2 reaches AWS through the account's own VPC endpoints, from its pod address
            own_vpce = pi == 2
            workloads.append(
                Workload(
                    "eks-pod-identity",
                    sess,
                    a,
                    r0,
                    pod_role,
                    [pod_ip] if own_vpce else node_egress,
                    {
                        "cluster": cluster,
                        "namespace": "payments",
                        "pod": pod,
                        "service_account": "payments-sa",
                        "node_instance": node.instance_id,
                        "pod_uid": stable_uuid(seed, a, "poduid", pi),
                        "pod_ip": pod_ip,
                    },
                    through_vpce=own_vpce,
                )
            )
        oidc_id = stable_hex(32, seed, a, "oidc").upper()
        for si in range(2):
            sess = f"botocore-session-{1_700_000_000 + stable_rng(seed, a, si).randrange(10**8)}"
            workloads.append(
                Workload(
                    "eks-irsa",
                    sess,
                    a,
                    r0,
                    irsa_role,
                    node_egress,
                    {
                        "cluster": cluster,
                        "namespace": "reports",
                        "service_account": "reports-sa",
                        "provider": f"oidc.eks.{r0}.amazonaws.com/id/{oidc_id}",
                    },
                )
            )
        for fn in ("thumbnailer", "invoice-export"):
            workloads.append(
                Workload(
                    "lambda",
                    fn if fn == "thumbnailer" else fn,
                    a,
                    r0,
                    lam_role
                    if fn == "thumbnailer"
                    else role(a, "invoice-export-role", "lambda", "/service-role/"),
                    lambda_ips[r0],
                    {"runtime": "python3.12"},
                )
            )
        # Human-facing roles.
        for ps in SSO_PERMSETS:
            role(
                a,
                f"AWSReservedSSO_{ps}_{stable_hex(16, seed, a, ps)}",
                "sso",
                f"/aws-reserved/sso.amazonaws.com/{r0}/",
            )
        role(a, "OrganizationAccountAccessRole", "switch")
        role(a, "DeveloperRole", "switch")
        role(a, "github-actions-deploy", "ci")

    # IMDSv1 set: per account, in the first region, web-01 ("app"), one admin-role and one
    # reader/harmless instance use v1; two more are "optional" but only ever used v2.
    for ai, acct in enumerate(accts):
        a = acct.account_id
        first = [i for i in instances if i.account == a and i.region == regions[0]]
        v1 = [first[0]]
        for kind in ("admin", "data-reader", "harmless"):
            cand = [
                i
                for i in instances
                if i.account == a and i.role.kind == kind and i not in v1 and not i.eks_node
            ]
            if cand and (ai == 0 or kind != "harmless"):
                v1.append(cand[0])
        for i in v1:
            i.http_tokens, i.delivery = "optional", "1.0"
        opt = [i for i in instances if i.account == a and i not in v1 and not i.web][:2]
        for i in opt:
            i.http_tokens = "optional"

    users = [f"{FIRST[i]}.{LAST[(i * 7) % len(LAST)]}@anycompany.com" for i in range(len(FIRST))]
    iam_users = [f"{FIRST[i]}-{LAST[(i * 3) % len(LAST)]}" for i in range(0, len(FIRST), 3)]
    r0 = regions[0]
    alb = {
        "account": accts[0].account_id,
        "region": r0,
        "name": "shop-frontend",
        "id": stable_hex(16, seed, "alb"),
        "tg": f"arn:aws:elasticloadbalancing:{r0}:{accts[0].account_id}:targetgroup/"
        f"shop-web/{stable_hex(16, seed, 'tg')}",
        "domain": "shop.anycompany.com",
        "node_ips": ",".join(pub_pools[r0].take() for _ in range(2)),
    }
    for w in workloads:
        if w.kind == "ecs-task" and not w.egress_ips:  # Fargate on its own public IP
            w.extra["public_ip"] = pub_pools[w.region].take()
            w.egress_ips.append(w.extra["public_ip"])
    return Org(
        seed=seed,
        org_id=org_id,
        management=management,
        accounts=accts,
        regions=list(regions),
        vpcs=vpcs,
        instances=instances,
        nats=nats,
        roles=roles,
        workloads=workloads,
        lambda_ips=lambda_ips,
        other_account_ips=other_ips,
        foreign_account=foreign_account,
        foreign_vpce="vpce-" + stable_hex(17, seed, "foreign-vpce"),
        sso_users=users,
        iam_users=iam_users,
        alb=alb,
    )


def ip_ranges_document(seed: int, create_date: str) -> dict:
    """The synthetic ``ip-ranges.json`` in AWS's exact format (all supported regions)."""
    prefixes, v6 = [], []
    for region, blocks in REGION_PREFIXES.items():
        for p in blocks["EC2"]:
            for svc in ("AMAZON", "EC2"):
                prefixes.append(
                    {
                        "ip_prefix": p,
                        "region": region,
                        "service": svc,
                        "network_border_group": region,
                    }
                )
        for p in blocks["S3"]:
            for svc in ("AMAZON", "S3"):
                prefixes.append(
                    {
                        "ip_prefix": p,
                        "region": region,
                        "service": svc,
                        "network_border_group": region,
                    }
                )
        for p in blocks["EC2v6"]:
            for svc in ("AMAZON", "EC2"):
                v6.append(
                    {
                        "ipv6_prefix": p,
                        "region": region,
                        "service": svc,
                        "network_border_group": region,
                    }
                )
        for p in blocks["S3v6"]:
            for svc in ("AMAZON", "S3"):
                v6.append(
                    {
                        "ipv6_prefix": p,
                        "region": region,
                        "service": svc,
                        "network_border_group": region,
                    }
                )
    for p, region, svc in GLOBAL_PREFIXES:
        prefixes.append(
            {"ip_prefix": p, "region": region, "service": svc, "network_border_group": region}
        )
    sync = str(1_790_000_000 + stable_rng(seed, "sync").randrange(10_000_000))
    return {"syncToken": sync, "createDate": create_date, "prefixes": prefixes, "ipv6_prefixes": v6}
