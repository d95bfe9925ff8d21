"""``ticketlint report``: the golden page, no external URL, numbers equal to
``ticketlint findings``, period / source / group filters and escaping."""

from __future__ import annotations

import json
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from snapshot_support import assert_snapshot as shared_assert_snapshot

from ticketlint.report.assets import CSS, JS, csp_hash
from ticketlint.report.period import Period, PeriodError


def assert_snapshot(name: str, actual: str) -> None:
    """Compare with tests/snapshots/report/<name>; UPDATE_SNAPSHOTS=1 rewrites it."""
    shared_assert_snapshot(f"report/{name}", actual)


def scrub_report(page: str) -> str:
    """The report's volatile parts: when it was made and how many days waivers have left."""
    page = re.sub(r"<time>[^<]*</time>", "<time>GENERATED</time>", page)
    return re.sub(r"\((\d+|-\d+) days\)", "(N days)", page)


def make_report(run_cli: Any, *args: str) -> str:
    result = run_cli("report", "-o", "report.html", *args)
    assert result.exit_code == 0, result.output
    return Path("report.html").read_text(encoding="utf-8")


class _Collect(HTMLParser):
    """Every (tag, attribute, value), the text of <td> cells and script/style blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str]] = []
        self.blocks: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        self._in = tag if tag in self.blocks else None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.blocks[self._in].append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def external_references(page: str) -> list[str]:
    """Anything that would make the browser fetch from elsewhere: src / href / action /
    srcset / poster / data to http(s) or protocol-relative URLs except ticket links in
    <a href>, CSS @import and url(...) that is not a fragment, <link>, <iframe>, <object>."""
    found = []
    parser = _Collect()
    parser.feed(page)
    for tag, attr, value in parser.attrs:
        remote = re.match(r"\s*(https?:)?//", value, re.IGNORECASE)
        if (
            attr
            in (
                "src",
                "srcset",
                "action",
                "poster",
                "data",
                "formaction",
                "xlink:href",
                "background",
            )
            and value
        ):
            found.append(f"<{tag} {attr}={value}>")
        elif attr == "href" and remote and tag != "a":
            found.append(f"<{tag} href={value}>")
        if tag in ("link", "iframe", "object", "embed", "img", "base"):
            found.append(f"<{tag}>")
    css = "".join(parser.blocks["style"]) + " ".join(v for _, a, v in parser.attrs if a == "style")
    found += [
        f"css {m}"
        for m in re.findall(r"@import[^;]*|url\(\s*['\"]?(?!#)[^)]*\)", css, re.IGNORECASE)
    ]
    js = "".join(parser.blocks["script"])
    found += [
        f"js {m}" for m in re.findall(r"https?://|fetch\(|XMLHttpRequest|WebSocket|import\(", js)
    ]
    return found


def test_report_matches_golden_file(run_cli: Any) -> None:
    page = make_report(run_cli, "--period", "2026-07-01..2026-09-30")
    assert_snapshot("report.html", scrub_report(page))


def test_no_external_url_is_referenced(run_cli: Any) -> None:
    page = make_report(run_cli)
    assert external_references(page) == []
    ticket_links = re.findall(r'<a href="(https?://[^"]+)"', page)
    assert ticket_links and all(
        u.startswith(("https://jira.example.com/", "https://x.service-now.com/"))
        for u in ticket_links
    )
    # The only http(s) URLs anywhere in the page are those ticket links.
    assert set(re.findall(r"https?://[^\"'<> ]+", page)) == set(ticket_links)


def test_the_static_check_catches_what_it_should() -> None:
    bad = (
        '<html><head><link rel="stylesheet" href="https://cdn.example/x.css"><style>@import "x.css";'
        'body{background:url(http://e/x.png)}</style></head><body><img src="http://e/p.png">'
        '<script src="https://cdn.example/j.js"></script><script>fetch("https://e")</script></body></html>'
    )
    found = external_references(bad)
    assert len(found) >= 6, found
    assert external_references('<a href="https://jira.example.com/browse/X-1">X-1</a>') == []


def test_csp_pins_the_inline_script_and_style_by_hash(run_cli: Any) -> None:
    page = make_report(run_cli)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    csp = csp.replace("&#x27;", "'")
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    parser = _Collect()
    parser.feed(page)
    assert parser.blocks["script"] == [JS] and parser.blocks["style"] == [CSS]
    assert f"script-src {csp_hash(JS)}" in csp and f"style-src {csp_hash(CSS)}" in csp
    assert not [
        a for a in parser.attrs if a[1] == "style" or a[1].startswith("on")
    ]  # CSP would block them


def _open_table_rows(page: str) -> list[str]:
    body = page.split('id="open-table"', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr data-severity=\"([a-z]+)\"", body)


@pytest.mark.parametrize("args", [(), ("--source", "jira-prod"), ("--group", "Network")])
def test_report_counts_equal_findings_counts(run_cli: Any, args: tuple[str, ...]) -> None:
    listed = run_cli("findings", "-f", "json", *args)
    assert listed.exit_code == 0, listed.output
    expected = Counter(f["severity"] for f in json.loads(listed.stdout)["findings"])
    page = make_report(run_cli, *args)
    assert Counter(_open_table_rows(page)) == expected
    assert f"Open findings ({sum(expected.values())})" in page
    kpi = re.search(r'<div class="n">(\d+)</div><div class="l">open findings', page)
    assert kpi and int(kpi.group(1)) == sum(expected.values())
    for sev in ("high", "medium", "low"):  # the severity chart's tooltips
        assert f"<title>{sev}: {expected.get(sev, 0)}</title>" in page


def test_conformity_comes_from_the_newest_run_in_the_period(run_cli: Any) -> None:
    # September run: RPT001 fails CHG-5 (CHG-2 fixed; CHG-8 NOT_EVALUATED): 28 of 29 pass.
    page = make_report(run_cli, "--period", "2026-07-01..2026-09-30")
    assert "8.5.1.3: 28 pass, 1 fail" in page
    # July only: CHG-2 and CHG-5 fail RPT001.
    july = make_report(run_cli, "--period", "2026-07-01..2026-07-31")
    assert "8.5.1.3: 27 pass, 2 fail" in july
    assert (
        "run 1, as of 2026-07-05 06:00 UTC" in july
        and "run 3" not in july.split("Newest run")[1][:200]
    )


def test_mapping_coverage_and_clause_matrix(run_cli: Any) -> None:
    page = make_report(run_cli)
    coverage = page.split('id="coverage"', 1)[1].split("</section>", 1)[0]
    assert "RPT001" in coverage and "source does not provide backout_plan" in coverage
    clauses = page.split('id="clauses"', 1)[1].split("</section>", 1)[0]
    assert re.search(r"9\.2</td>.*?cov manual", clauses, re.DOTALL)
    assert re.search(r"8\.6\.1</td>.*?cov partly", clauses, re.DOTALL)
    assert re.search(r"8\.5\.1\.2</td>.*?cov automated", clauses, re.DOTALL)


def test_waiver_and_trend_are_shown(run_cli: Any) -> None:
    page = make_report(run_cli)
    waivers = page.split('id="waivers"', 1)[1].split("</section>", 1)[0]
    assert (
        "config[0]" in waivers
        and "2099-12-31" in waivers
        and "priority set by the vendor" in waivers
    )
    trend = page.split('id="trend"', 1)[1].split("</section>", 1)[0]
    assert trend.count("<polyline") == 2 and trend.count("<circle") == 6


def test_store_text_is_escaped_and_only_http_links_are_written(filled: Path) -> None:
    from datetime import datetime, timezone

    from ticketlint.config import load_config
    from ticketlint.report.data import collect
    from ticketlint.report.html_report import render_report
    from ticketlint.rules.selection import engine_from_config, registry_from_config
    from ticketlint.store.db import open_store

    cfg = load_config(filled)
    registry = registry_from_config(cfg)
    store = open_store(cfg.database)
    with store.session() as s:
        data = collect(
            s,
            cfg,
            registry,
            {r.code for r in engine_from_config(cfg).rules},
            period=Period(),
            now=datetime(2026, 10, 1, tzinfo=timezone.utc),
        )
    store.dispose()
    evil = dict(
        data.open_findings[0],
        key='K"><script>alert(1)</script>',
        message="<img src=x onerror=alert(1)>",
        url="javascript:alert(1)",
        group='G" onmouseover="x',
    )
    data.open_findings = [evil]
    page = render_report(data)
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "javascript:" not in page
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        and 'data-group="G&quot; onmouseover=&quot;x"' in page
    )


def test_a_period_without_runs_is_refused_not_filled_with_todays_findings(
    run_cli: Any,
) -> None:
    """Issue 17: a --period outside every run showed today's open findings."""
    result = run_cli("report", "-o", "old.html", "--period", "2020-01-01..2020-03-31")
    assert result.exit_code == 2
    assert "no finished sync run has its as-of date in it (runs span 2026-" in result.output
    assert not Path("old.html").exists()


