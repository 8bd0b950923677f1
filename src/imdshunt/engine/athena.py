"""Amazon Athena engine: the detections run where the CloudTrail bucket lies, nothing downloaded.

Flow (:func:`imdshunt.pipeline.run` drives it, as it drives every engine; the engine
``queries_in_place``):

1. :meth:`AthenaEngine.prepare` creates (or reuses) the database, then this run's CloudTrail
   table with *partition projection* over the bucket layout
   ``AWSLogs/[o-org/]<account>/CloudTrail/<region>/YYYY/MM/DD/``
   (https://docs.aws.amazon.com/athena/latest/ug/create-cloudtrail-table-partition-projection.html),
   then the canonical ``api_activity`` VIEW over it, in Trino SQL, restricted to the requested
   window *by the partition columns* (``account``, ``region``, ``day``): every later query reads
   that view, so none can scan outside the window. The view de-duplicates repeated deliveries by
   ``eventID`` as the other engines do.
2. Address classification: the distinct ``src_ip`` of the window are fetched and classified by
   the same Python classifier as every other engine, and the result is uploaded to S3 as an
   ``ip_class`` table. Why not a ranges table joined with Trino's ``contains(cidr, ip)``: the
   classifier's rules (operator allowlist first, then special and private ranges, then the most
   specific AWS prefix with service names preferred over ``AMAZON``, service-name sources such as
   ``ec2.amazonaws.com``, IPv4-mapped IPv6) would have to be re-implemented in SQL and kept
   identical; a range join is also a cross join of every address with ~10k prefixes. Distinct
   addresses are few (thousands), so shipping the answer is cheap and identical by construction.
   The cost is one extra scan of the window (``SELECT DISTINCT src_ip``), reported like the rest.
   Uploaded tables are JSON lines (OpenX JsonSerDe), not CSV: typed booleans and arrays survive,
   and values with commas or quotes (URLs in ``url_class``) need no escaping rules.
3. Shared views (``views/NN_*.sql``) and detections are transpiled to Trino
   (:func:`imdshunt.engine.portable.transpile`) and run with ``StartQueryExecution``, polled with
   ``GetQueryExecution`` and paged with ``GetQueryResults``. Bytes scanned are summed and priced at
   $5 per TB (https://aws.amazon.com/athena/pricing/, 10 MB minimum per query).

Athena renders arrays in ``GetQueryResults`` as ``[a, b]``, which is ambiguous when elements hold
commas; detection output columns that are arrays are therefore wrapped in
``json_format(CAST(... AS JSON))`` and decoded here.

Runs are isolated. Every table and view a run creates is named after the run
(``imdshunt_<run id>__<name>``, see :func:`isolate`), so two hunts in one database at once (a
scheduled run and an analyst's, two teams) never read or replace each other's objects. That
includes the CloudTrail table: its projection enumerates the run's accounts and regions, so a
table shared with ``IF NOT EXISTS`` would hand a later run with other accounts the first run's
projection, and silently no rows. Only the database is shared. :meth:`AthenaEngine.close` drops
every object the run created and deletes its uploads (``<output>imdshunt-tables/<run id>/``),
after a failure too; use the engine as a context manager or close it. Query result files that
Athena itself writes under the output location are left to the bucket's lifecycle rules (a
workgroup may enforce their location). A run killed before it could close leaves objects whose
names carry its start time (the run id begins ``YYYYMMDDHHMMSS``), so they are easy to find.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import sqlglot
import sqlglot.expressions as exp

from imdshunt.engine.base import Engine, EngineOptions
from imdshunt.engine.duckdb import view_files
from imdshunt.engine.portable import parse_statements, transpile
from imdshunt.errors import EngineError, UsageError
from imdshunt.schema import IP_CLASS, LINEAGE_EVENT_NAMES
from imdshunt.sources.cloudtrail import VENDING_EVENTS
from imdshunt.sources.s3 import parse_s3_uri
from imdshunt.window import HuntWindow

#: Athena's price per TB scanned (US regions), https://aws.amazon.com/athena/pricing/
PRICE_PER_TB = 5.0
TB = 1024**4
MIN_BILLED_BYTES = 10 * 1024**2

#: Regions a projected table enumerates when the caller names none.
DEFAULT_REGIONS = (
    "af-south-1 ap-east-1 ap-northeast-1 ap-northeast-2 ap-northeast-3 ap-south-1 ap-south-2 "
    "ap-southeast-1 ap-southeast-2 ap-southeast-3 ap-southeast-4 ca-central-1 ca-west-1 "
    "eu-central-1 eu-central-2 eu-north-1 eu-south-1 eu-south-2 eu-west-1 eu-west-2 eu-west-3 "
    "il-central-1 me-central-1 me-south-1 sa-east-1 us-east-1 us-east-2 us-west-1 us-west-2"
).split()


@dataclass(frozen=True)
class TrailLocation:
    """Where the trail delivers: ``s3://bucket/[prefix/]AWSLogs/[o-org/]``."""

    bucket: str
    prefix: str = ""
    org_id: str | None = None

    @classmethod
    def parse(cls, uri: str, org_id: str | None = None) -> TrailLocation:
        bucket, prefix = parse_s3_uri(uri)
        prefix = prefix.strip("/")
        parts = prefix.split("/") if prefix else []
        if "AWSLogs" in parts:
            i = parts.index("AWSLogs")
            if org_id is None and len(parts) > i + 1 and parts[i + 1].startswith("o-"):
                org_id = parts[i + 1]
            parts = parts[:i]
        return cls(bucket, "/".join(parts), org_id)

    @property
    def root(self) -> str:
        base = f"s3://{self.bucket}/" + (f"{self.prefix}/" if self.prefix else "") + "AWSLogs/"
        return base + (f"{self.org_id}/" if self.org_id else "")


