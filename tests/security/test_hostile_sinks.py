"""The hostile corpus through every output: each sink keeps its own rule.

CSV: no formula cell. JSON / JSONL: valid JSON that gives the strings back. JUnit: valid
XML. Markdown: no link, mention or HTML from ticket text. Text: no control character or
bidi override. Chat: no live mention and no link from ticket text (Slack, Teams, Google
Chat, Mattermost). HTML report and evidence pack: see test_hostile_reports.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
from hostile_support import (
    AS_OF,
    SAFE_URL,
    bare_links,
    corpus,
    formula_cells,
    hostile_findings,
    live_html,
    live_mentions,
    markdown_links,
    terminal_unsafe,
)

from ticketlint.escaping import csv_cell, defang, link_url, markdown_text
from ticketlint.notify import formatters
from ticketlint.notify.digest import Digest, Item
from ticketlint.report import formats
from ticketlint.rules.engine import Evaluation
from ticketlint.rules.selection import load_registry
from ticketlint.store import findings_view
from ticketlint.store.models import FindingRow


def _result(url: str | None = SAFE_URL) -> formats.CheckResult:
    rules = [load_registry().get("CHG006")]
    ev = Evaluation(as_of=AS_OF, rules=rules, findings=hostile_findings(url=url), records=1)
    return formats.CheckResult(evaluation=ev, sources=["jira-prod"])


def _rows() -> list[FindingRow]:
    when = datetime(2026, 3, 1, tzinfo=timezone.utc)
    rows = []
    for n, f in enumerate(hostile_findings(), start=1):
        rows.append(
            FindingRow(
                id=n,
                fingerprint=f.fingerprint,
                rule=f.code,
                source=f.source,
                key=f.key,
                process=f.process,
                severity=f.severity,
                state="open",
                first_seen=when,
                last_seen=when,
                resolved_at=None,
                resolution=None,
                reopened=0,
                message=f.message,
                evidence=f.evidence,
                assignee=f.assignee,
                group=f.group,
                url=f.url,
                waiver=None,
                detail={"name": f.name, "title": f.record_title, "clause": f.clause},
            )
        )
    return rows


# --- the escaping functions themselves ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://x","y")',
        "+cmd|' /C calc'!A0",
        "@SUM(1)",
        "-2+3+cmd",
        "\t=1+1",
        "\r=1",
        "\n=1",
        "  =1",
        "\uff1d1",
    ],
)
def test_csv_cell_neutralises_formula_prefixes(text: str) -> None:
    assert csv_cell(text) == "'" + text.replace("\r", "\n")


def test_csv_cell_leaves_numbers_and_plain_text() -> None:
    assert csv_cell(-3) == -3
    assert csv_cell(None) == ""
    assert csv_cell("OPS-1 has no plan") == "OPS-1 has no plan"
    assert csv_cell("a\x00b") == "ab"


def test_markdown_text_and_defang_break_links_and_mentions() -> None:
    assert markdown_links(markdown_text("[x](https://evil.example)")) == []
    assert live_mentions(defang("@here and @channel")) == []
    assert "j.doe@example.com" in defang("mail j.doe@example.com")  # an address is no mention
    assert link_url("javascript:alert(1)") is None
    assert link_url("https://x.example/a b)") == "https://x.example/a%20b%29"


# --- check formats ----------------------------------------------------------------------------


def test_check_csv_has_no_formula_cell() -> None:
    out = formats.render(_result(), "csv")
    assert formula_cells(out) == []
    assert "'=HYPERLINK" in out


def test_check_json_and_jsonl_give_every_string_back() -> None:
    payload = json.loads(formats.render(_result(), "json"))
    assert {f["assignee"] for f in payload["findings"]} == set(corpus())
    lines = formats.render(_result(), "jsonl").rstrip("\n").split("\n")
    assert len(lines) == len(corpus())
    assert {json.loads(line)["record_title"] for line in lines} == set(corpus())


def test_check_json_is_the_whole_document_encoding() -> None:
    """-f json encodes findings one at a time with its own indenting writer and splices
    them in: the text must be json.dumps(indent=2) of the whole document, hostile strings
    (line breaks, quotes, U+2028, lone surrogates) and all."""
    result = _result()
    whole = {
        "findings": [
            formats.finding_dict(f) for f in formats.sorted_findings(result.evaluation.findings)
        ],
        "summary": formats.summary_dict(result),
        "not_evaluated": formats.not_evaluated_dict(result.evaluation),
        "not_checked": result.report.not_checked(),
    }
    expected = json.dumps(whole, indent=2, ensure_ascii=False) + "\n"
    assert len(whole["findings"]) > 2
    assert formats.render_json(result) == expected
    empty = _result()
    empty.evaluation.findings = []
    assert json.loads(formats.render_json(empty))["findings"] == []


def test_check_junit_is_valid_xml() -> None:
    root = ET.fromstring(formats.render(_result(), "junit").encode("utf-8"))
    assert len(root.findall(".//failure")) == len(corpus())


def test_check_markdown_has_no_link_mention_or_html_from_ticket_text() -> None:
    out = formats.render(_result(), "markdown")
    assert markdown_links(out, allowed=(SAFE_URL,)) == []
    assert live_mentions(out, angle_syntax=False) == []
    assert live_html(out) == []
    # one row per finding: no line break or pipe from ticket text split a row
    rows = [line for line in out.splitlines() if line.startswith("| high |")]
    assert len(rows) == len(corpus())
    assert all(line.count(" | ") == 5 for line in rows)


def test_check_markdown_links_only_http_urls() -> None:
    out = formats.render(_result(url="javascript:alert(1)"), "markdown")
    assert re.search(r"(?<!\\)\]\(javascript", out) is None
    assert "[OPS-1]" not in out  # the key is shown, not linked


def test_check_text_has_no_control_character_or_bidi_override() -> None:
    out = formats.render(_result(), "text")
    assert terminal_unsafe(out.replace("\n", "")) == []


# --- findings (stored) ------------------------------------------------------------------------


def test_findings_csv_has_no_formula_cell() -> None:
    out = findings_view.render_findings(_rows(), "csv")
    assert formula_cells(out) == []


def test_findings_markdown_and_text() -> None:
    md = findings_view.render_findings(_rows(), "markdown")
    assert markdown_links(md, allowed=(SAFE_URL,)) == []
    assert live_mentions(md, angle_syntax=False) == []
    text = findings_view.render_findings(_rows(), "text")
    assert terminal_unsafe(text.replace("\n", "")) == []
    json.loads(findings_view.render_findings(_rows(), "json"))


def test_findings_show_has_no_control_character() -> None:
    out = findings_view.render_show(_rows()[0], [], None)
    for row in _rows():
        out += findings_view.render_show(row, [], None)
    assert terminal_unsafe(out.replace("\n", "")) == []


# --- chat -----------------------------------------------------------------------------------


def _digest(*, kind: str = "digest") -> Digest:
    items = [
        Item(
            fingerprint=f"fp-{n}",
            kind="new",
            code="CHG006",
            severity="high",
            source="jira-prod",
            key=f"OPS-{n}",
            process="change",
            name="change-backout-plan",
            title="A change has a backout plan",
            url=SAFE_URL,
            message=f"no backout plan: {text}",
            assignee=text,
            group=text,
        )
        for n, text in enumerate(corpus()[:-1], start=1)  # the 64 KB string is tested alone
    ]
    return Digest(
        destination="ops",
        dedup_id="ticketlint:run:7:ops",
        run_id=7,
        as_of="2026-03-31T00:00:00Z",
        kind=kind,
        new=items,
        resolved=items[:5],
        counts={"new": len(items), "reopened": 0, "resolved": 5},
        open_by_severity={"high": len(items)},
        failed_sources=["snow-prod: @channel <!here> [x](https://evil.example)"],
        max_findings=100,
        subject="jira-prod/OPS-1",
    )


def _texts(payload: object, *, skip: frozenset[str] = frozenset({"url", "$schema"})) -> str:
    """Every string of a payload that a client renders (URLs of our own buttons aside)."""
    out: list[str] = []

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and key not in skip:
            out.append(node)

    walk(payload)
    return "\n".join(out)


@pytest.mark.parametrize("platform", ["slack", "teams", "googlechat", "mattermost"])
def test_chat_has_no_live_mention_or_link_from_ticket_text(platform: str) -> None:
    for kind in ("digest", "immediate"):
        text = _texts(formatters.format_digest(platform, _digest(kind=kind)))
        if platform == "slack":  # mentions and links need "<": only our own links have one
            assert "<!" not in text and "<@" not in text
            assert [part.split("|")[0] for part in text.split("<")[1:]] == [
                SAFE_URL for _ in text.split("<")[1:]
            ]
        elif platform == "googlechat":  # HTML card text; <users/all> in plain text
            assert live_mentions(text) == []
            assert "<script" not in text and "<img" not in text
            assert text.count("<a href") == text.count(f'<a href="{SAFE_URL}">')
            assert bare_links(text, allowed=(SAFE_URL,)) == []
        else:
            assert live_mentions(text, angle_syntax=False) == [], platform
            assert live_html(text) == [], platform
            assert markdown_links(text, allowed=(SAFE_URL,)) == [], platform


def test_teams_has_no_markdown_link_from_ticket_text() -> None:
    text = _texts(formatters.teams(_digest()))
    assert "](https://evil" not in text
    assert "](javascript" not in text


def test_mattermost_has_no_channel_mention() -> None:
    payload = formatters.mattermost(_digest())
    text = _texts(payload)
    assert "@here" not in text and "@channel" not in text and "@all" not in text


def test_googlechat_labels_are_escaped() -> None:
    payload = formatters.googlechat(_digest())
    labels = [
        w["decoratedText"].get(side, "")
        for s in payload["cardsV2"][0]["card"]["sections"]
        for w in s["widgets"]
        if "decoratedText" in w
        for side in ("topLabel", "bottomLabel")
    ]
    assert labels and all("<script" not in label and "<a " not in label for label in labels)


def test_generic_webhook_is_valid_json_with_the_strings() -> None:
    payload = formatters.webhook(_digest())
    again = json.loads(json.dumps(payload, ensure_ascii=False))
    assert again["new"][0]["assignee"] == corpus()[0]


@pytest.mark.parametrize("platform", ["slack", "teams", "googlechat", "mattermost", "webhook"])
def test_chat_stays_within_limits_with_a_64k_string(platform: str) -> None:
    digest = _digest()
    big = corpus()[-1]
    digest.new = [
        Item(
            fingerprint="fp-big",
            kind="new",
            code="CHG006",
            severity="high",
            source="jira-prod",
            key="OPS-1",
            process="change",
            message=big,
            assignee=big,
            group=big,
        )
    ]
    payload = formatters.format_digest(platform, digest)
    assert formatters.size(payload) < 200_000
