"""Container and function inventory: which addresses and VPC each ECS task, EKS pod and Lambda
function has, so their credentials can be bound like instance credentials.

Reads the JSON the tools print, told apart by content:

* ``aws ecs describe-tasks`` (``{"tasks": [...], "failures": [...]}``). A task in ``awsvpc``
  network mode (every Fargate task) has an attachment of ``type`` ``ElasticNetworkInterface``
  whose ``details`` are name/value pairs: ``networkInterfaceId``, ``privateIPv4Address``,
  ``subnetId``, ``macAddress``, ``privateDnsName``
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Attachment.html); the
  containers repeat the address in ``networkInterfaces[].privateIpv4Address`` (and
  ``ipv6Address``). The task id is the last element of ``taskArn``; the account and region
  are in the ARN; a task started by a service has ``group`` ``service:<name>``. The task's
  *public* address and its VPC are not in the response: they are on its ENI, which
  ``describe-network-interfaces`` lists (joined here by ENI id).
* ``kubectl get pods -A -o json`` (``{"apiVersion": "v1", "kind": "List", "items": [...]}``,
  every item of ``kind`` ``Pod``): ``metadata.name``/``namespace``, ``spec.serviceAccountName``,
  ``spec.nodeName``, ``status.podIP``/``podIPs[].ip`` and ``status.hostIP``
  (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/). The
  response names no cluster, account or VPC: the VPC comes from the address (with the VPC CNI a
  pod's IP is a secondary address of its node's ENI, so describe-network-interfaces or
  describe-instances places it).
* ``aws lambda list-functions`` (``{"Functions": [...]}``): a function with
  ``VpcConfig.VpcId`` is attached to that VPC and reaches AWS through the VPC's NAT gateways or
  endpoints; one without reaches AWS from Lambda's shared addresses
  (https://docs.aws.amazon.com/lambda/latest/dg/configuration-vpc.html). Lambda's Hyperplane
  ENIs are shared by every function with the same subnet and security groups, so their
  descriptions do not name a function reliably; list-functions does.
"""

from __future__ import annotations

from typing import Any

#: ``workload_type`` values of ``inventory_workload`` rows.
ECS_TASK, EKS_POD, LAMBDA = "ecs-task", "eks-pod", "lambda"


def is_kubectl_pods(doc: Any) -> bool:
    """``kubectl get pods -o json``: a List (or PodList) whose items are Pods."""
    if not isinstance(doc, dict) or doc.get("kind") not in ("List", "PodList"):
        return False
    items = doc.get("items")
    return isinstance(items, list) and all(
        isinstance(i, dict) and i.get("kind", "Pod") == "Pod" for i in items
    )


def _arn_parts(arn: str | None) -> tuple[str | None, str | None]:
    """(region, account) of an ARN."""
    parts = (arn or "").split(":")
    return (parts[3] or None, parts[4] or None) if len(parts) > 5 else (None, None)


def parse_ecs_tasks(doc: dict, src: str) -> list[dict]:
    """One row per (task, address) of an ``aws ecs describe-tasks`` response."""
    rows = []
    for task in doc.get("tasks") or []:
        arn = task.get("taskArn") or ""
        task_id = arn.rsplit("/", 1)[-1] if "/" in arn else None
        if not task_id:
            continue
        region, account = _arn_parts(arn)
        group = task.get("group") or ""
        base = {
            "workload_type": ECS_TASK,
            "workload_id": task_id,
            "cluster": (task.get("clusterArn") or "").rsplit("/", 1)[-1] or None,
            "service": group.split(":", 1)[1] if group.startswith("service:") else None,
            "namespace": None,
            "account_id": account,
            "vpc_id": None,
            "region": region,
            "source_file": src,
        }
        addresses: set[str] = set()
        eni_ids: set[str] = set()
        for att in task.get("attachments") or []:
            if att.get("type") != "ElasticNetworkInterface":
                continue
            details = {d.get("name"): d.get("value") for d in att.get("details") or []}
            if details.get("privateIPv4Address"):
                addresses.add(details["privateIPv4Address"])
            if details.get("networkInterfaceId"):
                eni_ids.add(details["networkInterfaceId"])
        for container in task.get("containers") or []:
            for ni in container.get("networkInterfaces") or []:
                for key in ("privateIpv4Address", "ipv6Address"):
                    if ni.get(key):
                        addresses.add(ni[key])
        for address in sorted(addresses):
            rows.append(base | {"address": address, "eni_id": None})
        for eni in sorted(eni_ids):  # resolved against describe-network-interfaces later
            rows.append(base | {"address": None, "eni_id": eni})
        if not addresses and not eni_ids:
            rows.append(base | {"address": None, "eni_id": None})
    return rows


def parse_kubectl_pods(doc: dict, src: str) -> list[dict]:
    """One row per (pod, pod address) of ``kubectl get pods -A -o json``.

    Pods on the host network (``spec.hostNetwork``) share their node's address: that address
    is the node's, not the pod's, and is left out (it would map every such pod and the node to
    one address).
    """
    rows = []
    for pod in doc.get("items") or []:
        meta, spec, status = (
            pod.get("metadata") or {},
            pod.get("spec") or {},
            pod.get("status") or {},
        )
        if not meta.get("name") or spec.get("hostNetwork"):
            continue
        base = {
            "workload_type": EKS_POD,
            "workload_id": meta["name"],
            "cluster": None,
            "service": spec.get("serviceAccountName"),
            "namespace": meta.get("namespace") or "default",
            "account_id": None,
            "vpc_id": None,
            "region": None,
            "source_file": src,
            "eni_id": None,
            "host_ip": status.get("hostIP"),
        }
        ips = {p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")}
        if status.get("podIP"):
            ips.add(status["podIP"])
        for address in sorted(ips):
            rows.append(base | {"address": address})
    return rows


def parse_lambda_functions(doc: dict, src: str) -> list[dict]:
    """One row per function of ``aws lambda list-functions``; ``vpc_id`` set when attached."""
    rows = []
    for fn in doc.get("Functions") or []:
        if not fn.get("FunctionName"):
            continue
        region, account = _arn_parts(fn.get("FunctionArn"))
        rows.append(
            {
                "address": None,
                "workload_type": LAMBDA,
                "workload_id": fn["FunctionName"],
                "cluster": None,
                "service": None,
                "namespace": None,
                "account_id": account,
                "vpc_id": (fn.get("VpcConfig") or {}).get("VpcId") or None,
                "region": region,
                "source_file": src,
                "eni_id": None,
            }
        )
    return rows
