"""The transpiled SQL is a tested artifact: goldens, Trino parsing, and DuckDB twins."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot
from click.testing import CliRunner

from imdshunt import api
from imdshunt.cli import cli
from imdshunt.detect import load_detections
from imdshunt.engine import golden
from imdshunt.engine.athena import TrailLocation, api_activity_view, cloudtrail_ddl
from imdshunt.engine.duckdb import DEDUP_VIEW_FILE, VIEWS_DIR, view_files
from imdshunt.engine.portable import parse_statements, transpile
from imdshunt.findings import from_arrow
from imdshunt.lineage import is_lineage_detection
from imdshunt.window import HuntWindow

HERE = Path(__file__).resolve().parent
RANGES = HERE / "data" / "ip-ranges.fixture.json"
ALLOWLIST = ["203.0.113.0/24"]
DETECTIONS = load_detections()
#: What Athena runs (credential detections; it reads no web logs).
ATHENA = sorted(d for d, det in DETECTIONS.items() if golden.runs_on(det, "athena"))


def test_golden_files_match_the_rendered_sql():
    problems = golden.compare(HERE / "golden")
    assert not problems, (
        "transpiled SQL changed; review and run `python -m imdshunt.engine.golden --update`:\n"
        + "\n".join(problems)
    )


def test_every_detection_and_view_has_a_golden_per_engine():
    rendered = golden.render_all()
    for engine in golden.ENGINES:
        for det_id, det in DETECTIONS.items():
            if golden.runs_on(det, engine):
                assert f"{engine}/{det_id}.sql" in rendered
        for path in view_files():
            assert f"{engine}/views/{path.name}" in rendered


@pytest.mark.parametrize("det_id", ATHENA)
def test_athena_sql_of_every_detection_parses_as_trino(det_id):
    for sql in (
        DETECTIONS[det_id].render_sql(dialect="trino"),
        golden.render_detection(DETECTIONS[det_id], "athena"),
    ):
        tree = sqlglot.parse_one(sql, read="trino", error_level=sqlglot.ErrorLevel.RAISE)
        assert tree is not None


def test_views_and_athena_setup_parse_as_trino():
    for path in view_files():
        for stmt in parse_statements(path.read_text()):
            sqlglot.parse_one(transpile(stmt, "trino"), read="trino")
    flt = HuntWindow.make("2026-03-01", "2026-03-02", ["111122223333"])
    sqlglot.parse_one(api_activity_view(flt), read="trino")


def _twin(sql_trino: str) -> str:
    """The DuckDB twin of Trino SQL: sqlglot transpiles it back."""
    return sqlglot.transpile(sql_trino, read="trino", write="duckdb")[0]


def _fixtures(det) -> list[Path]:
    return sorted(
        p
        for p in (det.folder / "tests").glob("*")
        if p.name.startswith(("match_", "nomatch_")) and not p.name.endswith(".expect.json")
    )


@pytest.mark.parametrize("det_id", ATHENA)
def test_duckdb_twin_of_the_athena_sql_returns_the_same_findings(det_id):
    det = DETECTIONS[det_id]
    lineage = is_lineage_detection(det)  # its parents are the other detections' findings
    result = api.hunt(
        _fixtures(det),
        ip_ranges=RANGES,
        allowlist=ALLOWLIST,
        workers=1,
        fetch_ip_ranges=False,
        detections=DETECTIONS if lineage else {det_id: det},
    )
    original = [f for f in result.findings if f["detection"] == det_id]
    assert original, "the fixtures should fire the detection"
    engine = result.engine
    for path in view_files():  # replace every shared view by its Trino round trip
        for stmt in parse_statements(path.read_text()):
            engine.con.execute(_twin(transpile(stmt, "trino")))
    twin_sql = _twin(det.render_sql(dialect="trino"))
    table = engine.query(twin_sql, label=f"{det_id} (twin)")
    twin = from_arrow(table, det)
    if lineage:  # the lineage step gives ids and links after the SQL: compare the SQL's part
        twin = [{k: v for k, v in f.items() if k != "finding_id"} for f in twin]
        original = [{k: f.get(k) for k in twin[0]} for f in original] if twin else original
        key = lambda f: f["derived_id"]  # noqa: E731
    else:
        key = lambda f: f["finding_id"]  # noqa: E731
    assert sorted(twin, key=key) == sorted(original, key=key)


def test_dedup_view_is_not_run_on_athena_but_its_rules_are_in_the_canonical_view():
    view = api_activity_view(HuntWindow.make("2026-03-01", "2026-03-01"))
    assert "row_number() OVER (PARTITION BY coalesce(eventid" in view
    assert (VIEWS_DIR / DEDUP_VIEW_FILE).exists()


def test_ddl_projects_account_region_and_day_over_the_org_layout():
    ddl = cloudtrail_ddl(
        TrailLocation.parse("s3://trail/logs/AWSLogs/o-abcde12345/"), accounts=["111122223333"]
    )
    assert "LOCATION 's3://trail/logs/AWSLogs/o-abcde12345/'" in ddl
    assert (
        "'storage.location.template'='s3://trail/logs/AWSLogs/o-abcde12345/"
        "${account}/CloudTrail/${region}/${day}'" in ddl
    )
    assert "'projection.day.format'='yyyy/MM/dd'" in ddl
    assert "'projection.account.values'='111122223333'" in ddl
    injected = cloudtrail_ddl(TrailLocation.parse("s3://trail/AWSLogs/"))
    assert "'projection.account.type'='injected'" in injected


def test_sql_command_prints_each_dialect():
    runner = CliRunner()
    det_id = next(iter(DETECTIONS))
    for dialect in ("duckdb", "trino", "athena", "spark"):
        res = runner.invoke(cli, ["sql", "--dialect", dialect, "--detection", det_id])
        assert res.exit_code == 0, res.output
        assert f"-- detection {det_id}" in res.output
    res = runner.invoke(cli, ["sql", "--dialect", "spark"])
    assert "TEMPORARY VIEW" in res.output
    res = runner.invoke(cli, ["sql", "--detection", "nope"])
    assert res.exit_code == 2


def test_athena_ddl_command_prints_table_and_window_view():
    res = CliRunner().invoke(
        cli,
        [
            "athena",
            "ddl",
            "s3://trail/AWSLogs/o-abcde12345/",
            "--accounts",
            "111122223333",
            "--since",
            "2026-03-01",
            "--until",
            "2026-03-02",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS cloudtrail" in res.output
    assert "day BETWEEN '2026/03/01' AND '2026/03/02'" in res.output


def test_table_ddl_types_are_duckdbs_own_mapping_of_the_arrow_schemas():
    import duckdb
    import pyarrow as pa

    from imdshunt.engine.duckdb import _DUCKDB_TYPES, _ddl
    from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST, REFERENCE_TABLES

    con = duckdb.connect()
    for name, schema in {"a": API_ACTIVITY, "h": HTTP_REQUEST, **REFERENCE_TABLES}.items():
        con.register("_empty", pa.Table.from_batches([], schema=schema))
        described = con.execute("DESCRIBE SELECT * FROM _empty").fetchall()
        con.execute(_ddl(f"t_{name}", schema))
        created = con.execute(f"DESCRIBE t_{name}").fetchall()
        assert [(c[0], c[1]) for c in created] == [(c[0], c[1]) for c in described]
        assert all(f.type in _DUCKDB_TYPES for f in schema), name


def test_a_runs_names_are_rewritten_on_the_parse_tree_not_in_text():
    """Tables get the run's prefix; CTE names, string literals, column names and longer names
    that contain a table's name keep theirs; a column qualified with a renamed table's name
    still resolves (the table keeps it as alias)."""
    from imdshunt.engine.athena import isolate

    sql = (
        "WITH ip_class AS (SELECT 'ip_class' AS api_activity) "
        "SELECT api_activity.src_ip, 'FROM api_activity' AS note, c.api_activity "
        "FROM api_activity JOIN api_activity_dedup AS d ON d.event_id = api_activity.event_id "
        "CROSS JOIN ip_class AS c"
    )
    out = isolate(sqlglot.parse_one(sql, read="trino"), "imdshunt_r1__").sql(dialect="trino")
    assert out == (
        "WITH ip_class AS (SELECT 'ip_class' AS api_activity) "
        "SELECT api_activity.src_ip, 'FROM api_activity' AS note, c.api_activity "
        "FROM imdshunt_r1__api_activity AS api_activity "
        "JOIN imdshunt_r1__api_activity_dedup AS d ON d.event_id = api_activity.event_id "
        "CROSS JOIN ip_class AS c"
    )
    ddl = isolate(sqlglot.parse_one("DROP VIEW IF EXISTS credential_activity"), "imdshunt_r1__")
    assert ddl.sql() == "DROP VIEW IF EXISTS imdshunt_r1__credential_activity"
    db = sqlglot.parse_one("CREATE DATABASE IF NOT EXISTS imdshunt", read="athena")
    assert isolate(db, "imdshunt_r1__").sql() == db.sql()  # the database is shared
