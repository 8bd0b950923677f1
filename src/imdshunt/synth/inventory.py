"""Inventory and IAM JSON exactly as the AWS CLI prints it.

``aws ec2 describe-instances`` and friends print the API response as JSON with the API's own
PascalCase keys; ``aws iam get-account-authorization-details`` prints policy documents already
URL-decoded and parsed into JSON objects (botocore decodes them), which is what we write.
"""

from __future__ import annotations

import json
from pathlib import Path

from .model import Instance, Org, stable_hex, stable_uuid


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4) + "\n")


def _mac(seed: int, key: str) -> str:
    h = stable_hex(10, seed, "mac", key)
    return "0e:" + ":".join(h[i : i + 2] for i in range(0, 10, 2))


def _dns(ip: str, region: str) -> str:
    host = "ip-" + ip.replace(".", "-")
    return f"{host}.ec2.internal" if region == "us-east-1" else f"{host}.{region}.compute.internal"


def _pub_dns(ip: str, region: str) -> str:
    host = "ec2-" + ip.replace(".", "-")
    return (
        f"{host}.compute-1.amazonaws.com"
        if region == "us-east-1"
        else f"{host}.{region}.compute.amazonaws.com"
    )


def _instance_json(org: Org, i: Instance) -> dict:
    az = f"{i.region}a"
    prof = f"{i.role.name}-profile"
    assoc = (
        {
            "IpOwnerId": "amazon",
            "PublicDnsName": _pub_dns(i.public_ip, i.region),
            "PublicIp": i.public_ip,
        }
        if i.public_ip
        else None
    )
    eni = {
        "Attachment": {
            "AttachTime": i.launch_time,
            "AttachmentId": "eni-attach-" + stable_hex(17, org.seed, i.eni_id),
            "DeleteOnTermination": True,
            "DeviceIndex": 0,
            "Status": "attached",
            "NetworkCardIndex": 0,
        },
        "Description": "",
        "Groups": [
            {"GroupName": "app-sg", "GroupId": "sg-" + stable_hex(17, org.seed, i.vpc_id, "sg")}
        ],
        "Ipv6Addresses": [{"Ipv6Address": i.ipv6, "IsPrimaryIpv6": False}],
        "MacAddress": _mac(org.seed, i.eni_id),
        "NetworkInterfaceId": i.eni_id,
        "OwnerId": i.account,
        "PrivateDnsName": _dns(i.private_ip, i.region),
        "PrivateIpAddress": i.private_ip,
        "PrivateIpAddresses": [
            {
                "Primary": True,
                "PrivateDnsName": _dns(i.private_ip, i.region),
                "PrivateIpAddress": i.private_ip,
            }
        ],
        "SourceDestCheck": True,
        "Status": "in-use",
        "SubnetId": i.subnet_id,
        "VpcId": i.vpc_id,
        "InterfaceType": "interface",
    }
    if assoc:
        eni["Association"] = assoc
        eni["PrivateIpAddresses"][0]["Association"] = assoc
    inst = {
        "AmiLaunchIndex": 0,
        "ImageId": "ami-" + stable_hex(17, org.seed, i.region, "ami"),
        "InstanceId": i.instance_id,
        "InstanceType": "t3.large" if not i.eks_node else "m6i.xlarge",
        "LaunchTime": i.launch_time,
        "Monitoring": {"State": "disabled"},
        "Placement": {"AvailabilityZone": az, "GroupName": "", "Tenancy": "default"},
        "PrivateDnsName": _dns(i.private_ip, i.region),
        "PrivateIpAddress": i.private_ip,
        "ProductCodes": [],
        "PublicDnsName": _pub_dns(i.public_ip, i.region) if i.public_ip else "",
        "State": {"Code": 16, "Name": "running"},
        "StateTransitionReason": "",
        "SubnetId": i.subnet_id,
        "VpcId": i.vpc_id,
        "Architecture": "x86_64",
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {
                    "AttachTime": i.launch_time,
                    "DeleteOnTermination": True,
                    "Status": "attached",
                    "VolumeId": "vol-" + stable_hex(17, org.seed, i.instance_id, "vol"),
                },
            }
        ],
        "ClientToken": "",
        "EbsOptimized": True,
        "EnaSupport": True,
        "Hypervisor": "xen",
        "IamInstanceProfile": {
            "Arn": f"arn:aws:iam::{i.account}:instance-profile/{prof}",
            "Id": "AIPA" + stable_hex(17, org.seed, prof).upper(),
        },
        "NetworkInterfaces": [eni],
        "RootDeviceName": "/dev/xvda",
        "RootDeviceType": "ebs",
        "SecurityGroups": eni["Groups"],
        "SourceDestCheck": True,
        "Tags": [{"Key": "Name", "Value": i.name}]
        + ([{"Key": "eks:cluster-name", "Value": "platform"}] if i.eks_node else []),
        "VirtualizationType": "hvm",
        "CpuOptions": {"CoreCount": 1, "ThreadsPerCore": 2},
        "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
        "HibernationOptions": {"Configured": False},
        "MetadataOptions": {
            "State": "applied",
            "HttpTokens": i.http_tokens,
            "HttpPutResponseHopLimit": 2 if i.eks_node else 1,
            "HttpEndpoint": "enabled",
            "HttpProtocolIpv6": "disabled",
            "InstanceMetadataTags": "disabled",
        },
        "EnclaveOptions": {"Enabled": False},
        "BootMode": "uefi-preferred",
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
        "PrivateDnsNameOptions": {
            "HostnameType": "ip-name",
            "EnableResourceNameDnsARecord": False,
            "EnableResourceNameDnsAAAARecord": False,
        },
        "MaintenanceOptions": {"AutoRecovery": "default"},
        "CurrentInstanceBootMode": "uefi",
        "Ipv6Address": i.ipv6,
    }
    if i.public_ip:
        inst["PublicIpAddress"] = i.public_ip
    return inst


