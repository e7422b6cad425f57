"""The audit report in a real headless browser (Debian's chromium, driven by selenium).

The page must load from file:// with no console error and no network request, show every
plot with a non-zero rendered size, and show the numbers of report.json. `make test`
installs chromium and chromium-driver first (Makefile target `browser`).

Also a tool: `python tests/report/test_report_browser.py REPORT.html OUT.png` writes the
screenshot used in the README (docs/report.png).
"""
import json
import os
import sys
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# The machine has no network: nothing may try to reach it.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")
PLOTS = ("likelihood", "domains", "months", "provenance", "clusters", "known", "detectors", "collapse")


def resolve(report, pointer):
    """The value at a JSON Pointer (RFC 6901) in report.json."""
    node = report
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def expected_text(value, kind):
    """How the page must show a number of report.json (written independently of the report)."""
    if value is None:
        return "n/a"
    return {"pct": lambda v: f"{100 * v:.1f}%", "int": lambda v: f"{v:,}",
            "float": lambda v: f"{v:.4f}"}[kind](value)


def start_browser(width=1100, height=1400):
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail(f"{CHROMIUM} and {CHROMEDRIVER} are needed: run `make browser` "
                    "(apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},{height}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    return driver, profile


def _quit(driver, profile):
    import shutil

    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    driver, profile = start_browser()
    yield driver
    _quit(driver, profile)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    from conftest import run_cli

    root = tmp_path_factory.mktemp("browser")
    run_cli("demo", "--output", root / "audits", "--run-id", "now", "--quiet")
    # an earlier run to compare with: the same crawl audited without the known-output index
    from corpus_audit.pipelines.cli import SAMPLE_INPUTS

    run_cli("audit", *sum((["--input", p] for p in SAMPLE_INPUTS), []), "--output", root / "audits",
            "--run-id", "before", "--quiet")
    html, js = root / "report.html", root / "report.json"
    run_cli("report", "--audit", root / "audits" / "now", "--compare", root / "audits" / "before",
            "--html", html, "--json", js)
    with open(js) as f:
        return html, json.load(f)


def test_report_renders_in_chromium(browser, demo_report):
    html, report = demo_report
    browser.get("file://" + str(html))
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title.startswith("corpus-audit report")

    severe = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert severe == [], severe
    # nothing but the page itself was fetched (plots are data: URIs)
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:'))")
    assert fetched == []

    for name in PLOTS + ("trends",):
        box = browser.execute_script(
            "const img = document.getElementById(arguments[0]);"
            "if (!img) return null;"
            "img.scrollIntoView();"
            "const r = img.getBoundingClientRect();"
            "return {complete: img.complete, natural: img.naturalWidth * img.naturalHeight,"
            "        width: r.width, height: r.height};", f"plot-{name}")
        assert box is not None, f"plot-{name} missing"
        assert box["complete"] and box["natural"] > 0, (name, box)
        assert box["width"] > 300 and box["height"] > 100, (name, box)

    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-key]'))"
        ".map(e => [e.dataset.key, e.dataset.format, e.innerText.trim()])")
    assert len(shown) > 100
    for key, kind, text in shown:
        assert text == expected_text(resolve(report, key), kind), (key, text)
    keys = {k for k, _, _ in shown}
    # the key numbers are on the page: headline of both runs, provenance, known outputs, collapse
    for key in ("/current/headline/documents", "/current/headline/share_synthetic",
                "/compare/0/headline/share_synthetic", "/current/provenance/counts/synthetic",
                "/current/near_duplicates/near_dup_rate", "/current/known_outputs/by_model/opt-2.7b",
                "/current/collapse/distinct_2", "/compare/0/collapse/tail_mass"):
        assert key in keys, key
    # sanity: the earlier run had no known-output index, the current one had
    assert report["compare"][0]["known_outputs"]["index_used"] is False
    assert report["current"]["known_outputs"]["documents_matched"] > 0


def screenshot(html_path, out_png, width=1000, height=1500, max_bytes=300_000):
    """PNG of the top of the report (headline numbers and the first plots), palette-compressed."""
    import base64
    import io

    from PIL import Image

    driver, profile = start_browser(width, height)
    try:
        driver.get("file://" + os.path.abspath(html_path))
        png = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})["data"]
    finally:
        _quit(driver, profile)
    img = Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")
    for colors in (256, 128, 64):
        buf = io.BytesIO()
        img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        if buf.tell() <= max_bytes:
            break
    with open(out_png, "wb") as f:
        f.write(buf.getvalue())
    return buf.tell()


if __name__ == "__main__":
    print(f"{sys.argv[2]}: {screenshot(sys.argv[1], sys.argv[2]):,} bytes")
