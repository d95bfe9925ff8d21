"""One pure formatter per platform: :class:`Digest` -> the JSON body that platform accepts.

Each stays within its platform's documented limits and ends a cut list with "and N more":

- Slack (Block Kit, incoming webhook): at most 50 blocks, 3000 characters per section
  text, 150 per header, plus a top-level ``text`` fallback for notifications. Slack also
  rejects messages whose blocks hold much more than ~12,000 characters in total
  (``msg_blocks_too_long``), so the whole stays under :data:`SLACK_TOTAL_CHARS`.
- Microsoft Teams (Workflows "When a Teams webhook request is received"): ``{"type":
  "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
  "contentUrl": null, "content": <Adaptive Card 1.4>}]}``, the whole under ~28 KB.
- Google Chat (incoming webhook): ``{"text", "cardsV2": [{"cardId", "card"}]}``, under
  32,000 bytes and 100 widgets per card.
- Mattermost (incoming webhook): ``{"text", "attachments": [...]}`` with a ``fallback``
  in every attachment; text well under 16,383 characters and attachments under the
  7,900 characters older servers accept.
- Generic webhook: ticketlint's own JSON (signed by the delivery code, not here).

Every payload carries the run id and the digest's de-duplication id.

Ticket text (keys, assignees, groups, messages, failed-source errors) is hostile: each
platform escapes it by its own rule, so none of it mentions a channel or a person or
links anywhere. Slack: ``& < >`` as entities (``<!channel>``, ``<@U…>`` and ``<url|x>``
need ``<``). Mattermost: markdown punctuation backslashed and ``@``, ``scheme://`` and
``www.`` broken by a word joiner (:func:`ticketlint.escaping.markdown_text`). Teams (Adaptive
Card markdown, which knows no backslash escapes): the same word joiner also between
``]`` and ``(`` so no ``[text](url)`` forms. Google Chat: HTML-escaped text and labels,
and :func:`~ticketlint.escaping.defang` for ``<users/all>`` and addresses. The only links
are ticketlint's own (``http(s)`` record URLs and the report URL).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from ticketlint.escaping import WORD_JOINER, defang, link_url, markdown_text, plain_text
from ticketlint.notify.digest import Digest, Item

SLACK_MAX_BLOCKS = 50
SLACK_SECTION_CHARS = 3000
SLACK_HEADER_CHARS = 150
SLACK_TOTAL_CHARS = 11_000
TEAMS_MAX_BYTES = 27_000
GOOGLECHAT_MAX_BYTES = 30_000
GOOGLECHAT_MAX_WIDGETS = 100
MATTERMOST_TEXT_CHARS = 4_000
MATTERMOST_ATTACHMENTS_CHARS = 7_800
WEBHOOK_MAX_ITEMS = 100
RESOLVED_BRIEF = 20
MESSAGE_CHARS = 300

SEVERITY_COLOURS = {
    "critical": "#8b0000",
    "high": "#d00000",
    "medium": "#e8912d",
    "low": "#daa038",
    "info": "#439fe0",
}


def size(payload: Any) -> int:
    """Bytes of the JSON as it is sent (UTF-8, compact)."""
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def more(n: int, what: str) -> str:
    return f"and {n} more {what}"


def who(item: Item) -> str:
    parts = [f"assignee: {item.assignee or 'unassigned'}"]
    if item.group:
        parts.append(f"group: {item.group}")
    if item.missing:
        parts.append("missing: " + ", ".join(item.missing))
    return " · ".join(parts)


def headline(item: Item) -> str:
    tag = " (reopened)" if item.kind == "reopened" else ""
    return f"{item.severity.upper()} {item.code} {item.title or item.name}{tag}"


def _fill(
    items: list[Item], limit: int, render: Callable[[Item], Any], fits: Callable[[list[Any]], bool]
) -> list[Any]:
    """Render items in order while ``fits`` accepts the list so far (and ``limit`` allows)."""
    out: list[Any] = []
    for item in items[:limit]:
        candidate = [*out, render(item)]
        if not fits(candidate):
            break
        out = candidate
    return out


def counts_lines(d: Digest) -> list[tuple[str, str]]:
    c = d.counts
    rows = [
        ("New", str(c.get("new", 0))),
        ("Reopened", str(c.get("reopened", 0))),
        ("Resolved", str(c.get("resolved", 0))),
        ("Open", f"{d.open_total} ({d.severity_line()})"),
    ]
    return rows


EXPOSURE_HEADING = "Audit exposure rose"


def exposure_lines(d: Digest) -> list[str]:
    """One line per process whose audit exposure rose since the last run. Built from a
    process name and numbers only (no ticket text); each platform escapes it as it
    escapes its other text."""
    return [x.text for x in d.exposure]


def resolved_brief(d: Digest, limit: int = RESOLVED_BRIEF) -> str:
    shown = [f"{i.key} {i.code}" for i in d.resolved[:limit]]
    text = ", ".join(shown)
    if len(d.resolved) > limit:
        text += f", {more(len(d.resolved) - limit, 'resolved')}"
    return text


# --- Slack -----------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(item: Item) -> str:
    key = _slack_escape(item.key)
    href = link_url(item.url)
    return f"<{href.replace('|', '%7C')}|{key}>" if href else key


def _slack_chars(blocks: list[dict[str, Any]]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def slack(d: Digest) -> dict[str, Any]:
    def section(text: str) -> dict[str, Any]:
        return {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(text, SLACK_SECTION_CHARS)},
        }

    head: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(d.title(), SLACK_HEADER_CHARS)},
        },
    ]
    if d.kind != "immediate":
        head.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{k}*\n{_slack_escape(v)}"}
                    for k, v in counts_lines(d)
                ],
            }
        )
    if d.failed_sources:
        head.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": clip(
                            "Failed sources (their findings are unchanged): "
                            + _slack_escape("; ".join(d.failed_sources)),
                            SLACK_SECTION_CHARS,
                        ),
                    }
                ],
            }
        )
    if d.exposure:
        head.append(
            section(
                f"*{EXPOSURE_HEADING}*\n"
                + "\n".join(_slack_escape(line) for line in exposure_lines(d))
            )
        )
    tail: list[dict[str, Any]] = []
    if d.resolved:
        tail.append(section(f"*Resolved ({len(d.resolved)}):* " + _slack_escape(resolved_brief(d))))
    if d.report_url:
        tail.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the report"},
                        "url": d.report_url,
                    }
                ],
            }
        )
    tail.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(d.footer())}]}
    )

    def render(item: Item) -> dict[str, Any]:
        text = (
            f"*{_slack_link(item)}* {_slack_escape(headline(item))}\n"
            f"{_slack_escape(clip(item.message, MESSAGE_CHARS))}\n_{_slack_escape(who(item))}_"
        )
        return section(text)

    # Room for the "New" heading and the "and N more" line.
    reserve = 2

    def fits(rendered: list[Any]) -> bool:
        blocks = head + rendered + tail
        return (
            len(blocks) + reserve <= SLACK_MAX_BLOCKS
            and _slack_chars(blocks) <= SLACK_TOTAL_CHARS - 400
        )

    shown = _fill(d.new, d.max_findings, render, fits)
    body = list(head)
    if d.new:
        body.append(section(f"*New and reopened ({len(d.new)})*"))
        body += shown
        if len(d.new) > len(shown):
            body.append(
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": more(len(d.new) - len(shown), "new findings")}
                    ],
                }
            )
    body += tail
    return {"text": _slack_escape(f"{d.title()} ({d.footer()})"), "blocks": body}


# --- Microsoft Teams (Workflows + Adaptive Card) ---------------------------------------------


def _md_link(item: Item) -> str:
    """Mattermost: the record's key (escaped) linked to its http(s) URL."""
    href = link_url(item.url)
    return f"[{markdown_text(item.key)}]({href})" if href else markdown_text(item.key)