def cloudtrail_ddl(
    location: TrailLocation,
    *,
    table: str = "cloudtrail",
    accounts: Iterable[str] | None = None,
    regions: Iterable[str] | None = None,
    start: str = "2013/11/01",
) -> str:
    """CREATE EXTERNAL TABLE for the trail, partitioned by account, region and day (projected).

    Columns follow AWS's CloudTrail table (link above) with the fields the canonical view reads
    added (``ec2roledelivery``, ``sourceidentity``, ``vpcendpointaccountid``). ``account`` is an
    ``enum`` projection when the accounts are known and ``injected`` otherwise (every query must
    then name its accounts, which the canonical view does).
    """
    accts = sorted(set(accounts or ()))
    regs = sorted(set(regions or DEFAULT_REGIONS))
    if accts:
        account_props = (
            "  'projection.account.type'='enum',\n"
            f"  'projection.account.values'='{','.join(accts)}',\n"
        )
    else:
        account_props = "  'projection.account.type'='injected',\n"
    return f"""CREATE EXTERNAL TABLE IF NOT EXISTS {table} (
  eventversion STRING,
  useridentity STRUCT<
    type: STRING, principalid: STRING, arn: STRING, accountid: STRING, invokedby: STRING,
    accesskeyid: STRING, username: STRING,
    sessioncontext: STRUCT<
      attributes: STRUCT<mfaauthenticated: STRING, creationdate: STRING>,
      sessionissuer: STRUCT<
        type: STRING, principalid: STRING, arn: STRING, accountid: STRING, username: STRING>,
      ec2roledelivery: STRING,
      sourceidentity: STRING,
      webidfederationdata: STRUCT<federatedprovider: STRING, attributes: MAP<STRING, STRING>>>>,
  eventtime STRING,
  eventsource STRING,
  eventname STRING,
  awsregion STRING,
  sourceipaddress STRING,
  useragent STRING,
  errorcode STRING,
  errormessage STRING,
  requestparameters STRING,
  responseelements STRING,
  additionaleventdata STRING,
  requestid STRING,
  eventid STRING,
  readonly STRING,
  eventtype STRING,
  apiversion STRING,
  recipientaccountid STRING,
  sharedeventid STRING,
  vpcendpointid STRING,
  vpcendpointaccountid STRING
)
PARTITIONED BY (account STRING, region STRING, day STRING)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION '{location.root}'
TBLPROPERTIES (
  'projection.enabled'='true',
{account_props}  'projection.region.type'='enum',
  'projection.region.values'='{",".join(regs)}',
  'projection.day.type'='date',
  'projection.day.format'='yyyy/MM/dd',
  'projection.day.range'='{start},NOW',
  'projection.day.interval'='1',
  'projection.day.interval.unit'='DAYS',
  'storage.location.template'='{location.root}${{account}}/CloudTrail/${{region}}/${{day}}'
)"""


