"""The report in a real headless Chromium: a store filled by real syncs of the sandbox
over HTTP, then ``ticketlint report``; no console errors, the charts render, sorting and
filtering of the open findings table work, and a screenshot is saved in the tmp dir.

Skipped when Debian's chromium / chromedriver are missing, unless
``TICKETLINT_REQUIRE_BROWSER=1`` (CI) makes that a failure. Selenium gets the driver
path explicitly, so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ticketlint.sandbox import serve
from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
TICKETLINT = Path(sys.executable).parent / "ticketlint"
REQUIRE_ENV = "TICKETLINT_REQUIRE_BROWSER"


def _need_browser() -> Any:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401 - only whether it is installed
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"headless browser test needs {', '.join(missing)}"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_ENV}=1)")
        pytest.skip(message)
    from selenium import webdriver

    return webdriver


@pytest.fixture(scope="module")
def sandbox_report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """report.html of a store filled by two real ``ticketlint sync`` runs of the sandbox."""
    work = tmp_path_factory.mktemp("browser")
    anchor = int(time.time()) * 1000
    server = serve(seed=11, size=400, anchor=anchor).start()
    try:
        config = work / "ticketlint.yaml"
        config.write_text(
            config_yaml(server, f"sqlite:///{work / 'ticketlint.db'}"), encoding="utf-8"
        )
        c = server.credentials
        env = {
            "PATH": "/usr/bin:/bin",
            DEMO_JIRA_ENV: c.jira_token,
            DEMO_SNOW_ENV: c.snow_password,
            "HOME": str(work),
            "XDG_CONFIG_HOME": str(work),
        }
        base = [str(TICKETLINT), "--config", str(config)]
        for days in (30, 0):  # two runs: the trend charts have two points
            as_of = time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(anchor / 1000 + 60 - days * 86400)
            )
            sync = subprocess.run(
                [*base, "sync", "--as-of", as_of, "--no-notify", "--no-writeback"],
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
                cwd=work,
            )
            assert sync.returncode == 0, sync.stderr[-3000:]
        out = work / "report.html"
        rep = subprocess.run(
            [*base, "report", "-o", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=work,
        )
        assert rep.returncode == 0, rep.stderr[-3000:]
        yield out
    finally:
        server.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = _need_browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1300,1800",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _column(driver: Any, index: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#open-table tbody tr'))"
        ".filter(r => !r.hidden).map(r => r.cells[arguments[0]].textContent.trim());",
        index,
    )


def test_report_opens_renders_sorts_and_filters(
    sandbox_report: Path, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(sandbox_report.as_uri())
    assert browser.title == "ticketlint report"

    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) >= 7
    for chart in charts:
        size = chart.size
        assert size["width"] > 50 and size["height"] > 30, (chart.get_attribute("aria-label"), size)
    marks = browser.execute_script(
        "return document.querySelectorAll('svg.chart rect[class^=sev-], svg.chart polyline, svg.chart rect[class^=rate-]').length"
    )
    assert marks > 10
    trend_points = browser.find_elements(By.CSS_SELECTOR, "#trend svg circle")
    assert len(trend_points) == 4  # two runs, two charts

    rows = browser.find_elements(By.CSS_SELECTOR, "#open-table tbody tr")
    total = len(rows)
    assert total > 20
    count = browser.find_element(By.ID, "f-count")
    assert count.text == f"{total} of {total} shown"

    # Sorting: the Rule column ascending, then descending.
    rule_header = browser.find_element(By.CSS_SELECTOR, "#open-table thead th:nth-child(2) button")
    rule_header.click()
    ascending = _column(browser, 1)
    assert ascending == sorted(ascending, key=str.lower) and len(set(ascending)) > 1
    rule_header.click()
    assert _column(browser, 1) == sorted(ascending, key=str.lower, reverse=True)
    header = browser.find_element(By.CSS_SELECTOR, "#open-table thead th:nth-child(2)")
    assert header.get_attribute("aria-sort") == "descending"

    # Filtering: by severity, then by free text.
    Select(browser.find_element(By.CSS_SELECTOR, ".filters select[name=severity]")).select_by_value(
        "high"
    )
    severities = browser.execute_script(
        "return Array.from(document.querySelectorAll('#open-table tbody tr')).filter(r => !r.hidden)"
        ".map(r => r.dataset.severity);"
    )
    assert severities and set(severities) == {"high"} and len(severities) < total
    assert count.text == f"{len(severities)} of {total} shown"
    Select(browser.find_element(By.CSS_SELECTOR, ".filters select[name=severity]")).select_by_value(
        ""
    )
    first_key = _column(browser, 3)[0]
    box = browser.find_element(By.ID, "f-text")
    box.send_keys(first_key)
    keys = _column(browser, 3)
    assert keys and all(first_key.lower() in k.lower() for k in keys) and len(keys) < total

    links = browser.find_elements(By.CSS_SELECTOR, "#open-table tbody a[href^='http://127.0.0.1:']")
    assert links, "ticket links are missing"

    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == [], errors


def test_missing_browser_skips_unless_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        _need_browser()
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="no-chromium"):
        _need_browser()