def _teams_text(text: Any) -> str:
    """Adaptive Card markdown from ticket text: no mention, no address, no ``[x](y)``."""
    out = defang(plain_text(text))
    return out.replace("](", "]" + WORD_JOINER + "(").replace("<", "\uff1c")


def _teams_link(item: Item) -> str:
    href = link_url(item.url)
    key = _teams_text(item.key).replace("[", "(").replace("]", ")")
    return f"[{key}]({href})" if href else key


def teams(d: Digest) -> dict[str, Any]:
    head: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": _teams_text(d.title()),
            "size": "Large",
            "weight": "Bolder",
            "wrap": True,
        },
    ]
    if d.kind != "immediate":
        head.append(
            {
                "type": "FactSet",
                "facts": [{"title": k, "value": _teams_text(v)} for k, v in counts_lines(d)],
            }
        )
    if d.failed_sources:
        head.append(
            {
                "type": "TextBlock",
                "text": "Failed sources (their findings are unchanged): "
                + _teams_text("; ".join(d.failed_sources)),
                "wrap": True,
                "color": "Warning",
            }
        )
    if d.exposure:
        head.append(
            {
                "type": "TextBlock",
                "text": f"**{EXPOSURE_HEADING}**\n\n" + "\n\n".join(exposure_lines(d)),
                "wrap": True,
                "color": "Warning",
            }
        )
    tail: list[dict[str, Any]] = []
    if d.resolved:
        tail.append(
            {
                "type": "TextBlock",
                "text": f"**Resolved ({len(d.resolved)}):** {_teams_text(resolved_brief(d))}",
                "wrap": True,
                "separator": True,
            }
        )
    tail.append(
        {
            "type": "TextBlock",
            "text": _teams_text(d.footer()),
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
        }
    )

    def render(item: Item) -> dict[str, Any]:
        return {
            "type": "Container",
            "separator": True,
            "items": [
                {
                    "type": "TextBlock",
                    "wrap": True,
                    "text": f"**{_teams_link(item)}** {_teams_text(headline(item))}",
                    "color": "Attention" if item.severity in ("critical", "high") else "Default",
                },
                {
                    "type": "TextBlock",
                    "wrap": True,
                    "spacing": "None",
                    "text": _teams_text(clip(item.message, MESSAGE_CHARS)),
                },
                {
                    "type": "TextBlock",
                    "wrap": True,
                    "spacing": "None",
                    "isSubtle": True,
                    "text": _teams_text(who(item)),
                },
            ],
        }

    def wrap(body: list[dict[str, Any]]) -> dict[str, Any]:
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
            "msteams": {"width": "Full"},
        }
        if d.report_url:
            card["actions"] = [
                {"type": "Action.OpenUrl", "title": "Open the report", "url": d.report_url}
            ]
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }

    more_block = {
        "type": "TextBlock",
        "text": more(len(d.new), "new findings"),
        "wrap": True,
        "isSubtle": True,
    }

    def fits(rendered: list[Any]) -> bool:
        return size(wrap(head + rendered + [more_block] + tail)) <= TEAMS_MAX_BYTES

    shown = _fill(d.new, d.max_findings, render, fits)
    body = list(head)
    if d.new:
        body.append(
            {
                "type": "TextBlock",
                "text": f"New and reopened ({len(d.new)})",
                "weight": "Bolder",
                "separator": True,
            }
        )
        body += shown
        if len(d.new) > len(shown):
            body.append({**more_block, "text": more(len(d.new) - len(shown), "new findings")})
    return wrap(body + tail)