def _tag(name: str) -> str:
    return (
        "json_extract_scalar(element_at(filter(CAST(json_extract(requestparameters, '$.tags') "
        f"AS ARRAY(JSON)), t -> json_extract_scalar(t, '$.key') = '{name}'), 1), '$.value')"
    )


def _vend(expr: str) -> str:
    events = ", ".join(f"'{e}'" for e in sorted(VENDING_EVENTS))
    return f"CASE WHEN eventname IN ({events}) THEN {expr} END"


def _lineage(expr: str) -> str:
    events = ", ".join(f"'{e}'" for e in sorted(LINEAGE_EVENT_NAMES))
    return f"CASE WHEN eventname IN ({events}) THEN {expr} END"


#: CloudTrail fields -> canonical api_activity columns, in schema order (Trino SQL). Mirrors
#: :func:`imdshunt.sources.cloudtrail._row`.
CANONICAL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_time", "from_iso8601_timestamp(eventtime)"),
    ("event_id", "eventid"),
    ("event_type", "eventtype"),
    ("event_source", "eventsource"),
    ("event_name", "eventname"),
    ("account_id", "coalesce(recipientaccountid, useridentity.accountid)"),
    ("region", "awsregion"),
    ("actor_type", "useridentity.type"),
    ("actor_arn", "useridentity.arn"),
    ("actor_account_id", "useridentity.accountid"),
    ("principal_id", "useridentity.principalid"),
    ("access_key_id", "useridentity.accesskeyid"),
    (
        "role_name",
        "coalesce(useridentity.sessioncontext.sessionissuer.username, "
        "regexp_extract(useridentity.arn, ':assumed-role/([^/]+)/', 1))",
    ),
    ("role_arn", "useridentity.sessioncontext.sessionissuer.arn"),
    ("session_name", "regexp_extract(useridentity.arn, ':assumed-role/[^/]+/(.*)$', 1)"),
    (
        "session_created",
        "try(from_iso8601_timestamp(useridentity.sessioncontext.attributes.creationdate))",
    ),
    ("role_delivery", "useridentity.sessioncontext.ec2roledelivery"),
    ("web_id_provider", "useridentity.sessioncontext.webidfederationdata.federatedprovider"),
    ("source_identity", "useridentity.sessioncontext.sourceidentity"),
    ("invoked_by", "useridentity.invokedby"),
    ("src_ip", "sourceipaddress"),
    ("user_agent", "useragent"),
    ("vpce_id", "vpcendpointid"),
    ("vpce_account_id", "vpcendpointaccountid"),
    ("error_code", "errorcode"),
    ("req_role_arn", _vend("json_extract_scalar(requestparameters, '$.roleArn')")),
    ("req_session_name", _vend("json_extract_scalar(requestparameters, '$.roleSessionName')")),
    (
        "resp_access_key_id",
        _vend("json_extract_scalar(responseelements, '$.credentials.accessKeyId')"),
    ),
    (
        "resp_assumed_role_arn",
        _vend("json_extract_scalar(responseelements, '$.assumedRoleUser.arn')"),
    ),
    ("resp_expiration", _vend("json_extract_scalar(responseelements, '$.credentials.expiration')")),
    ("eks_cluster", _vend(_tag("eks-cluster-name"))),
    ("k8s_namespace", _vend(_tag("kubernetes-namespace"))),
    ("k8s_service_account", _vend(_tag("kubernetes-service-account"))),
    ("k8s_pod", _vend(_tag("kubernetes-pod-name"))),
    ("resp_web_id_provider", _vend("json_extract_scalar(responseelements, '$.provider')")),
    (
        "resp_web_id_subject",
        _vend("json_extract_scalar(responseelements, '$.subjectFromWebIdentityToken')"),
    ),
    # The CloudTrail table keeps both as JSON text already (see LINEAGE_EVENTS).
    ("request_parameters", _lineage("requestparameters")),
    ("response_elements", _lineage("responseelements")),
    ("source_file", '"$path"'),
    ("source_record", "CAST(NULL AS INTEGER)"),
)