def write_inventory(org: Org, out: str | Path) -> list[str]:
    """Write ``inventory/…`` (EC2, NAT, EIP, ENI, VPC endpoints, Organizations)."""
    out = Path(out) / "inventory"
    written = []
    seed = org.seed
    for acct in org.accounts:
        a = acct.account_id
        for region in org.regions:
            insts = [i for i in org.instances if i.account == a and i.region == region]
            nats = [n for n in org.nats if n.account == a and n.region == region]
            vpc = org.vpcs[(a, region)]
            d = out / a / region
            reservations = [
                {
                    "Groups": [],
                    "Instances": [_instance_json(org, i)],
                    "OwnerId": a,
                    "ReservationId": "r-" + stable_hex(17, seed, i.instance_id),
                }
                for i in insts
            ]
            _dump(d / "describe-instances.json", {"Reservations": reservations})
            _dump(
                d / "describe-nat-gateways.json",
                {
                    "NatGateways": [
                        {
                            "CreateTime": "2026-03-02T10:21:07+00:00",
                            "NatGatewayAddresses": [
                                {
                                    "AllocationId": n.alloc_id,
                                    "NetworkInterfaceId": n.eni_id,
                                    "PrivateIp": n.private_ip,
                                    "PublicIp": n.public_ip,
                                    "AssociationId": "eipassoc-" + stable_hex(17, seed, n.alloc_id),
                                    "IsPrimary": True,
                                    "Status": "succeeded",
                                }
                            ],
                            "NatGatewayId": n.nat_id,
                            "State": "available",
                            "SubnetId": n.subnet_id,
                            "VpcId": n.vpc_id,
                            "Tags": [{"Key": "Name", "Value": f"nat-{region}"}],
                            "ConnectivityType": "public",
                        }
                        for n in nats
                    ]
                },
            )
            addrs = [
                {
                    "AllocationId": n.alloc_id,
                    "AssociationId": "eipassoc-" + stable_hex(17, seed, n.alloc_id),
                    "Domain": "vpc",
                    "NetworkInterfaceId": n.eni_id,
                    "NetworkInterfaceOwnerId": a,
                    "PrivateIpAddress": n.private_ip,
                    "PublicIp": n.public_ip,
                    "PublicIpv4Pool": "amazon",
                    "NetworkBorderGroup": region,
                }
                for n in nats
            ]
            for i in insts:
                if i.eip_alloc:
                    addrs.append(
                        {
                            "InstanceId": i.instance_id,
                            "PublicIp": i.public_ip,
                            "AllocationId": i.eip_alloc,
                            "AssociationId": "eipassoc-" + stable_hex(17, seed, i.eip_alloc),
                            "Domain": "vpc",
                            "NetworkInterfaceId": i.eni_id,
                            "NetworkInterfaceOwnerId": a,
                            "PrivateIpAddress": i.private_ip,
                            "PublicIpv4Pool": "amazon",
                            "NetworkBorderGroup": region,
                            "Tags": [{"Key": "Name", "Value": f"{i.name}-eip"}],
                        }
                    )
            _dump(d / "describe-addresses.json", {"Addresses": addrs})
            enis = [
                _instance_json(org, i)["NetworkInterfaces"][0]
                | {"AvailabilityZone": f"{region}a", "RequesterManaged": False, "TagSet": []}
                for i in insts
            ]
            for n in nats:
                enis.append(
                    {
                        "Association": {
                            "AllocationId": n.alloc_id,
                            "IpOwnerId": "amazon",
                            "PublicDnsName": _pub_dns(n.public_ip, region),
                            "PublicIp": n.public_ip,
                        },
                        "AvailabilityZone": f"{region}a",
                        "Description": f"Interface for NAT Gateway {n.nat_id}",
                        "Groups": [],
                        "InterfaceType": "nat_gateway",
                        "Ipv6Addresses": [],
                        "MacAddress": _mac(seed, n.eni_id),
                        "NetworkInterfaceId": n.eni_id,
                        "OwnerId": a,
                        "PrivateDnsName": _dns(n.private_ip, region),
                        "PrivateIpAddress": n.private_ip,
                        "PrivateIpAddresses": [{"Primary": True, "PrivateIpAddress": n.private_ip}],
                        "RequesterId": "036872051663",
                        "RequesterManaged": True,
                        "SourceDestCheck": False,
                        "Status": "in-use",
                        "SubnetId": n.subnet_id,
                        "TagSet": [],
                        "VpcId": n.vpc_id,
                    }
                )
            wls = [w for w in org.workloads if w.account == a and w.region == region]
            enis += _workload_enis(org, wls, vpc)
            _write_workloads(org, wls, d)
            _dump(d / "describe-network-interfaces.json", {"NetworkInterfaces": enis})
            _dump(
                d / "describe-vpc-endpoints.json",
                {
                    "VpcEndpoints": [
                        {
                            "VpcEndpointId": vid,
                            "VpcEndpointType": "Interface",
                            "VpcId": vpc.vpc_id,
                            "ServiceName": f"com.amazonaws.{region}.{svc}",
                            "State": "available",
                            "PolicyDocument": json.dumps(
                                {
                                    "Statement": [
                                        {
                                            "Action": "*",
                                            "Effect": "Allow",
                                            "Principal": "*",
                                            "Resource": "*",
                                        }
                                    ]
                                }
                            ),
                            "RouteTableIds": [],
                            "SubnetIds": [vpc.private_subnet],
                            "Groups": [],
                            "IpAddressType": "dualstack",
                            "DnsOptions": {"DnsRecordIpType": "dualstack"},
                            "PrivateDnsEnabled": True,
                            "RequesterManaged": False,
                            "NetworkInterfaceIds": ["eni-" + stable_hex(17, seed, vid)],
                            "DnsEntries": [
                                {
                                    "DnsName": f"{vid}-{stable_hex(8, seed, vid)}.{svc}.{region}."
                                    "vpce.amazonaws.com",
                                    "HostedZoneId": "Z7HUB22UULQXV",
                                }
                            ],
                            "CreationTimestamp": "2026-03-02T10:25:31.000000+00:00",
                            "Tags": [],
                            "OwnerId": a,
                        }
                        for svc, vid in sorted(vpc.vpce_ids.items())
                    ]
                },
            )
            written.append(str(d))
    _dump(
        out / "organizations-list-accounts.json",
        {
            "Accounts": [
                {
                    "Id": x.account_id,
                    "Arn": (
                        f"arn:aws:organizations::{org.management}:account/"
                        f"{org.org_id}/{x.account_id}"
                    ),
                    "Email": x.email,
                    "Name": x.name,
                    "Status": "ACTIVE",
                    "State": "ACTIVE",
                    "JoinedMethod": "CREATED" if x.account_id != org.management else "INVITED",
                    "JoinedTimestamp": "2024-02-19T14:03:55.120000+00:00",
                }
                for x in org.accounts
            ]
        },
    )
    return written


