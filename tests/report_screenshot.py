"""Render the report of a synthetic organisation with a chain and screenshot it.

    python -m tests.report_screenshot docs/report-screenshot.png

Uses ``imdshunt.synth.generate_org`` when that generator is installed, otherwise the small
organisation of :mod:`tests.report_support` (an ALB SSRF attempt, then the theft).
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from imdshunt import api
from imdshunt.outputs import OUTPUTS
from imdshunt.report import report_context
from tests import report_support as rs
from tests.test_report_browser import CHROMIUM_ARGS, chromium_path


def hunt(root: Path):
    try:
        from imdshunt.synth import generate_org
    except ImportError:
        return rs.hunt_org(root, with_web=True)
    generate_org(root, seed=7, records=5_000)
    return api.hunt([root / "AWSLogs"], ip_ranges=root / "ip-ranges.json", fetch_ip_ranges=False)


def main(out: str) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        result = hunt(Path(tmp))
        buf = io.StringIO()
        OUTPUTS["html"]().write(result.findings, buf, report_context(result, backlog=True))
        page_file = Path(tmp) / "report.html"
        page_file.write_text(buf.getvalue(), encoding="utf-8")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(page_file.as_uri())
            page.screenshot(path=out, full_page=True)
            browser.close()
    from PIL import Image  # matplotlib's own dependency: a palette PNG is a third the size

    Image.open(out).convert("RGB").quantize(colors=128).save(out, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/report-screenshot.png")
