"""A light report (issue 15): dense timelines are summarised and stay small, the report of a
multi-day organisation stays small, off-box calls stay individually visible, and no library
warning reaches the user."""

from __future__ import annotations

import base64
import datetime as dt
import io
import random
import re
import warnings

import pytest
from click.testing import CliRunner

from imdshunt.report.plots import THIS_FINDING, chain_svg, timeline_svg
from tests import report_support as rs

TIMELINE_LIMIT = 100_000
REPORT_LIMIT = 2_000_000
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
WEEK = 7 * 86400


def _call(t: dt.datetime, ip: str, *, on_box: bool, failed: bool = False, this: bool = False):
    return {
        "event_time": t,
        "src_ip": ip,
        "network": "aws:EC2:us-east-1" if on_box else "internet",
        "network_kind": "aws" if on_box else "internet",
        "on_box": on_box,
        "this_finding": this,
        "error_code": "AccessDenied" if failed else None,
        "action": "s3:GetObject",
    }


def _dense_week(on_box: int = 19_950, thief: int = 50) -> list[dict]:
    """A week of an instance's own calls from three addresses (2% failing), then a thief's
    ``thief`` calls on day 5, half an hour apart (2 pixels on a week), and failing probes."""
    r = random.Random(15)
    calls = [
        _call(
            START + dt.timedelta(seconds=r.uniform(0, WEEK)),
            r.choice([rs.ON_BOX_IP, "35.170.10.21", "10.0.1.15"]),
            on_box=True,
            failed=r.random() < 0.02,
        )
        for _ in range(on_box)
    ]
    theft = START + dt.timedelta(days=5)
    calls += [
        _call(theft + dt.timedelta(minutes=30 * i), rs.THIEF_IP, on_box=False, this=True)
        for i in range(thief)
    ]
    calls += [
        _call(theft + dt.timedelta(minutes=7 * i), f"203.0.113.{i}", on_box=False, failed=True)
        for i in range(5)
    ]
    return sorted(calls, key=lambda c: c["event_time"])


def _svg(uri: str) -> str:
    return base64.b64decode(uri.split(",", 1)[1]).decode()


@pytest.mark.parametrize("summary", ["buckets", "raster"])
def test_a_dense_timeline_stays_under_100kb_and_draws_each_thief_call(summary):
    calls = _dense_week()
    assert len(calls) == 20_005
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uri = timeline_svg(calls, summary=summary)
    assert len(uri) < TIMELINE_LIMIT
    svg = _svg(uri)
    # every call of the thief is its own marker (plus one in the legend)
    thief_markers = re.findall(rf"<use [^>]*fill: {THIS_FINDING[1].lower()}", svg)
    assert len(thief_markers) == 50 + 1
    assert rs.THIEF_IP in svg and "203.0.113.4" in svg


def test_a_sparse_timeline_draws_every_call_and_no_summary():
    calls = _dense_week(on_box=120, thief=3)
    svg = _svg(timeline_svg(calls))
    assert "summarised" not in svg and "calls / " not in svg
    assert len(re.findall(r"<use ", svg)) >= 120  # on-box calls a week apart: all distinct


def test_the_summary_counts_calls_per_bucket():
    svg = _svg(timeline_svg(_dense_week()))
    assert "calls / 1 h" in svg  # a week in hourly buckets
    assert "active 1 h periods" in svg


def test_plots_raise_no_library_warning(tmp_path):
    """Failed calls (unfilled markers) once made matplotlib warn on every plot."""
    result = rs.hunt_org(tmp_path)
    theft = next(f for f in result.findings if f["kind"] == "credential")
    calls = _dense_week(on_box=200, thief=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert timeline_svg(calls) and timeline_svg(_dense_week())
        assert chain_svg(rs.chain_for(theft))


@pytest.mark.parametrize("quiet", [True, False])
def test_no_library_warning_reaches_the_user_of_format_html(tmp_path, monkeypatch, quiet):
    import imdshunt.report.plots as plots
    from imdshunt.cli import cli

    drawn = plots.timeline_svg  # made to warn, as a future matplotlib might

    def warning_plot(calls, **kw):
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
        return drawn(calls, **kw)

    monkeypatch.setattr(plots, "timeline_svg", warning_plot)
    logs = rs.write_org(tmp_path)
    out = tmp_path / "r.html"
    args = ["hunt", str(logs), "--ip-ranges", str(rs.RANGES), "--format", "html", "-o", str(out)]
    res = CliRunner().invoke(cli, args + (["-q"] if quiet else []))
    assert res.exit_code == 1, res.output
    assert 'class="plot timeline"' in out.read_text()
    assert "Warning" not in res.output and "warning" not in res.stderr.replace(
        "imdshunt: warning:", ""
    )


def test_the_report_of_a_week_of_a_synthetic_organisation_stays_small(tmp_path):
    synth = pytest.importorskip("imdshunt.synth", reason="synthetic organisation generator absent")
    from imdshunt import api
    from imdshunt.outputs import OUTPUTS
    from imdshunt.report import report_context

    synth.generate_org(tmp_path, seed=0, records=20_000, days=7, workers=1)
    result = api.hunt(
        [tmp_path / "AWSLogs"],  # CloudTrail and ALB logs
        ip_ranges=tmp_path / "ip-ranges.json",
        inventory=[tmp_path / "inventory"],
        fetch_ip_ranges=False,
    )
    buf = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OUTPUTS["html"]().write(result.findings, buf, report_context(result, backlog=True))
    page = buf.getvalue()
    timelines = re.findall(r'<img class="plot timeline" src="([^"]+)"', page)
    # A key minted with iam:CreateAccessKey has no role session, and timelines are drawn per
    # session: such a derived finding has none yet (a known gap, see docs/lineage.md).
    credential = [
        f
        for f in result.findings
        if f["kind"] == "credential" and f.get("derived_kind") != "access-key"
    ]
    assert len(timelines) == len(credential) > 5
    assert max(len(t) for t in timelines) < TIMELINE_LIMIT
    assert len(page) < REPORT_LIMIT


def test_the_text_under_a_timeline_counts_every_call_of_the_session():
    from imdshunt.outputs.html import _timeline_summary

    calls = _dense_week(on_box=100, thief=3)
    for c in calls:
        c["session_call_count"] = 250_000  # the engine read only the first 20,000 of them
    text = _timeline_summary(calls)
    assert text.startswith("250000 calls with this session: 108 read for this timeline")
    assert "8 off-box" in text