def test_bad_period_and_unknown_source_exit_2(run_cli: Any) -> None:
    result = run_cli("report", "--period", "2026-09-30..2026-07-01")
    assert result.exit_code == 2 and "ends before it starts" in result.output
    result = run_cli("report", "--source", "nope")
    assert result.exit_code == 2 and "not a configured source" in result.output


def test_period_parsing() -> None:
    p = Period.parse("2026-07-01..2026-09-30")
    assert p.contains(p.since) and not p.contains(p.until) and str(p) == "2026-07-01..2026-09-30"
    assert Period.parse("..2026-01-01").start is None and Period.parse(None) == Period()
    for bad in ("2026-07-01", "x..y", "2026-07-01..2026-06-01"):
        with pytest.raises(PeriodError):
            Period.parse(bad)


def test_two_runs_on_one_day_get_distinct_chart_labels() -> None:
    from datetime import datetime, timezone

    from ticketlint.report.html_report import run_labels

    utc = timezone.utc
    instants = [
        datetime(2026, 7, 1, 2, 0, tzinfo=utc),
        datetime(2026, 7, 1, 14, 30, tzinfo=utc),
        datetime(2026, 7, 2, 2, 0, tzinfo=utc),
    ]
    assert run_labels(instants) == ["2026-07-01 02:00", "2026-07-01 14:30", "2026-07-02"]


def test_open_findings_show_the_rule_name_and_how_to_fix(run_cli: Any) -> None:
    """Issue 17: the HTML open-findings table lacked the rule name and remediation."""
    page = make_report(run_cli)
    assert "RPT001<br><small>rpt-backout</small>" in page
    assert "<details><summary>How to fix</summary>" in page