def _workload_enis(org: Org, wls: list, vpc) -> list[dict]:
    """The ENIs of awsvpc tasks (the Fargate one with its public IP) and the node ENI the VPC CNI
    gives pod addresses from."""
    seed, out = org.seed, []
    for w in wls:
        if w.kind != "ecs-task":
            continue
        ip, eni = w.extra["private_ip"], w.extra["eni_id"]
        doc = {
            "AvailabilityZone": f"{w.region}a",
            "Description": f"arn:aws:ecs:{w.region}:{w.account}:attachment/"
            + stable_hex(32, seed, eni, "att"),
            "Groups": [],
            "InterfaceType": "interface",
            "Ipv6Addresses": [],
            "MacAddress": _mac(seed, eni),
            "NetworkInterfaceId": eni,
            "OwnerId": w.account,
            "PrivateDnsName": _dns(ip, w.region),
            "PrivateIpAddress": ip,
            "PrivateIpAddresses": [{"Primary": True, "PrivateIpAddress": ip}],
            "RequesterId": "578734482556",
            "RequesterManaged": True,
            "SourceDestCheck": True,
            "Status": "in-use",
            "SubnetId": vpc.private_subnet if "public_ip" not in w.extra else vpc.public_subnet,
            "TagSet": [],
            "VpcId": vpc.vpc_id,
        }
        if "public_ip" in w.extra:
            assoc = {
                "IpOwnerId": "amazon",
                "PublicDnsName": _pub_dns(w.extra["public_ip"], w.region),
                "PublicIp": w.extra["public_ip"],
            }
            doc["Association"] = assoc
            doc["PrivateIpAddresses"][0]["Association"] = assoc
        out.append(doc)
    pods = [w for w in wls if w.kind == "eks-pod-identity"]
    if pods:
        node = org.instance(pods[0].extra["node_instance"])
        eni = "eni-" + stable_hex(17, seed, node.instance_id, "cni")
        primary = pods[0].extra["pod_ip"]
        out.append(
            {
                "Attachment": {
                    "AttachTime": "2026-10-01T09:12:44+00:00",
                    "AttachmentId": "eni-attach-" + stable_hex(17, seed, eni),
                    "DeleteOnTermination": True,
                    "DeviceIndex": 1,
                    "NetworkCardIndex": 0,
                    "InstanceId": node.instance_id,
                    "InstanceOwnerId": node.account,
                    "Status": "attached",
                },
                "AvailabilityZone": f"{node.region}a",
                "Description": "aws-K8S-" + node.instance_id,
                "Groups": [],
                "InterfaceType": "interface",
                "Ipv6Addresses": [],
                "MacAddress": _mac(seed, eni),
                "NetworkInterfaceId": eni,
                "OwnerId": node.account,
                "PrivateDnsName": _dns(primary, node.region),
                "PrivateIpAddress": primary,
                "PrivateIpAddresses": [
                    {"Primary": i == 0, "PrivateIpAddress": w.extra["pod_ip"]}
                    for i, w in enumerate(pods)
                ],
                "RequesterManaged": False,
                "SourceDestCheck": True,
                "Status": "in-use",
                "SubnetId": node.subnet_id,
                "TagSet": [
                    {"Key": "cluster.k8s.amazonaws.com/name", "Value": pods[0].extra["cluster"]},
                    {"Key": "node.k8s.amazonaws.com/instance_id", "Value": node.instance_id},
                ],
                "VpcId": node.vpc_id,
            }
        )
    return out