def window_predicate(key_filter: HuntWindow | None) -> str:
    """Partition-column predicate for the window (days inclusive; accounts; regions)."""
    f = key_filter or HuntWindow()
    if f.since is None or f.until is None:
        raise UsageError("Athena needs a bounded window: give --since and --until")
    if f.until < f.since:
        raise UsageError("--until is before --since")
    preds = [f"day BETWEEN '{f.since:%Y/%m/%d}' AND '{f.until:%Y/%m/%d}'"]
    if f.accounts:
        preds.append("account IN (" + ", ".join(f"'{a}'" for a in sorted(f.accounts)) + ")")
    if f.regions:
        preds.append("region IN (" + ", ".join(f"'{r}'" for r in sorted(f.regions)) + ")")
    return " AND ".join(preds)


def api_activity_view(
    key_filter: HuntWindow | None, *, table: str = "cloudtrail", name: str = "api_activity"
) -> str:
    """The canonical ``api_activity`` view over the raw table, restricted to the window."""
    cols = ",\n    ".join(f"{expr} AS {col}" for col, expr in CANONICAL_COLUMNS)
    return f"""CREATE OR REPLACE VIEW {name} AS
SELECT {", ".join(c for c, _ in CANONICAL_COLUMNS)}
FROM (
  SELECT
    {cols},
    row_number() OVER (PARTITION BY coalesce(eventid, "$path") ORDER BY "$path") AS _rn
  FROM {table}
  WHERE {window_predicate(key_filter)}
)
WHERE _rn = 1"""


def new_run_id() -> str:
    """A run id that sorts by start time (UTC) and is unique: ``YYYYMMDDHHMMSS_<8 hex>``."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}_{uuid.uuid4().hex[:8]}"


def run_prefix(run_id: str) -> str:
    """What every table and view of run ``run_id`` is named with (Glue names are lowercase)."""
    return f"imdshunt_{run_id}__".lower()


#: CREATE kinds whose target is no table or view of a run.
_SHARED_KINDS = frozenset({"DATABASE", "SCHEMA"})


def isolate(tree: exp.Expression, prefix: str) -> exp.Expression:
    """A copy of ``tree`` with every table and view it names given the run's ``prefix``.

    Athena has no per-query schema search path, so a run's own objects are reached by name.
    The names are rewritten on the parse tree, not by string replacement: table names occur
    inside other names (``api_activity`` in ``api_activity_dedup``), in string literals and
    comments, and as CTE names that must keep theirs; only the parsed statement knows which
    identifiers name a table. A renamed table read without an alias gets its old name as alias,
    so columns qualified with it (``ip_class.network``) still resolve. Names already carrying
    ``prefix`` are left as they are.
    """
    tree = tree.copy()
    if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() in _SHARED_KINDS:
        return tree
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        name = table.name
        if not name or name in ctes or name.startswith(prefix):
            continue
        is_target = isinstance(table.parent, exp.Create | exp.Drop | exp.Schema)
        if not is_target and not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        table.set("this", exp.to_identifier(prefix + name))
    return tree


def athena_sql_for_detection(sql: str, *, prefix: str | None = None) -> tuple[str, set[str]]:
    """Trino SQL of a detection, with array output columns as JSON text; returns the names.

    With ``prefix`` every table it reads is the run's own (:func:`isolate`)."""
    tree = sqlglot.parse_one(sql, read="trino")
    if prefix is not None:
        tree = isolate(tree, prefix)
    json_cols: set[str] = set()
    if isinstance(tree, exp.Select):
        new = []
        for proj in tree.expressions:
            inner = proj.this if isinstance(proj, exp.Alias) else proj
            if _is_array(inner):
                name = proj.alias_or_name
                json_cols.add(name)
                wrapped = exp.func(
                    "json_format", exp.Cast(this=inner.copy(), to=exp.DataType.build("JSON"))
                )
                proj = exp.alias_(wrapped, name)
            new.append(proj)
        tree.set("expressions", new)
    return tree.sql(dialect="trino", pretty=True), json_cols


