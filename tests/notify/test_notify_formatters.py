"""Every platform's payload: byte-for-byte snapshots, documented shape, and limits with 500
findings (cut with "and N more")."""

from __future__ import annotations

import json

import pytest
from notify_support import assert_snapshot, many_findings

from ticketlint.config import NotifyDestination
from ticketlint.notify.digest import Digest, build_digest, sample_exposure, sample_items
from ticketlint.notify.formatters import (
    FORMATTERS,
    GOOGLECHAT_MAX_WIDGETS,
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_CHARS,
    size,
)
from ticketlint.notify.outbox import item_from_finding

PLATFORMS = sorted(FORMATTERS)
AS_OF = "2026-03-31T00:00:00Z"


def dest(platform: str, **kw: object) -> NotifyDestination:
    return NotifyDestination(name="ops", type=platform, url="https://hooks.example/secret", **kw)


def sample(platform: str) -> Digest:
    return build_digest(
        dest(platform, report_url="https://reports.example/ticketlint.html"),
        sample_items(),
        run_id=42,
        as_of=AS_OF,
        failed_sources=["snow-prod: HTTP 503 from the Table API"],
        exposure=sample_exposure(),
    )


def big(platform: str, n: int = 500, *, long: bool = False) -> Digest:
    items = [item_from_finding(f, "new") for f in many_findings(n, long=long)]
    items += [item_from_finding(f, "resolved") for f in many_findings(n)]
    return build_digest(
        dest(
            platform,
            min_severity="info",
            max_findings=100,
            report_url="https://reports.example/r.html",
        ),
        items,
        run_id=9,
        as_of=AS_OF,
    )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_payload_matches_snapshot(platform: str) -> None:
    assert_snapshot(f"{platform}.json", FORMATTERS[platform](sample(platform)))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_immediate_payload_matches_snapshot(platform: str) -> None:
    items = [i for i in sample_items() if i.kind == "new"]
    d = build_digest(
        dest(platform),
        items,
        run_id=None,
        as_of=AS_OF,
        kind="immediate",
        dedup_id="ticketlint:immediate:ops:jira-prod:CHG-101:0123abcd",
        subject="jira-prod/CHG-101",
    )
    assert_snapshot(f"{platform}-immediate.json", FORMATTERS[platform](d))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_formatters_are_pure_and_carry_the_run_id(platform: str) -> None:
    d = sample(platform)
    first = FORMATTERS[platform](d)
    assert FORMATTERS[platform](d) == first
    text = json.dumps(first)
    assert "ticketlint:run:42:ops" in text
    assert ('"run_id": 42' in text) if platform == "webhook" else ("run 42" in text)


def test_slack_shape() -> None:
    p = FORMATTERS["slack"](sample("slack"))
    assert isinstance(p["text"], str) and p["text"]
    assert p["blocks"][0]["type"] == "header" and p["blocks"][0]["text"]["type"] == "plain_text"
    assert {b["type"] for b in p["blocks"]} <= {
        "header",
        "section",
        "context",
        "actions",
        "divider",
    }
    assert any(
        b.get("text", {})
        .get("text", "")
        .startswith("*<https://example.atlassian.net/browse/CHG-101|CHG-101>*")
        for b in p["blocks"]
    )


def test_teams_shape() -> None:
    p = FORMATTERS["teams"](sample("teams"))
    assert p["type"] == "message" and len(p["attachments"]) == 1
    att = p["attachments"][0]
    assert (
        att["contentType"] == "application/vnd.microsoft.card.adaptive"
        and att["contentUrl"] is None
    )
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["actions"][0] == {
        "type": "Action.OpenUrl",
        "title": "Open the report",
        "url": "https://reports.example/ticketlint.html",
    }


def test_googlechat_shape() -> None:
    p = FORMATTERS["googlechat"](sample("googlechat"))
    assert isinstance(p["text"], str)
    card = p["cardsV2"][0]
    assert card["cardId"] == "ticketlint-run-42-ops"
    assert card["card"]["header"]["title"] and all("widgets" in s for s in card["card"]["sections"])


def test_mattermost_shape() -> None:
    p = FORMATTERS["mattermost"](sample("mattermost"))
    assert p["text"].startswith("#### ticketlint:")
    assert all(a["fallback"] and a["color"].startswith("#") for a in p["attachments"])


def test_html_and_mrkdwn_are_escaped() -> None:
    items = [item_from_finding(f, "new") for f in many_findings(1)]
    items = [
        items[0].__class__(**{**items[0].to_dict(), "missing": (), "message": "<b>x</b> & <y>"})
    ]
    gc = json.dumps(
        FORMATTERS["googlechat"](
            build_digest(dest("googlechat", min_severity="info"), items, run_id=1, as_of=AS_OF)
        )
    )
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &lt;y&gt;" in gc
    sl = json.dumps(
        FORMATTERS["slack"](
            build_digest(dest("slack", min_severity="info"), items, run_id=1, as_of=AS_OF)
        )
    )
    assert "&lt;b&gt;x&lt;/b&gt; &amp; &lt;y&gt;" in sl


@pytest.mark.parametrize("long", [False, True])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_500_findings_stay_within_the_platform_limits(platform: str, long: bool) -> None:
    d = big(platform, long=long)
    p = FORMATTERS[platform](d)
    text = json.dumps(p, ensure_ascii=False)
    if platform == "slack":
        assert len(p["blocks"]) <= SLACK_MAX_BLOCKS
        for b in p["blocks"]:
            if b["type"] == "section" and "text" in b:
                assert len(b["text"]["text"]) <= SLACK_SECTION_CHARS
            if b["type"] == "header":
                assert len(b["text"]["text"]) <= 150
        assert len(json.dumps(p["blocks"], ensure_ascii=False)) <= 12_000
    elif platform == "teams":
        assert size(p) <= 28 * 1024
    elif platform == "googlechat":
        assert size(p) <= 32_000
        assert (
            sum(len(s["widgets"]) for s in p["cardsV2"][0]["card"]["sections"])
            <= GOOGLECHAT_MAX_WIDGETS
        )
    elif platform == "mattermost":
        assert len(p["text"]) <= 16_383
        assert len(json.dumps(p["attachments"], ensure_ascii=False)) <= 7_900
    else:
        assert len(p["new"]) == 100 and p["more"] == {"new": 400, "resolved": 400}
    if platform != "webhook":
        assert "more new findings" in text and "more resolved" in text
        # The most severe come first: the first listed finding is a critical one.
        assert "CRITICAL CHG" in text and "LOW CHG" not in text
        shown = text.count("https://example.atlassian.net/browse/")
        n_more = int(text.split(" more new findings")[0].rsplit("and ", 1)[1])
        assert shown >= 10 and n_more == 500 - shown


def test_max_findings_caps_the_list() -> None:
    items = [item_from_finding(f, "new") for f in many_findings(30)]
    d = build_digest(
        dest("slack", min_severity="info", max_findings=5), items, run_id=3, as_of=AS_OF
    )
    text = json.dumps(FORMATTERS["slack"](d))
    assert text.count("https://example.atlassian.net/browse/") == 5
    assert "and 25 more new findings" in text
