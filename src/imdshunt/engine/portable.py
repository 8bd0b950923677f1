"""DuckDB-dialect SQL made portable: sqlglot transpilation plus the rewrites it does not do.

Detections and shared views are written once, in DuckDB's dialect. :func:`transpile` turns a
statement into Trino (Athena) or Spark SQL. sqlglot does most of the work; the rewrites here
cover DuckDB idioms it passes through unchanged or changes in meaning, each checked by the
golden files (``tests/golden``) and by the equivalence tests:

* ``regexp_full_match(s, p)`` -> ``regexp_like(s, '^(?:p)$')`` / ``s RLIKE '^(?:p)$'``;
* ``list_slice(l, b, e)`` (1-based, inclusive) -> ``slice(l, b, e - b + 1)`` (both targets);
* ``SELECT * EXCLUDE (c)`` -> the column list, expanded from the canonical schemas (neither
  Trino nor Spark 3.x know ``EXCLUDE``/``EXCEPT``);
* Trino: ``any_value(x)`` -> ``arbitrary(x)`` without ``IGNORE NULLS`` (Trino's ``arbitrary``
  already skips NULLs, and rejects the clause);
* Spark: ``list(x)``/``collect_list`` over no rows is ``[]`` where DuckDB and Trino give NULL:
  wrapped so that an empty list is NULL; ``list(x ORDER BY k)`` (dropped by sqlglot) becomes
  ``transform(array_sort(collect_list(struct(k, x))), e -> e.v)``;
* Spark: ``CREATE [OR REPLACE] VIEW`` -> ``CREATE OR REPLACE TEMPORARY VIEW`` (session views may
  read the temporary views the engine registers; permanent ones may not).

Known differences left: DuckDB ``list()`` keeps NULL elements, Spark's ``collect_list`` drops
them (detections filter NULLs out anyway: ``FILTER (WHERE x IS NOT NULL)``); ``len(list)``
becomes ``cardinality``/``size`` only when the list is recognisable in the statement (a list
expression, or a column named like a projection that builds one); prefer ``array_length``.
DuckDB struct literals (``{'k': v}``) have no typed equivalent in Trino without the value types:
they transpile to Spark, not to Trino, so web detections that use them do not run on Athena
(Athena runs the credential detections only).
"""

from __future__ import annotations

import sqlglot
import sqlglot.expressions as exp

from imdshunt.errors import EngineError
from imdshunt.schema import API_ACTIVITY, HTTP_REQUEST, IP_CLASS

#: Column lists of the tables every engine registers (used to expand ``* EXCLUDE``).
TABLE_COLUMNS: dict[str, list[str]] = {
    "api_activity_raw": list(API_ACTIVITY.names),
    "api_activity": list(API_ACTIVITY.names),
    "http_request": list(HTTP_REQUEST.names),
    "ip_class": list(IP_CLASS.names),
}


def sqlglot_dialect(dialect: str) -> str:
    """The sqlglot dialect of a registered engine's name (``athena``) or dialect (``trino``)."""
    from imdshunt.engine.base import ENGINES

    if dialect in ENGINES:
        return ENGINES[dialect].dialect
    known = {e.dialect for e in ENGINES.values()}
    if dialect in known:
        return dialect
    raise EngineError(f"unknown dialect {dialect!r}; choose one of {', '.join([*ENGINES, *known])}")


def parse_statements(sql: str) -> list[exp.Expression]:
    """The statements of a DuckDB-dialect script (comments kept on their statements)."""
    return [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]