_ARRAY_FUNCS = {"slice", "transform", "filter", "array_distinct", "array_remove", "concat"}


def _is_array(node: exp.Expression) -> bool:
    if isinstance(
        node,
        exp.Array | exp.ArrayAgg | exp.ArraySort | exp.ArraySlice | exp.Transform | exp.ArrayFilter,
    ):
        return True
    if isinstance(node, exp.Filter):
        return _is_array(node.this)
    if isinstance(node, exp.Anonymous) and node.name.lower() in _ARRAY_FUNCS:
        return node.name.lower() != "concat" or any(_is_array(a) for a in node.expressions)
    return False


@dataclass
class QueryRecord:
    sql: str
    query_id: str
    state: str
    bytes_scanned: int
    label: str


@dataclass
class AthenaEngine(Engine):
    """Runs the views and detections on Athena. Same interface as :class:`DuckDBEngine`.

    ``trail`` is the bucket (``s3://bucket/[prefix/]AWSLogs/[o-org/]``); ``output`` the query
    results location (``s3://...``), also used for uploaded reference tables under
    ``<output>imdshunt-tables/<run id>/``. ``session`` is a :class:`boto3.Session` (default: the
    standard credential chain); clients are made on first use, never at import. ``table`` is
    the CloudTrail table's name before the run's prefix. Every table and view is this run's
    own, named with :attr:`prefix`; :meth:`close` drops them and deletes the uploads (see the
    module docstring), so use the engine as a context manager or close it, on failure too.
    """

    trail: str
    output: str
    database: str = "imdshunt"
    table: str = "cloudtrail"
    workgroup: str | None = None
    session: Any = None
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    poll_seconds: float = 1.0
    timeout_seconds: float = 1800.0
    name: ClassVar[str] = "athena"
    dialect: ClassVar[str] = "trino"
    queries_in_place: ClassVar[bool] = True
    inlines_keys: ClassVar[bool] = True
    kinds: ClassVar[tuple[str, ...]] = ("credential",)
    run_id: str = field(default_factory=new_run_id)
    history: list[QueryRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    duplicate_records: int = 0
    #: Names (before the prefix) of the tables and views the run holds.
    _tables: set[str] = field(default_factory=set)
    #: (``TABLE``/``VIEW``, full name) of everything the run created, in creation order.
    _created: list[tuple[str, str]] = field(default_factory=list)
    #: (bucket, key) of every object the run uploaded.
    _uploads: list[tuple[str, str]] = field(default_factory=list)
    _views_ready: bool = False
    _clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The run id becomes part of unquoted Glue names: lowercase letters, digits, "_".
        if not re.fullmatch(r"[a-z0-9_]{1,64}", self.run_id):
            raise UsageError(f"Athena run id {self.run_id!r}: use a-z, 0-9 and _ only")

    @property
    def prefix(self) -> str:
        """The prefix of every table and view this run creates."""
        return run_prefix(self.run_id)

    def object_name(self, name: str) -> str:
        """This run's name for the table or view ``name``."""
        return self.prefix + name

    def _created_object(self, kind: str, name: str) -> str:
        """Remember this run's object ``name`` for :meth:`close` (before its CREATE starts: a
        CREATE that fails or times out may still have made it); returns its full name."""
        full = self.object_name(name)
        if (kind, full) not in self._created:
            self._created.append((kind, full))
        return full

    @classmethod
    def from_options(cls, options: EngineOptions) -> AthenaEngine:
        """The CLI's Athena: one ``s3://`` trail URI (PATHS) and a results location."""
        if len(options.paths) != 1 or not str(options.paths[0]).startswith("s3://"):
            raise UsageError(f"--engine {cls.name} takes one s3:// trail URI")
        if not options.athena_output:
            raise UsageError(f"--engine {cls.name} needs --athena-output s3://bucket/prefix/")
        return cls(
            trail=str(options.paths[0]),
            output=options.athena_output,
            database=options.athena_database,
            workgroup=options.athena_workgroup,
            accounts=options.accounts,
            regions=options.regions,
        )

    @classmethod
    def view_files(cls) -> list[Path]:
        """The ``views/NN_*.sql``: the canonical view made in :meth:`prepare` de-duplicates."""
        return view_files()

    @classmethod
    def as_sent(cls, sql: str) -> str:
        """Array output columns as JSON text (:func:`athena_sql_for_detection`)."""
        return athena_sql_for_detection(sql)[0]

    # -- clients and costs -----------------------------------------------------------------
    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            self._clients[service] = (self.session or boto3.Session()).client(service)
        return self._clients[service]

    @property
    def bytes_scanned(self) -> int:
        return sum(q.bytes_scanned for q in self.history)

    @property
    def cost_usd(self) -> float:
        """Estimated cost: $5/TB, each query billed at least 10 MB (DDL is free)."""
        billed = sum(
            max(q.bytes_scanned, MIN_BILLED_BYTES) for q in self.history if q.bytes_scanned
        )
        return billed / TB * PRICE_PER_TB

    def cost_summary(self) -> str:
        return (
            f"Athena: {len(self.history)} queries, {self.bytes_scanned / 1024**3:.3f} GiB "
            f"scanned, about ${self.cost_usd:.4f}"
        )

    # -- running queries -------------------------------------------------------------------
    def execute(self, sql: str, *, label: str = "query") -> str:
        """Start a query, wait for it, record its statistics; returns its execution id."""
        athena = self._client("athena")
        kwargs: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database},
            "ResultConfiguration": {"OutputLocation": self.output},
        }
        if self.workgroup:
            kwargs["WorkGroup"] = self.workgroup
        if sql.lstrip().upper().startswith("CREATE DATABASE"):
            kwargs.pop("QueryExecutionContext")
        try:
            qid = athena.start_query_execution(**kwargs)["QueryExecutionId"]
        except Exception as exc:
            raise EngineError(f"{label}: cannot start Athena query: {exc}") from exc
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            q = athena.get_query_execution(QueryExecutionId=qid)["QueryExecution"]
            state = q["Status"]["State"]
            if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
                break
            if time.monotonic() > deadline:
                athena.stop_query_execution(QueryExecutionId=qid)
                raise EngineError(f"{label}: Athena query {qid} timed out")
            time.sleep(self.poll_seconds)
        scanned = int((q.get("Statistics") or {}).get("DataScannedInBytes") or 0)
        self.history.append(QueryRecord(sql, qid, state, scanned, label))
        if state != "SUCCEEDED":
            reason = q["Status"].get("StateChangeReason", state)
            raise EngineError(f"{label}: Athena query {qid} {state.lower()}: {reason}")
        return qid

    def fetch(self, qid: str, json_columns: set[str] = frozenset()) -> pa.Table:
        """Page ``GetQueryResults`` into an Arrow table (the first row is the header)."""
        paginator = self._client("athena").get_paginator("get_query_results")
        names: list[str] = []
        types: list[str] = []
        rows: list[list[str | None]] = []
        first = True
        for page in paginator.paginate(QueryExecutionId=qid):
            rs = page["ResultSet"]
            if not names:
                info = rs.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                names = [c["Name"] for c in info]
                types = [c.get("Type", "varchar").lower() for c in info]
            data = rs.get("Rows", [])
            if first and data:
                data = data[1:]  # header row
            first = False
            for r in data:
                rows.append([d.get("VarCharValue") for d in r.get("Data", [])])
        columns = {}
        for i, (n, t) in enumerate(zip(names, types, strict=True)):
            values = [r[i] if i < len(r) else None for r in rows]
            columns[n] = _convert(values, t, as_json=n in json_columns)
        return pa.table(columns) if columns else pa.table({})

    def query(
        self, sql: str, *, label: str = "query", params: dict[str, Any] | None = None
    ) -> pa.Table:
        """Run Trino SQL (a detection or any SELECT) and return Arrow."""
        self.ensure_views()
        wrapped, json_cols = athena_sql_for_detection(sql, prefix=self.prefix)
        return self.fetch(self.execute(wrapped, label=label), json_cols)

    def scalar(self, sql: str) -> Any:
        table = self.query(sql, label="scalar")
        if table.num_rows == 0 or table.num_columns == 0:
            return None
        return table.column(0)[0].as_py()

    # -- set-up ----------------------------------------------------------------------------
    def ddl(self, key_filter: HuntWindow | None = None) -> str:
        """This run's CloudTrail table: its projection enumerates the run's accounts and
        regions, which is why it is per run and not shared."""
        accounts = self.accounts or tuple((key_filter.accounts or ()) if key_filter else ())
        loc = TrailLocation.parse(self.trail)
        return cloudtrail_ddl(
            loc, table=self.object_name(self.table), accounts=accounts, regions=self.regions
        )

    def prepare(self, key_filter: HuntWindow | None) -> None:
        """Create or reuse the database; create this run's projected table and windowed
        canonical view."""
        view = api_activity_view(  # refuses an unbounded window, before anything is created
            key_filter,
            table=self.object_name(self.table),
            name=self.object_name("api_activity"),
        )
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}", label="database")
        self._created_object("TABLE", self.table)
        self.execute(self.ddl(key_filter), label="cloudtrail table")
        self._created_object("VIEW", "api_activity")
        self.execute(view, label="api_activity view")
        self._tables.add("api_activity")
        self.register_table("ip_class", IP_CLASS.empty_table())
        self._views_ready = False

    def ensure_views(self) -> None:
        if self._views_ready:
            return
        self._views_ready = True
        for path in view_files():
            for stmt in parse_statements(path.read_text()):
                # Transpiled first: the rewrites of portable.py look tables up by their names.
                trino = isolate(
                    sqlglot.parse_one(transpile(stmt, "trino"), read="trino"), self.prefix
                )
                if isinstance(stmt, exp.Create):
                    kind = str(stmt.args.get("kind") or "VIEW").upper()
                    self._created_object(kind, stmt.this.name)
                    self._tables.add(stmt.this.name)
                self.execute(trino.sql(dialect="trino", pretty=True), label=f"view {path.name}")

    def table_exists(self, name: str) -> bool:
        return name in self._tables

    def distinct_values(self, table: str, column: str) -> list:
        t = self.query(
            f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL",
            label=f"distinct {column}",
        )
        return t.column(0).to_pylist() if t.num_columns else []

    @property
    def uploads_prefix(self) -> str:
        """``s3://`` folder of this run's uploaded tables (deleted by :meth:`close`)."""
        bucket, prefix = parse_s3_uri(self.output)
        return f"s3://{bucket}/" + f"{prefix.strip('/')}/imdshunt-tables/{self.run_id}/".lstrip("/")

    def register_table(self, name: str, table: pa.Table, *, scratch: bool = False) -> None:
        """Upload ``table`` as JSON lines under :attr:`uploads_prefix` and (re)create it as
        this run's table ``name``."""
        bucket, folder = parse_s3_uri(self.uploads_prefix)
        # A new folder per upload: the old table's files are not the new one's.
        key = f"{folder}{name}/{len(self._uploads)}/data.json"
        buf = io.BytesIO()
        for row in table.to_pylist():
            buf.write(json.dumps(row, default=_json_default).encode() + b"\n")
        self._uploads.append((bucket, key))
        self._client("s3").put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
        cols = ", ".join(f"`{f.name}` {_hive_type(f.type)}" for f in table.schema)
        location = f"s3://{bucket}/{key.rsplit('/', 1)[0]}/"
        full = self._created_object("TABLE", name)
        if name in self._tables:
            self.execute(f"DROP TABLE IF EXISTS {full}", label=f"drop {name}")
        self.execute(
            f"CREATE EXTERNAL TABLE {full} ({cols})\n"
            "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n"
            f"LOCATION '{location}'",
            label=f"table {name}",
        )
        self._tables.add(name)

    def load_api_activity(self, batches: Iterable[pa.RecordBatch]) -> int:
        raise EngineError("Athena reads CloudTrail in place; nothing is loaded into it")

    def load_http_requests(self, batches: Iterable[pa.RecordBatch]) -> int:
        raise EngineError("Athena hunts CloudTrail in place; web logs are hunted with DuckDB")

    def close(self) -> None:
        """Drop every table and view this run created (newest first: views before the tables
        they read) and delete its uploads, also after a failed run. Tries everything, then
        raises :class:`EngineError` naming what it could not remove."""
        left: list[str] = []
        try:
            for kind, full in reversed(self._created):
                try:
                    self.execute(f"DROP {kind} IF EXISTS {full}", label=f"drop {full}")
                except EngineError as exc:
                    left.append(f"{kind.lower()} {self.database}.{full} ({exc})")
            left += self._delete_uploads()
        finally:
            self._created.clear()
            self._uploads.clear()
            self._tables.clear()
            self._views_ready = False
            self._clients.clear()
        if left:
            raise EngineError(
                f"Athena run {self.run_id} could not remove what it created: " + "; ".join(left)
            )

    def _delete_uploads(self) -> list[str]:
        """Delete the run's uploaded objects; returns what could not be deleted."""
        by_bucket: dict[str, list[str]] = {}
        for bucket, key in self._uploads:
            by_bucket.setdefault(bucket, []).append(key)
        left = []
        for bucket, keys in by_bucket.items():
            for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys a call
                chunk = keys[start : start + 1000]
                try:
                    resp = self._client("s3").delete_objects(
                        Bucket=bucket,
                        Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
                    )
                except Exception as exc:  # botocore's errors, whatever the cause
                    left += [f"s3://{bucket}/{k} ({exc})" for k in chunk]
                    continue
                left += [
                    f"s3://{bucket}/{e.get('Key')} ({e.get('Code')})"
                    for e in resp.get("Errors", [])
                ]
        return left

    # -- after a hunt: what outputs read (SQL in imdshunt.engine.queries) -------------------
    #: Keys inlined per query: Athena refuses query strings over 256 kB (~300 bytes a key).
    SESSION_KEYS_PER_QUERY = 500

    def session_calls(self, keys: pa.Table, *, limit: int) -> pa.Table:
        """Every call of each keyed finding's session, at most ``limit`` per finding (see
        :meth:`imdshunt.engine.duckdb.DuckDBEngine.session_calls`). The keys are inlined as a
        ``VALUES`` list: registering a table here costs an S3 upload and two DDL queries."""
        from imdshunt.engine.queries import conform_session_calls, session_calls_sql

        parts = []
        for start in range(0, keys.num_rows, self.SESSION_KEYS_PER_QUERY):
            chunk = keys.slice(start, self.SESSION_KEYS_PER_QUERY)
            sql = session_calls_sql(self.dialect, limit=limit, keys=chunk)
            parts.append(self.query(sql, label="session calls"))
        return conform_session_calls(parts)


