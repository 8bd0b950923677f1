"""The HTML report in a real headless Chromium (Debian's package, driven by Playwright).

Skips when Playwright or a Chromium binary is missing (``make test`` installs Chromium).
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from imdshunt.outputs import OUTPUTS
from imdshunt.report import report_context
from tests import report_support as rs

pytestmark = pytest.mark.browser

#: Flags for a closed network: without the background-networking ones Chromium floods the
#: log with refused connections. Playwright gives each launch a fresh user-data-dir.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("IMDSHUNT_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium binary (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("org")
    hunted = rs.hunt_org(root)
    ctx = report_context(hunted, backlog=True, chains=[rs.chain_for(hunted.findings[0])])
    buf = io.StringIO()
    OUTPUTS["html"]().write(hunted.findings + [rs.web_finding()], buf, ctx)
    out = root / "report.html"
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out


@pytest.fixture()
def opened(browser, report_file):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    events: dict[str, list] = {"console": [], "dialogs": [], "requests": [], "errors": []}
    page.on("console", lambda m: events["console"].append((m.type, m.text)))
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    page.on("request", lambda r: events["requests"].append(r.url))

    def on_dialog(dialog):
        events["dialogs"].append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(report_file.as_uri())
    page.wait_for_load_state("load")
    yield page, events
    page.close()


def test_report_opens_offline_without_console_errors(opened, report_file):
    page, events = opened
    assert [m for m in events["console"] if m[0] in ("error", "warning")] == []
    assert events["errors"] == []
    assert [u for u in events["requests"] if not u.startswith(("file:", "data:"))] == []
    assert page.title() == "imdshunt report"


def test_report_shows_the_findings_and_their_plots(opened):
    page, _ = opened
    assert page.locator("#finding-count").inner_text() == "2"
    assert page.locator("article.finding").count() == 2
    assert page.get_by_text(rs.INSTANCE).first.is_visible()
    plots = page.locator("img.plot")
    assert plots.count() == 2  # the credential's timeline and the chain
    for i in range(plots.count()):
        img = plots.nth(i)
        img.scroll_into_view_if_needed()
        assert img.is_visible()
        assert img.evaluate("i => i.complete && i.naturalWidth > 300 && i.naturalHeight > 50")
    assert page.locator("#chains .step").count() == 3


def test_hostile_user_agent_renders_as_text_and_runs_nothing(opened):
    page, events = opened
    ua = page.get_by_text(rs.HOSTILE_UA, exact=True)
    assert ua.count() == 1 and ua.is_visible()  # the literal text, markup and all
    assert events["dialogs"] == []
    assert page.locator("article script, article img:not(.plot)").count() == 0
    assert page.get_by_text("/fetch?url=http://169.254.169.254/<script>alert(3)</script>").count()


def test_screenshot_of_the_report(opened, tmp_path):
    page, _ = opened
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