# --- Google Chat (incoming webhook, cardsV2) ----------------------------------------------


def _h(text: str) -> str:
    """Google Chat card text: HTML-escaped (``<users/all>`` and tags inert), defanged."""
    return defang(html.escape(plain_text(text), quote=False))


def googlechat(d: Digest) -> dict[str, Any]:
    sections: list[dict[str, Any]] = []
    if d.kind != "immediate":
        sections.append(
            {
                "header": "Counts",
                "widgets": [
                    {"decoratedText": {"topLabel": k, "text": _h(v)}} for k, v in counts_lines(d)
                ],
            }
        )
    if d.failed_sources:
        sections.append(
            {
                "widgets": [
                    {
                        "textParagraph": {
                            "text": "<b>Failed sources</b> (their findings are "
                            "unchanged): " + _h("; ".join(d.failed_sources))
                        }
                    }
                ]
            }
        )
    if d.exposure:
        sections.append(
            {
                "header": EXPOSURE_HEADING,
                "widgets": [{"textParagraph": {"text": _h(line)}} for line in exposure_lines(d)],
            }
        )
    tail: list[dict[str, Any]] = []
    if d.resolved:
        tail.append(
            {
                "header": f"Resolved ({len(d.resolved)})",
                "widgets": [{"textParagraph": {"text": _h(resolved_brief(d))}}],
            }
        )
    footer_widgets: list[dict[str, Any]] = [{"textParagraph": {"text": _h(d.footer())}}]
    if d.report_url:
        footer_widgets.insert(
            0,
            {
                "buttonList": {
                    "buttons": [
                        {"text": "Open the report", "onClick": {"openLink": {"url": d.report_url}}}
                    ]
                }
            },
        )
    tail.append({"widgets": footer_widgets})

    def render(item: Item) -> dict[str, Any]:
        href = link_url(item.url)
        key = (
            f'<a href="{html.escape(href, quote=True)}">{_h(item.key)}</a>'
            if href
            else _h(item.key)
        )
        return {
            "decoratedText": {
                "topLabel": _h(clip(headline(item), 120)),
                "wrapText": True,
                "text": f"<b>{key}</b> {_h(clip(item.message, MESSAGE_CHARS))}",
                "bottomLabel": _h(clip(who(item), 120)),
            }
        }

    def wrap(secs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "text": _gchat_plain(f"{d.title()} ({d.footer()})"),
            "cardsV2": [
                {
                    "cardId": _card_id(d),
                    "card": {
                        "header": {
                            "title": _h(clip(d.title(), 200)),
                            "subtitle": f"run {d.run_id}" if d.run_id else d.kind,
                        },
                        "sections": secs,
                    },
                }
            ],
        }

    def widgets(secs: list[dict[str, Any]]) -> int:
        return sum(len(s["widgets"]) for s in secs)

    more_widget = {"textParagraph": {"text": more(len(d.new), "new findings")}}

    def new_section(rendered: list[Any], extra: list[Any]) -> dict[str, Any]:
        return {"header": f"New and reopened ({len(d.new)})", "widgets": rendered + extra}

    def fits(rendered: list[Any]) -> bool:
        secs = [*sections, new_section(rendered, [more_widget]), *tail]
        return widgets(secs) <= GOOGLECHAT_MAX_WIDGETS and size(wrap(secs)) <= GOOGLECHAT_MAX_BYTES

    shown = _fill(d.new, d.max_findings, render, fits)
    secs = list(sections)
    if d.new:
        extra = (
            [{"textParagraph": {"text": more(len(d.new) - len(shown), "new findings")}}]
            if len(d.new) > len(shown)
            else []
        )
        secs.append(new_section(shown, extra))
    return wrap(secs + tail)