def _write_workloads(org: Org, wls: list, d: Path) -> None:
    """``aws ecs describe-tasks``, ``kubectl get pods -A -o json`` and ``aws lambda
    list-functions`` for the workloads of one account and region."""
    seed = org.seed
    tasks = [w for w in wls if w.kind == "ecs-task"]
    if tasks:
        docs = []
        for w in tasks:
            cluster = w.extra["cluster"]
            arn = f"arn:aws:ecs:{w.region}:{w.account}:task/{cluster}/{w.cred_id}"
            att = stable_uuid(seed, w.cred_id, "attachment")
            ip = w.extra["private_ip"]
            docs.append(
                {
                    "attachments": [
                        {
                            "id": att,
                            "type": "ElasticNetworkInterface",
                            "status": "ATTACHED",
                            "details": [
                                {
                                    "name": "subnetId",
                                    "value": org.vpcs[(w.account, w.region)].private_subnet,
                                },
                                {"name": "networkInterfaceId", "value": w.extra["eni_id"]},
                                {"name": "macAddress", "value": _mac(seed, w.extra["eni_id"])},
                                {"name": "privateDnsName", "value": _dns(ip, w.region)},
                                {"name": "privateIPv4Address", "value": ip},
                            ],
                        }
                    ],
                    "availabilityZone": f"{w.region}a",
                    "clusterArn": f"arn:aws:ecs:{w.region}:{w.account}:cluster/{cluster}",
                    "containers": [
                        {
                            "containerArn": f"arn:aws:ecs:{w.region}:{w.account}:container/"
                            f"{cluster}/{w.cred_id}/{stable_uuid(seed, w.cred_id, 'c')}",
                            "taskArn": arn,
                            "name": "app",
                            "image": f"{w.account}.dkr.ecr.{w.region}.amazonaws.com/"
                            f"{w.extra['service']}:1.8.2",
                            "lastStatus": "RUNNING",
                            "networkInterfaces": [{"attachmentId": att, "privateIpv4Address": ip}],
                        }
                    ],
                    "cpu": "512",
                    "desiredStatus": "RUNNING",
                    "group": f"service:{w.extra['service']}",
                    "lastStatus": "RUNNING",
                    "launchType": "FARGATE",
                    "memory": "1024",
                    "platformVersion": "1.4.0",
                    "taskArn": arn,
                    "taskDefinitionArn": f"arn:aws:ecs:{w.region}:{w.account}:task-definition/"
                    f"{w.extra['service']}:12",
                }
            )
        _dump(d / "ecs-describe-tasks.json", {"tasks": docs, "failures": []})
    pods = [w for w in wls if w.kind == "eks-pod-identity"]
    if pods:
        node = org.instance(pods[0].extra["node_instance"])
        items = [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": w.extra["pod"],
                    "namespace": w.extra["namespace"],
                    "uid": w.extra["pod_uid"],
                    "labels": {"app": "payments"},
                },
                "spec": {
                    "serviceAccountName": w.extra["service_account"],
                    "nodeName": _dns(node.private_ip, node.region),
                    "containers": [{"name": "payments", "image": "payments:4.2.0"}],
                },
                "status": {
                    "phase": "Running",
                    "hostIP": node.private_ip,
                    "hostIPs": [{"ip": node.private_ip}],
                    "podIP": w.extra["pod_ip"],
                    "podIPs": [{"ip": w.extra["pod_ip"]}],
                },
            }
            for w in pods
        ]
        _dump(
            d / "kubectl-get-pods.json",
            {
                "apiVersion": "v1",
                "items": items,
                "kind": "List",
                "metadata": {"resourceVersion": ""},
            },
        )
    functions = [w for w in wls if w.kind == "lambda"]
    if functions:
        _dump(
            d / "lambda-list-functions.json",
            {
                "Functions": [
                    {
                        "FunctionName": w.cred_id,
                        "FunctionArn": f"arn:aws:lambda:{w.region}:{w.account}:function:"
                        f"{w.cred_id}",
                        "Runtime": w.extra.get("runtime", "python3.12"),
                        "Role": w.role.arn,
                        "Handler": "app.handler",
                        "MemorySize": 256,
                        "Timeout": 30,
                        "PackageType": "Zip",
                        "Architectures": ["arm64"],
                        # outside any VPC: Lambda's shared egress, never judged by address
                    }
                    for w in functions
                ]
            },
        )