def transpile(tree: exp.Expression | str, dialect: str, *, pretty: bool = True) -> str:
    """One DuckDB-dialect statement in ``dialect`` (``duckdb``, ``trino``/``athena``, ``spark``)."""
    target = sqlglot_dialect(dialect)
    if isinstance(tree, str):
        stmts = parse_statements(tree)
        if len(stmts) != 1:
            raise EngineError(f"expected one statement, got {len(stmts)}")
        tree = stmts[0]
    if target == "duckdb":
        return tree.sql(dialect="duckdb", pretty=pretty)
    tree = _expand_star_exclude(tree.copy())
    tree = _list_lengths(tree)
    if target == "spark":
        tree = _spark_lists(tree)
    tree = tree.transform(lambda n: _rewrite(n, target))
    if target == "spark":
        tree = _spark_temp_views(tree)
    try:
        return tree.sql(dialect=target, pretty=pretty, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as exc:
        raise EngineError(f"cannot express in {dialect}: {exc}") from exc


def transpile_script(sql: str, dialect: str) -> list[str]:
    return [transpile(s, dialect) for s in parse_statements(sql)]


def _arrayish(node: exp.Expression) -> bool:
    if isinstance(node, exp.Filter):
        node = node.this
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in ("list_slice", "list_distinct", "list_filter")
    return isinstance(node, exp.Array | exp.ArrayAgg | exp.ArraySort | exp.ArrayConcat)


def _list_lengths(tree: exp.Expression) -> exp.Expression:
    """DuckDB ``len(list)`` -> ``cardinality``/``size``: sqlglot keeps string ``LENGTH``.

    A list is recognised when the argument is a list expression or a column named like a
    projection of this statement that builds a list (``list(...) AS request_urls``).
    """
    array_names = {
        p.alias
        for sel in tree.find_all(exp.Select)
        for p in sel.expressions
        if isinstance(p, exp.Alias) and _arrayish(p.this)
    }
    for node in list(tree.find_all(exp.Length)):
        arg = node.this
        if _arrayish(arg) or (isinstance(arg, exp.Column) and arg.name in array_names):
            new = exp.ArraySize(this=arg.copy())
            if node is tree:
                return new
            node.replace(new)
    return tree


def _string_literal(node: exp.Expression) -> str | None:
    return node.name if isinstance(node, exp.Literal) and node.is_string else None


def _rewrite(node: exp.Expression, target: str) -> exp.Expression:
    if isinstance(node, exp.RegexpFullMatch):
        pat = _string_literal(node.expression)
        anchored: exp.Expression = (
            exp.Literal.string(f"^(?:{pat})$")
            if pat is not None
            else exp.func(
                "concat",
                exp.Literal.string("^(?:"),
                node.expression.copy(),
                exp.Literal.string(")$"),
            )
        )
        return exp.RegexpLike(this=node.this.copy(), expression=anchored)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_slice":
        args = node.expressions
        if len(args) != 3:
            raise EngineError("list_slice needs (list, begin, end) to be portable")
        lst, begin, end = (a.copy() for a in args)
        if begin.is_int and end.is_int:
            length: exp.Expression = exp.Literal.number(int(end.name) - int(begin.name) + 1)
        else:
            length = exp.Add(
                this=exp.Sub(this=end, expression=begin.copy()), expression=exp.Literal.number(1)
            )
        return exp.Anonymous(this="SLICE", expressions=[lst, begin, length])
    if (
        target == "trino"
        and isinstance(node, exp.IgnoreNulls)
        and isinstance(node.this, exp.AnyValue)
    ):
        return node.this
    return node


def _spark_lists(tree: exp.Expression) -> exp.Expression:
    """Rewrite every ``list()`` aggregate (with its FILTER clause, if any) for Spark."""
    for agg in list(tree.find_all(exp.ArrayAgg)):
        unit: exp.Expression = agg.parent if isinstance(agg.parent, exp.Filter) else agg
        new = _spark_list(agg, unit)
        if unit is tree:
            return new
        unit.replace(new)
    return tree


def _spark_list(node: exp.ArrayAgg, unit: exp.Expression) -> exp.Expression:
    agg = node.copy()
    inner = agg.this
    order = None
    distinct = isinstance(inner, exp.Distinct)
    if isinstance(inner, exp.Order):
        order, inner = inner, inner.this
    if order is not None:
        if distinct:
            raise EngineError("list(DISTINCT ... ORDER BY ...) is not portable to Spark")
        keys = []
        for i, o in enumerate(order.expressions):
            if o.args.get("desc"):
                raise EngineError("list(... ORDER BY ... DESC) is not portable to Spark")
            keys.append(exp.alias_(o.this.copy(), f"_k{i}"))
        keys.append(exp.alias_(inner.copy(), "_v"))
        agg = exp.ArrayAgg(this=exp.Struct(expressions=keys))
        if isinstance(unit, exp.Filter):
            agg = exp.Filter(this=agg, expression=unit.expression.copy())
        sorted_ = exp.func("array_sort", agg)
        lam = exp.Lambda(
            this=exp.Dot(this=exp.column("_e"), expression=exp.to_identifier("_v")),
            expressions=[exp.to_identifier("_e")],
        )
        agg = exp.Anonymous(this="TRANSFORM", expressions=[sorted_, lam])
    elif isinstance(unit, exp.Filter):
        agg = exp.Filter(this=agg, expression=unit.expression.copy())
    # An empty list is NULL in DuckDB and Trino; collect_list gives []. Make it NULL.
    return exp.If(
        this=exp.EQ(this=exp.func("size", agg.copy()), expression=exp.Literal.number(0)),
        true=exp.Null(),
        false=agg,
    )


def _expand_star_exclude(tree: exp.Expression) -> exp.Expression:
    """Replace ``* EXCLUDE (...)`` by the remaining columns, from :data:`TABLE_COLUMNS`."""
    for select in list(tree.find_all(exp.Select)):
        for i, proj in enumerate(list(select.expressions)):
            excluded_nodes = (
                (proj.args.get("except_") or proj.args.get("except"))
                if isinstance(proj, exp.Star)
                else None
            )
            if not excluded_nodes:
                continue
            excluded = {e.name for e in excluded_nodes}
            cols = _columns_of(select)
            if cols is None:
                raise EngineError("SELECT * EXCLUDE over a relation of unknown columns")
            new = [exp.column(c) for c in cols if c not in excluded]
            select.set("expressions", select.expressions[:i] + new + select.expressions[i + 1 :])
    return tree


def _columns_of(select: exp.Select) -> list[str] | None:
    """Columns a ``SELECT *`` over ``select``'s single source would give."""
    from_ = select.args.get("from_") or select.args.get("from")
    if from_ is None:
        return None
    src = from_.this
    if isinstance(src, exp.Table):
        return TABLE_COLUMNS.get(src.name)
    if isinstance(src, exp.Subquery) and isinstance(src.this, exp.Select):
        cols: list[str] = []
        for p in src.this.expressions:
            if isinstance(p, exp.Star):
                inner = _columns_of(src.this)
                if inner is None:
                    return None
                cols.extend(inner)
            else:
                cols.append(p.alias_or_name)
        return cols
    return None


def _spark_temp_views(tree: exp.Expression) -> exp.Expression:
    if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "VIEW":
        props = tree.args.get("properties") or exp.Properties(expressions=[])
        if not any(isinstance(p, exp.TemporaryProperty) for p in props.expressions):
            props.append("expressions", exp.TemporaryProperty())
        tree.set("properties", props)
        tree.set("replace", True)
    return tree