def _json_default(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(v)


def _hive_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int32(t) or pa.types.is_int16(t) or pa.types.is_int8(t):
        return "INT"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"ARRAY<{_hive_type(t.value_type)}>"
    return "STRING"


def _convert(values: list[str | None], athena_type: str, *, as_json: bool) -> pa.Array:
    if as_json:
        return pa.array([None if v is None else json.loads(v) for v in values])
    t = athena_type.split("(")[0].strip()
    if t in ("bigint", "integer", "int", "smallint", "tinyint"):
        return pa.array([None if v in (None, "") else int(v) for v in values], pa.int64())
    if t in ("double", "float", "real", "decimal"):
        return pa.array([None if v in (None, "") else float(v) for v in values], pa.float64())
    if t == "boolean":
        return pa.array([None if v in (None, "") else v.lower() == "true" for v in values])
    if t.startswith("timestamp"):
        return pa.array([_ts(v) for v in values], pa.timestamp("us", tz="UTC"))
    if t == "array":
        # Not wrapped as JSON (not recognisable as an array in the SQL): best effort.
        return pa.array(
            [None if v is None else [x for x in v.strip("[]").split(", ") if x] for v in values]
        )
    return pa.array(values, pa.string())


def _ts(v: str | None) -> dt.datetime | None:
    if not v:
        return None
    text = v.replace(" UTC", "").replace("T", " ").replace("Z", "")
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
