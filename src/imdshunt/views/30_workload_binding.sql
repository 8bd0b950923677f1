-- Binding each container and function credential (ECS task, EKS Pod Identity, EKS IRSA,
-- Lambda) to where its workload runs, as 20_instance_binding.sql does for instances.
-- See docs/binding.md ("Containers and functions").
--
-- Evidence, as for instances:
--   * inventory: inventory_address (describe-network-interfaces lists every address of an
--     account's VPCs: instances, NAT gateways, task ENIs and their public IPs, Lambda ENIs),
--     inventory_workload (ecs describe-tasks, kubectl get pods, lambda list-functions: each
--     workload's addresses and VPC), inventory_vpce, org accounts;
--   * learned egress: the first AWS address a workload session is used from (within an hour of
--     its first call) is the workload's own. A task's session lives as long as the task and is
--     named after it, a pod's as long as its credential, so the first use is the workload's
--     own call in the normal case. An address that is some instance's or workload's own, or
--     that many sessions use, is the organisation's egress (a NAT gateway, a node).
-- Lambda outside a VPC calls from addresses Lambda shares between customers, so no address
-- says it is or is not the function: a function is bound by address only when inventory says
-- it is attached to a VPC (it then leaves through that VPC's NAT gateways or endpoints).

-- Each workload credential call group, with its egress path, address family, place, the
-- session it belongs to, and which inventory workload it is.
CREATE OR REPLACE VIEW workload_credential_call AS
SELECT
    c.*,
    CASE WHEN c.vpce_id IS NOT NULL THEN 'endpoint' ELSE 'public' END AS egress_path,
    CASE WHEN c.src_ip LIKE '%:%' THEN 6 ELSE 4 END AS ip_family,
    CASE
        WHEN c.vpce_id IS NOT NULL
            THEN 'vpce:' || coalesce(c.vpce_account_id, '?') || ':' || coalesce(c.region, '?')
                || ':' || c.src_ip
        WHEN c.network_kind IN ('aws', 'internet', 'allowlisted') THEN c.src_ip
    END AS place,
    coalesce(c.account_id, '') || '|' || coalesce(c.actor_arn, c.session_name, '')
        AS workload_session,
    -- the inventory_workload row this credential belongs to (IRSA names no pod: none)
    CASE c.credential_type
        WHEN 'ecs-task' THEN 'ecs-task'
        WHEN 'eks-pod-identity' THEN 'eks-pod'
        WHEN 'lambda' THEN 'lambda'
    END AS workload_type,
    CASE
        WHEN c.credential_type = 'eks-pod-identity' THEN c.vended_k8s_pod
        WHEN c.credential_type IN ('ecs-task', 'lambda') THEN c.session_name
    END AS workload_id,
    CASE WHEN c.credential_type = 'eks-pod-identity' THEN c.vended_k8s_namespace END
        AS workload_namespace,
    -- what the binding of a call depends on: evaluated once per distinct value, not per call
    coalesce(c.account_id, '') || '|' || coalesce(c.credential_type, '') || '|'
        || coalesce(c.actor_arn, c.session_name, '') || '|'
        || coalesce(c.vended_k8s_namespace, '') || '|' || coalesce(c.vended_k8s_pod, '') || '|'
        || coalesce(c.src_ip, '') || '|' || coalesce(c.vpce_id, '') || '|'
        || coalesce(c.vpce_account_id, '') || '|' || coalesce(c.region, '') AS bind_key
FROM credential_activity c
WHERE c.credential_type IN ('ecs-task', 'eks-pod-identity', 'eks-irsa', 'lambda')
  AND c.invoked_by IS NULL;

-- Learned own places: the first AWS address each workload session used, per address family,
-- "established" when used within an hour of the session's first call. Lambda is left out:
-- its shared addresses teach nothing about the function.
CREATE OR REPLACE VIEW workload_egress_learned AS
WITH session_start AS (
    SELECT workload_session, min(first_seen) AS session_first_seen
    FROM workload_credential_call
    GROUP BY workload_session
),
learnable AS (
    SELECT workload_session, ip_family, place, src_ip, first_seen
    FROM workload_credential_call
    WHERE egress_path = 'public'
      AND network_kind = 'aws'
      AND credential_type <> 'lambda'
),
first_use AS (
    SELECT workload_session, ip_family, min(first_seen) AS first_used
    FROM learnable
    GROUP BY workload_session, ip_family
),
learned AS (
    -- ties at the first instant break on the smallest place, the same on every engine
    SELECT
        u.workload_session,
        u.ip_family,
        min(l.place) AS place,
        arg_min(l.src_ip, l.place) AS src_ip,
        u.first_used
    FROM first_use u
    JOIN learnable l
      ON l.workload_session = u.workload_session
     AND l.ip_family = u.ip_family
     AND l.first_seen = u.first_used
    GROUP BY u.workload_session, u.ip_family, u.first_used
)
SELECT
    l.*,
    l.first_used <= s.session_first_seen + INTERVAL 1 HOUR AS established
FROM learned l
JOIN session_start s ON s.workload_session = l.workload_session;

-- How many workload sessions use each public place, and for how many it is their own.
CREATE OR REPLACE VIEW workload_egress_place AS
WITH used AS (
    SELECT place, count(DISTINCT workload_session) AS sessions_using
    FROM workload_credential_call
    WHERE place IS NOT NULL AND egress_path = 'public'
    GROUP BY place
),
own AS (
    SELECT place, count(*) AS sessions_own
    FROM workload_egress_learned
    WHERE established
    GROUP BY place
)
SELECT u.place, u.sessions_using, coalesce(o.sessions_own, 0) AS sessions_own
FROM used u
LEFT JOIN own o ON o.place = u.place;

-- What inventory and learning say about each distinct (workload session, place).
-- imdshunt: materialize workload_place_binding
CREATE OR REPLACE VIEW workload_place_binding AS
WITH t0 AS (
    SELECT
        bind_key,
        min(account_id) AS account_id,
        min(credential_type) AS credential_type,
        min(workload_session) AS workload_session,
        min(workload_type) AS workload_type,
        min(workload_id) AS workload_id,
        min(workload_namespace) AS workload_namespace,
        min(ip_family) AS ip_family,
        min(egress_path) AS egress_path,
        min(place) AS place,
        min(src_ip) AS src_ip,
        min(vpce_id) AS vpce_id
    FROM workload_credential_call
    GROUP BY bind_key
),
endpoint_vpc AS (
    SELECT vpce_id, min(vpc_id) AS vpc_id FROM inventory_vpce GROUP BY vpce_id
),
-- describe-network-interfaces lists every address of an account's VPCs: with it, an AWS
-- address that is none of them is not the account's
covered AS (
    SELECT DISTINCT account_id FROM inventory_address
    WHERE kind = 'eni' AND account_id IS NOT NULL
),
org_address AS (
    SELECT address, min(kind) AS kind FROM inventory_address GROUP BY address
),
workload_vpc AS (
    SELECT
        workload_type,
        workload_id,
        coalesce(namespace, '') AS namespace,
        account_id,
        min(vpc_id) AS vpc_id,
        count(DISTINCT vpc_id) AS vpcs
    FROM inventory_workload
    WHERE workload_id IS NOT NULL
    GROUP BY workload_type, workload_id, coalesce(namespace, ''), account_id
),
t AS (
    SELECT
        t0.*,
        ev.vpc_id AS vpce_vpc,
        -- a workload the inventory lists (a function: with or without a VPC)
        wv.workload_id IS NOT NULL AS inv_knows_workload,
        CASE WHEN wv.vpcs = 1 THEN wv.vpc_id END AS workload_vpc
    FROM t0
    LEFT JOIN endpoint_vpc ev ON ev.vpce_id = t0.vpce_id
    LEFT JOIN workload_vpc wv
      ON wv.workload_type = t0.workload_type
     AND wv.workload_id = t0.workload_id
     AND wv.namespace = coalesce(t0.workload_namespace, '')
     AND coalesce(wv.account_id = t0.account_id, true)
)
SELECT
    t.bind_key,
    -- inventory
    cov.account_id IS NOT NULL AS inv_covers_account,
    CASE WHEN t.egress_path = 'public' THEN oa.kind END AS inv_org_address_kind,
    coalesce(t.inv_knows_workload, false) AS inv_knows_workload,
    t.workload_vpc AS inv_workload_vpc,
    t.vpce_vpc AS inv_vpce_vpc,
    -- learned
    lo.place AS learned_own_place,
    lo.src_ip AS learned_own_ip,
    coalesce(lo.established, false) AS learned_own_established,
    coalesce(wp.sessions_using, 0) + coalesce(ep.instances_using, 0) AS place_credentials_using,
    coalesce(wp.sessions_own, 0) + coalesce(ep.instances_own, 0) AS place_credentials_own
FROM t
LEFT JOIN covered cov ON cov.account_id = t.account_id
LEFT JOIN org_address oa ON oa.address = t.src_ip
LEFT JOIN workload_egress_learned lo
    ON lo.workload_session = t.workload_session
   AND lo.ip_family = t.ip_family
   AND t.egress_path = 'public'
LEFT JOIN workload_egress_place wp ON wp.place = t.place AND t.egress_path = 'public'
LEFT JOIN egress_place ep ON ep.place = t.place;

-- Every workload credential call group with what inventory and learning say about its place.
CREATE OR REPLACE VIEW workload_call_binding AS
SELECT
    c.*,
    pb.inv_covers_account,
    pb.inv_org_address_kind,
    pb.inv_knows_workload,
    pb.inv_workload_vpc,
    pb.inv_vpce_vpc,
    pb.learned_own_place,
    pb.learned_own_ip,
    pb.learned_own_established,
    pb.place_credentials_using,
    pb.place_credentials_own
FROM workload_credential_call c
JOIN workload_place_binding pb ON pb.bind_key = c.bind_key;