def _gchat_plain(text: str) -> str:
    """The message's plain ``text``: Google Chat reads ``<users/all>`` and ``<url|x>``
    there, so ``<`` and ``>`` become look-alikes, and addresses are defanged."""
    return defang(plain_text(text)).replace("<", "\u2039").replace(">", "\u203a")


def _card_id(d: Digest) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in d.dedup_id)[:64]


# --- Mattermost (incoming webhook) -----------------------------------------------------------


def mattermost(d: Digest) -> dict[str, Any]:
    md = markdown_text
    lines = [f"#### {md(d.title())}"]
    if d.kind != "immediate":
        lines.append(" · ".join(f"**{k}:** {md(v)}" for k, v in counts_lines(d)))
    if d.failed_sources:
        lines.append(
            "**Failed sources** (their findings are unchanged): " + md("; ".join(d.failed_sources))
        )
    if d.exposure:  # ticketlint's own figures, not ticket text
        lines.append(f"**{EXPOSURE_HEADING}:**")
        lines += [f"- {line}" for line in exposure_lines(d)]
    report = link_url(d.report_url)
    if report:
        lines.append(f"[Open the report]({report})")
    lines.append(f"_{md(d.footer())}_")
    text = clip("\n".join(lines), MATTERMOST_TEXT_CHARS)

    def render(item: Item) -> str:
        return (
            f"- **{_md_link(item)}** {md(headline(item))}: {md(clip(item.message, MESSAGE_CHARS))}"
            f"\n  _{md(who(item))}_"
        )

    worst = d.new[0].severity if d.new else "info"
    resolved_att = (
        {
            "fallback": md(f"Resolved ({len(d.resolved)}): {resolved_brief(d)}"),
            "color": "#2eb886",
            "title": f"Resolved ({len(d.resolved)})",
            "text": md(resolved_brief(d)),
        }
        if d.resolved
        else None
    )

    def attachments(rendered: list[str], more_line: str | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if d.new:
            body = "\n".join(rendered + ([more_line] if more_line else []))
            out.append(
                {
                    "fallback": f"{len(d.new)} new or reopened findings",
                    "color": SEVERITY_COLOURS.get(worst, "#439fe0"),
                    "title": f"New and reopened ({len(d.new)})",
                    "text": body,
                }
            )
        if resolved_att:
            out.append(resolved_att)
        return out

    def fits(rendered: list[Any]) -> bool:
        return (
            size(attachments(rendered, more(len(d.new), "new findings")))
            <= MATTERMOST_ATTACHMENTS_CHARS
        )

    shown = _fill(d.new, d.max_findings, render, fits)
    rest = len(d.new) - len(shown)
    payload: dict[str, Any] = {"text": text}
    atts = attachments(shown, more(rest, "new findings") if rest else None)
    if atts:
        payload["attachments"] = atts
    return payload


# --- generic webhook ---------------------------------------------------------------------


def webhook(d: Digest) -> dict[str, Any]:
    """ticketlint's own JSON: full finding fields, bounded lists, counts, ids."""
    return {
        "type": f"ticketlint.{d.kind}",
        "version": 1,
        "id": d.dedup_id,
        "run_id": d.run_id,
        "as_of": d.as_of,
        "destination": d.destination,
        "title": d.title(),
        "subject": d.subject,
        "counts": dict(d.counts),
        "open_by_severity": dict(d.open_by_severity),
        "failed_sources": list(d.failed_sources),
        "report_url": d.report_url,
        "new": [i.to_dict() for i in d.new[:WEBHOOK_MAX_ITEMS]],
        "resolved": [i.to_dict() for i in d.resolved[:WEBHOOK_MAX_ITEMS]],
        "exposure": [x.to_dict() for x in d.exposure],
        "more": {
            "new": max(0, len(d.new) - WEBHOOK_MAX_ITEMS),
            "resolved": max(0, len(d.resolved) - WEBHOOK_MAX_ITEMS),
        },
    }


FORMATTERS: dict[str, Callable[[Digest], dict[str, Any]]] = {
    "slack": slack,
    "teams": teams,
    "googlechat": googlechat,
    "mattermost": mattermost,
    "webhook": webhook,
}


def format_digest(platform: str, d: Digest) -> dict[str, Any]:
    return FORMATTERS[platform](d)
