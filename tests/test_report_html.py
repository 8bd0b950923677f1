"""--format html: one self-contained report a responder opens from disk."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

import markupsafe
import pytest
from click.testing import CliRunner

from imdshunt.cli import cli
from imdshunt.outputs import OUTPUTS, RunContext
from imdshunt.report import credential_timelines, report_context
from tests import report_support as rs


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict]]:
    p = _Tags()
    p.feed(text)
    return p.tags


@pytest.fixture(scope="module")
def hunted(tmp_path_factory):
    return rs.hunt_org(tmp_path_factory.mktemp("org"))


@pytest.fixture(scope="module")
def page(hunted) -> str:
    ctx = report_context(hunted, backlog=True, chains=[rs.chain_for(hunted.findings[0])])
    buf = io.StringIO()
    OUTPUTS["html"]().write(hunted.findings + [rs.web_finding()], buf, ctx)
    return buf.getvalue()


def test_timelines_hold_every_call_of_the_credential_on_and_off_box(hunted):
    f = hunted.findings[0]
    calls = credential_timelines(hunted.engine, hunted.findings)[f["finding_id"]]
    assert len(calls) == 35  # 30 on-box calls, 5 by the thief
    assert sum(c["this_finding"] for c in calls) == 5
    assert {c["src_ip"] for c in calls if c["on_box"]} == {rs.ON_BOX_IP}
    assert [c["event_time"] for c in calls] == sorted(c["event_time"] for c in calls)


def test_report_fetches_nothing_and_runs_no_script(page):
    tags = _tags(page)
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "link")]
    for _, attrs in tags:
        for name in ("src", "href", "action", "srcset"):
            value = attrs.get(name)
            assert value is None or value.startswith(("data:", "#")), (name, value)
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv")]
    assert csp and "default-src 'none'" in csp[0] and "script-src" not in csp[0]


def test_hostile_text_is_escaped_never_markup(page):
    assert rs.HOSTILE_UA not in page
    assert str(markupsafe.escape(rs.HOSTILE_UA)) in page  # shown as text
    assert "<script>alert(3)</script>" not in page  # the web finding's URL
    assert "<b>x</b>" not in page  # the chain's URL


def test_summary_counts_findings_by_detection_and_severity_and_the_noise_avoided(page):
    table = page[page.index('id="by-detection"') :].split("</table>")[0]
    assert "ec2_instance_credential_outside_aws" in table and "imds_ssrf_attempt" in table
    assert re.search(r'id="naive".*?<b>5</b> alerts on <b>1</b> sessions', page, re.S)
    assert "1 files read; 65 records read" in page


def test_each_credential_finding_has_its_timeline_plot_drawn_by_matplotlib(page, hunted):
    imgs = [a for t, a in _tags(page) if t == "img" and "timeline" in a.get("class", "")]
    assert len(imgs) == 1
    svg = base64.b64decode(imgs[0]["src"].split(",", 1)[1]).decode()
    assert "Matplotlib" in svg and "<svg" in svg
    assert rs.THIEF_IP in svg and rs.ON_BOX_IP in svg
    assert f'id="finding-{hunted.findings[0]["finding_id"]}"' in page


def test_chains_are_drawn_attempt_theft_use(page):
    chain = page[page.index('id="chains"') :].split("</section>")[0]
    assert chain.index("1 · Attempt") < chain.index("2 · Theft") < chain.index("3 · Use")
    assert 'class="plot chain-plot"' in chain


def test_chain_records_among_the_findings_are_drawn_as_chains(hunted):
    chain = rs.chain_for(hunted.findings[0])
    buf = io.StringIO()
    OUTPUTS["html"]().write([*hunted.findings, chain], buf, RunContext())
    assert 'id="chain-c0ffee0000000001"' in buf.getvalue()
    assert 'id="finding-c0ffee0000000001"' not in buf.getvalue()


def test_the_imdsv1_backlog_is_a_ranked_table(page):
    backlog = page[page.index('id="backlog"') :].split("</section>")[0]
    assert backlog.index(rs.INSTANCE) < backlog.index(rs.QUIET_INSTANCE)  # more v1 use first
    assert "modify-instance-metadata-options" in backlog


def test_an_empty_hunt_still_renders(hunted):
    buf = io.StringIO()
    OUTPUTS["html"]().write([], buf, RunContext())
    assert "No findings." in buf.getvalue()


def test_cli_writes_the_report_with_format_html(tmp_path):
    logs = rs.write_org(tmp_path)
    out = tmp_path / "report.html"
    res = CliRunner().invoke(
        cli,
        ["hunt", str(logs), "--ip-ranges", str(rs.RANGES), "--format", "html", "-o", str(out),
         "-q"],
    )  # fmt: skip
    assert res.exit_code == 1, res.output  # findings
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and 'class="plot timeline"' in text
    assert 'id="backlog"' in text


@pytest.mark.parametrize("fmt", sorted(OUTPUTS))
def test_every_output_is_a_format_choice_of_hunt(fmt):
    opt = next(p for p in cli.commands["hunt"].params if p.name == "fmt")
    assert fmt in opt.type.choices


def test_a_hunt_with_web_logs_draws_its_chain_and_the_attempt(tmp_path):
    result = rs.hunt_org(tmp_path, with_web=True)
    buf = io.StringIO()
    OUTPUTS["html"]().write(result.findings, buf, report_context(result))
    page = buf.getvalue()
    chain = page[page.index('id="chains"') :].split("</section>")[0]
    assert rs.INSTANCE in chain and "169.254.169.254" in chain
    assert page.count('class="finding"') == 2  # the attempt and the theft; the chain above
