-- Binding each EC2 instance credential to the instance it was issued to.
--
-- EC2 names an instance-profile session after the instance (roleSessionName = instance id)
-- and vends its keys with an sts:AssumeRole by ec2.amazonaws.com, so every call carries the
-- instance it belongs to. Where that instance really is comes from two kinds of evidence:
--   * inventory (describe-instances, NAT gateways, Elastic IPs, ENIs, VPC endpoints,
--     Organizations accounts): the tables inventory_address, inventory_vpce, org_account;
--   * learned egress, when no inventory is given: the address an instance's credential is
--     first used from, from AWS space or through a VPC endpoint, is the instance's own
--     (Netflix's first-use method), one per egress path (public or through an endpoint)
--     and address family (IPv4, IPv6).
-- An address is the same "place" for every instance only where it is globally unique: a
-- public address is itself; a private address seen through a VPC endpoint is scoped by the
-- endpoint's account and the region (private ranges repeat across VPCs).

-- Each EC2 instance credential call group, with its egress path, address family and place.
CREATE OR REPLACE VIEW ec2_credential_call AS
SELECT
    c.*,
    lower(c.session_name) AS instance_id,
    CASE WHEN c.vpce_id IS NOT NULL THEN 'endpoint' ELSE 'public' END AS egress_path,
    CASE WHEN c.src_ip LIKE '%:%' THEN 6 ELSE 4 END AS ip_family,
    CASE
        WHEN c.vpce_id IS NOT NULL
            THEN 'vpce:' || coalesce(c.vpce_account_id, '?') || ':' || coalesce(c.region, '?')
                || ':' || c.src_ip
        WHEN c.network_kind IN ('aws', 'internet', 'allowlisted') THEN c.src_ip
    END AS place,
    -- what the binding of a call depends on: evaluated once per distinct value, not per call
    coalesce(c.account_id, '') || '|' || lower(coalesce(c.session_name, '')) || '|'
        || coalesce(c.src_ip, '') || '|' || coalesce(c.vpce_id, '') || '|'
        || coalesce(c.vpce_account_id, '') || '|' || coalesce(c.region, '') AS bind_key
FROM credential_activity c
WHERE c.credential_type = 'ec2-instance'
  AND c.invoked_by IS NULL;

-- Which ASIA key belongs to which instance, role and issue time, and on what evidence.
CREATE OR REPLACE VIEW ec2_key_binding AS
SELECT
    access_key_id,
    min(account_id) AS account_id,
    min(instance_id) AS instance_id,
    min(role_name) AS role_name,
    min(key_issued_at) AS key_issued_at,
    min(session_created) AS session_created,
    CASE
        WHEN count(key_issued_at) > 0 THEN 'vending AssumeRole by ec2.amazonaws.com'
        ELSE 'session name (no vending event in these logs)'
    END AS binding_evidence,
    min(first_seen) AS first_used,
    max(last_seen) AS last_used
FROM ec2_credential_call
WHERE access_key_id IS NOT NULL
GROUP BY access_key_id;

-- Learned own places: the first place each instance used, per egress path and address family.
-- Only AWS space and VPC endpoints teach us anything: an instance never egresses from the
-- internet, so a first use from there is no evidence of where the instance is.
-- A learned place is "established" when the instance used that path within an hour of its first
-- appearance in the logs. Only established places make an address someone's own for others (a
-- thief who first takes a path late, e.g. a victim's first ever endpoint call made from another
-- instance, must not make that instance's address look shared). The instance's own first place
-- is always exempt for the instance itself, established or not.
CREATE OR REPLACE VIEW instance_egress_learned AS
WITH instance_start AS (
    SELECT account_id, instance_id, min(first_seen) AS instance_first_seen
    FROM ec2_credential_call
    GROUP BY account_id, instance_id
),
learnable AS (
    SELECT account_id, instance_id, egress_path, ip_family, place, src_ip, first_seen
    FROM ec2_credential_call
    WHERE place IS NOT NULL
      AND (egress_path = 'endpoint' OR network_kind = 'aws')
),
first_use AS (
    SELECT account_id, instance_id, egress_path, ip_family, min(first_seen) AS first_used
    FROM learnable
    GROUP BY account_id, instance_id, egress_path, ip_family
),
learned AS (
    -- ties at the first instant break on the smallest place, the same on every engine
    SELECT
        u.account_id,
        u.instance_id,
        u.egress_path,
        u.ip_family,
        min(l.place) AS place,
        arg_min(l.src_ip, l.place) AS src_ip,
        u.first_used
    FROM first_use u
    JOIN learnable l
      ON l.account_id = u.account_id
     AND l.instance_id = u.instance_id
     AND l.egress_path = u.egress_path
     AND l.ip_family = u.ip_family
     AND l.first_seen = u.first_used
    GROUP BY u.account_id, u.instance_id, u.egress_path, u.ip_family, u.first_used
)
SELECT
    l.*,
    l.first_used <= f.instance_first_seen + INTERVAL 1 HOUR AS established
FROM learned l
JOIN instance_start f ON f.account_id = l.account_id AND f.instance_id = l.instance_id;

-- How many instances use each place, and for how many it is their own established place.
-- A place that is several instances' own, or that many instances use, is shared egress
-- (a NAT gateway); a place that is exactly one instance's own identifies that instance.
CREATE OR REPLACE VIEW egress_place AS
WITH used AS (
    SELECT place, count(DISTINCT account_id || '/' || instance_id) AS instances_using
    FROM ec2_credential_call
    WHERE place IS NOT NULL
    GROUP BY place
),
own AS (
    SELECT
        place,
        count(*) AS instances_own,
        min(instance_id) AS owner_instance,
        min(account_id) AS owner_account
    FROM instance_egress_learned
    WHERE established
    GROUP BY place
)
SELECT
    u.place,
    u.instances_using,
    coalesce(o.instances_own, 0) AS instances_own,
    CASE WHEN o.instances_own = 1 THEN o.owner_instance END AS learned_owner_instance,
    CASE WHEN o.instances_own = 1 THEN o.owner_account END AS learned_owner_account
FROM used u
LEFT JOIN own o ON o.place = u.place;

-- Accounts whose trails recorded events in these logs.
-- imdshunt: materialize log_account
CREATE OR REPLACE VIEW log_account AS
SELECT DISTINCT account_id FROM api_activity WHERE account_id IS NOT NULL;

-- Accounts known to be the organisation's, and on what evidence.
CREATE OR REPLACE VIEW org_account_known AS
SELECT DISTINCT account_id, 'org-accounts' AS evidence FROM org_account
UNION
SELECT DISTINCT account_id, 'inventory' AS evidence
FROM inventory_address WHERE account_id IS NOT NULL
UNION
SELECT DISTINCT account_id, 'inventory' AS evidence
FROM inventory_vpce WHERE account_id IS NOT NULL;

-- What inventory and learning say about each distinct (instance, place) a credential was used
-- from; ec2_call_binding spreads it over the calls. Few rows, read by every binding detection:
-- imdshunt: materialize ec2_place_binding
CREATE OR REPLACE VIEW ec2_place_binding AS
-- Joins only (no correlated subqueries), so that every engine plans it the same way.
WITH t0 AS (
    SELECT
        bind_key,
        min(account_id) AS account_id,
        min(instance_id) AS instance_id,
        min(egress_path) AS egress_path,
        min(ip_family) AS ip_family,
        min(place) AS place,
        min(src_ip) AS src_ip,
        min(vpce_id) AS vpce_id,
        min(vpce_account_id) AS vpce_account_id
    FROM ec2_credential_call
    GROUP BY bind_key
),
endpoint_vpc AS (
    SELECT vpce_id, min(vpc_id) AS vpc_id FROM inventory_vpce GROUP BY vpce_id
),
t AS (
    SELECT t0.*, ev.vpc_id AS vpce_vpc
    FROM t0
    LEFT JOIN endpoint_vpc ev ON ev.vpce_id = t0.vpce_id
),
covered AS (
    SELECT DISTINCT account_id FROM inventory_address WHERE account_id IS NOT NULL
),
owned AS (
    SELECT DISTINCT address, instance_id FROM inventory_address WHERE instance_id IS NOT NULL
),
org_address AS (
    SELECT address, min(kind) AS kind FROM inventory_address GROUP BY address
),
instance_vpc AS (
    SELECT instance_id, min(vpc_id) AS vpc_id
    FROM inventory_address
    WHERE instance_id IS NOT NULL
    GROUP BY instance_id
),
other_instance AS (
    -- another instance of the org that holds this address: public path, its public address;
    -- endpoint path, its private (or IPv6) address in the endpoint's VPC (else account)
    SELECT t.bind_key, min(ia.instance_id) AS instance_id
    FROM t
    JOIN inventory_address ia ON ia.address = t.src_ip
    WHERE ia.instance_id IS NOT NULL
      AND ia.instance_id <> t.instance_id
      AND (
          (t.egress_path = 'public'
              AND ia.kind IN ('instance-public', 'instance-ipv6', 'elastic-ip', 'eni'))
          OR (t.egress_path = 'endpoint'
              AND ia.kind IN ('instance-private', 'instance-ipv6', 'eni')
              AND coalesce(ia.vpc_id = t.vpce_vpc, ia.account_id = t.vpce_account_id, false))
      )
    GROUP BY t.bind_key
)
SELECT
    t.bind_key,
    -- inventory
    cov.account_id IS NOT NULL AS inv_covers_account,
    own.address IS NOT NULL AS inv_own_address,
    CASE WHEN t.egress_path = 'public' THEN oa.kind END AS inv_org_address_kind,
    oi.instance_id AS inv_other_instance,
    iv.vpc_id AS inv_instance_vpc,
    t.vpce_vpc AS inv_vpce_vpc,
    -- learned
    lo.place AS learned_own_place,
    lo.src_ip AS learned_own_ip,
    coalesce(lo.established, false) AS learned_own_established,
    ep.instances_using AS place_instances_using,
    ep.instances_own AS place_instances_own,
    ep.learned_owner_instance AS place_learned_owner
FROM t
LEFT JOIN covered cov ON cov.account_id = t.account_id
LEFT JOIN owned own ON own.address = t.src_ip AND own.instance_id = t.instance_id
LEFT JOIN org_address oa ON oa.address = t.src_ip
LEFT JOIN other_instance oi ON oi.bind_key = t.bind_key
LEFT JOIN instance_vpc iv ON iv.instance_id = t.instance_id
LEFT JOIN instance_egress_learned lo
    ON lo.account_id = t.account_id
   AND lo.instance_id = t.instance_id
   AND lo.egress_path = t.egress_path
   AND lo.ip_family = t.ip_family
LEFT JOIN egress_place ep ON ep.place = t.place;

-- Every EC2 instance credential call group with what inventory and learning say about its place.
CREATE OR REPLACE VIEW ec2_call_binding AS
SELECT
    c.*,
    pb.inv_covers_account,
    pb.inv_own_address,
    pb.inv_org_address_kind,
    pb.inv_other_instance,
    pb.inv_instance_vpc,
    pb.inv_vpce_vpc,
    pb.learned_own_place,
    pb.learned_own_ip,
    pb.learned_own_established,
    pb.place_instances_using,
    pb.place_instances_own,
    pb.place_learned_owner
FROM ec2_credential_call c
JOIN ec2_place_binding pb ON pb.bind_key = c.bind_key;