ADMIN_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"


def write_iam(org: Org, out: str | Path) -> list[str]:
    """Write ``inventory/<acct>/get-account-authorization-details.json`` per account."""
    seed = org.seed
    paths = []
    trust_ec2 = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    for acct in org.accounts:
        a = acct.account_id
        roles = []
        local_policies = []
        for (ra, _name), role in sorted(org.roles.items()):
            if ra != a or role.kind in ("sso",):
                continue
            inline, attached = [], []
            if role.kind == "admin":
                attached.append({"PolicyName": "AdministratorAccess", "PolicyArn": ADMIN_ARN})
            elif role.kind == "data-reader":
                inline.append(
                    {
                        "PolicyName": "read-all-objects",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": ["s3:GetObject", "s3:ListBucket"],
                                    "Resource": "*",
                                }
                            ],
                        },
                    }
                )
            elif role.kind == "harmless":
                inline.append(
                    {
                        "PolicyName": "put-metrics",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": "cloudwatch:PutMetricData",
                                    "Resource": "*",
                                }
                            ],
                        },
                    }
                )
            else:
                pname = f"{role.name}-policy"
                parn = f"arn:aws:iam::{a}:policy/{pname}"
                attached.append({"PolicyName": pname, "PolicyArn": parn})
                local_policies.append(
                    {
                        "PolicyName": pname,
                        "PolicyId": "ANPA" + stable_hex(17, seed, parn).upper(),
                        "Arn": parn,
                        "Path": "/",
                        "DefaultVersionId": "v1",
                        "AttachmentCount": 1,
                        "PermissionsBoundaryUsageCount": 0,
                        "IsAttachable": True,
                        "CreateDate": "2025-06-11T09:14:02+00:00",
                        "UpdateDate": "2025-06-11T09:14:02+00:00",
                        "PolicyVersionList": [
                            {
                                "Document": {
                                    "Version": "2012-10-17",
                                    "Statement": [
                                        {
                                            "Effect": "Allow",
                                            "Action": ["s3:GetObject", "s3:PutObject"],
                                            "Resource": f"arn:aws:s3:::anycompany-{a}-data/*",
                                        },
                                        {
                                            "Effect": "Allow",
                                            "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
                                            "Resource": f"arn:aws:dynamodb:*:{a}:table/orders",
                                        },
                                        {
                                            "Effect": "Allow",
                                            "Action": "kms:Decrypt",
                                            "Resource": "*",
                                        },
                                    ],
                                },
                                "VersionId": "v1",
                                "IsDefaultVersion": True,
                                "CreateDate": "2025-06-11T09:14:02+00:00",
                            }
                        ],
                    }
                )
            profiles = []
            if any(i.role is role for i in org.instances):
                pn = f"{role.name}-profile"
                profiles.append(
                    {
                        "Path": "/",
                        "InstanceProfileName": pn,
                        "InstanceProfileId": "AIPA" + stable_hex(17, seed, pn).upper(),
                        "Arn": f"arn:aws:iam::{a}:instance-profile/{pn}",
                        "CreateDate": "2025-05-20T08:00:00+00:00",
                        "Roles": [
                            {
                                "Path": role.path,
                                "RoleName": role.name,
                                "RoleId": role.role_id,
                                "Arn": role.arn,
                                "CreateDate": "2025-05-20T08:00:00+00:00",
                                "AssumeRolePolicyDocument": trust_ec2,
                            }
                        ],
                    }
                )
            roles.append(
                {
                    "Path": role.path,
                    "RoleName": role.name,
                    "RoleId": role.role_id,
                    "Arn": role.arn,
                    "CreateDate": "2025-05-20T08:00:00+00:00",
                    "AssumeRolePolicyDocument": trust_ec2,
                    "InstanceProfileList": profiles,
                    "RolePolicyList": inline,
                    "AttachedManagedPolicies": attached,
                    "Tags": [],
                    "RoleLastUsed": {
                        "LastUsedDate": "2026-10-31T23:51:02+00:00",
                        "Region": org.regions[0],
                    },
                }
            )
        policies = local_policies + [
            {
                "PolicyName": "AdministratorAccess",
                "PolicyId": "ANPAIWMBCKSKIEE64ZLYK",
                "Arn": ADMIN_ARN,
                "Path": "/",
                "DefaultVersionId": "v1",
                "AttachmentCount": 1,
                "PermissionsBoundaryUsageCount": 0,
                "IsAttachable": True,
                "CreateDate": "2015-02-06T18:39:46+00:00",
                "UpdateDate": "2015-02-06T18:39:46+00:00",
                "PolicyVersionList": [
                    {
                        "Document": {
                            "Version": "2012-10-17",
                            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                        },
                        "VersionId": "v1",
                        "IsDefaultVersion": True,
                        "CreateDate": "2015-02-06T18:39:46+00:00",
                    }
                ],
            }
        ]
        p = Path(out) / "inventory" / a / "get-account-authorization-details.json"
        _dump(
            p,
            {
                "UserDetailList": [],
                "GroupDetailList": [],
                "RoleDetailList": roles,
                "Policies": policies,
            },
        )
        paths.append(str(p))
    return paths
