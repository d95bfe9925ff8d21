"""Escaping of ticket text for each sink: one function per sink rule, shared by every writer.

Every string that comes from a ticket (title, assignee, group, status, comment, key) is
hostile until it is escaped for where it goes:

- :func:`csv_cell`: a spreadsheet must not run a cell as a formula (CSV injection). A
  text cell whose first meaningful character is ``= + - @`` (or their full-width forms),
  or that starts with a tab, carriage return or line feed, gets a leading apostrophe;
  NUL characters are dropped and a bare carriage return becomes a line feed (which the
  writer quotes; a bare CR would start a new row). Every CSV writer of ticketlint goes through it.
- :func:`defang`: chat text must not mention a whole channel or person (``@here``,
  ``@channel``, ``@all``, ``@user``) nor carry a clickable address from ticket text: a
  word joiner (U+2060, invisible) is put after ``@`` and inside ``scheme://`` and
  ``www.``.
- :func:`plain_text`: text for a terminal or a log line: control characters (ESC starts
  terminal escape sequences) and bidi overrides are shown as escapes (``\\x1b``); tabs
  and line breaks stay only when asked for.
- :func:`markdown_text`: markdown (CommonMark / GitHub / Mattermost) shows the text as
  typed: the punctuation that starts a link, an image, HTML, code or a table cell gets a
  backslash (emphasis is left alone: it cannot link or mention), line breaks become
  spaces, then :func:`plain_text` and :func:`defang`.
- :func:`jira_wiki_text`, :func:`journal_text`, :func:`adf_text`: write-back comments
  and work notes (Jira Data Center wiki markup, ServiceNow journal, Jira Cloud ADF).
- :func:`link_url`: a URL ticketlint puts in a link itself (``base_url/browse/KEY``) is
  used only when it is ``http(s)`` and is percent-encoded where markdown or HTML would
  end the link early.

Pure functions, no imports from the rest of ticketlint: every layer may use them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

WORD_JOINER = "\u2060"
FORMULA_PREFIXES = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
"""First characters a spreadsheet reads as the start of a formula (ASCII and full-width)."""
_CONTROL_PREFIXES = ("\t", "\r", "\n")
_MENTION = re.compile(r"(?<!\w)@(?=[\w\[<])")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}):(?=//)")
_WWW = re.compile(r"(?i)\b(www)\.")
_MARKDOWN_SPECIAL = re.compile(r"([\\`\[\]<>|~])")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls (terminal escape sequences start with ESC) and the bidi embedding,
override and isolate characters that make text display in another order than it reads."""
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SAFE_SCHEMES = ("http", "https")


def csv_cell(value: Any) -> Any:
    """One CSV cell: numbers and booleans as they are, ``None`` as an empty cell, text
    that a spreadsheet would run as a formula with a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return value
    # A bare CR is not quoted by Python's csv writer (lineterminator "\n") and starts a
    # new row in a spreadsheet: line breaks become "\n", which the writer quotes.
    text = str(value).replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    if text.startswith(_CONTROL_PREFIXES):
        return "'" + text
    stripped = text.lstrip(" \u00a0\u3000")
    if stripped[:1] in FORMULA_PREFIXES:
        return "'" + text
    return text


def csv_row(values: Any) -> list[Any]:
    """Every cell of a row through :func:`csv_cell`."""
    return [csv_cell(v) for v in values]


def defang(text: Any) -> str:
    """Chat text with no live mention and no auto-linked address (see module docstring)."""
    if text is None:
        return ""
    out = str(text).replace("\x00", "")
    out = _MENTION.sub("@" + WORD_JOINER, out)
    out = _SCHEME.sub(lambda m: m.group(1) + WORD_JOINER + ":", out)
    return _WWW.sub(lambda m: m.group(1) + WORD_JOINER + ".", out)


def _visible(m: re.Match[str]) -> str:
    code = ord(m.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def plain_text(text: Any, *, multiline: bool = False) -> str:
    """Text with no control character and no bidi override: each is shown as its escape
    (``\\x1b``, ``\\u202e``), inert and visible; line breaks and tabs are kept when
    ``multiline``, otherwise they become spaces."""
    if text is None:
        return ""
    out = str(text)
    if not multiline:
        out = out.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    else:
        out = out.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub(_visible, out)


def markdown_text(text: Any) -> str:
    """Ticket text for a markdown line or table cell: literal, on one line, no link."""
    if text is None:
        return ""
    one_line = " ".join(plain_text(text).split())
    return defang(_MARKDOWN_SPECIAL.sub(r"\\\1", one_line))


_WIKI_SPECIAL = re.compile(r"([\\\[\]{}!|])")
_CODE_TAG = re.compile(r"(?i)\[(/?)(code)\]")


def jira_wiki_text(text: Any) -> str:
    """Jira Data Center wiki markup from ticket text: the characters that open a link,
    a user mention (``[~user]``), a macro (``{html}``), an image (``!x.png!``) or a table
    get a backslash; controls go, addresses are defanged."""
    return defang(_WIKI_SPECIAL.sub(r"\\\1", plain_text(text)))


def journal_text(text: Any) -> str:
    """A ServiceNow journal entry (work note) from ticket text: ``[code]…[/code]`` would
    render HTML there, so the tag is broken by a word joiner; controls go, addresses are
    defanged."""
    return defang(
        _CODE_TAG.sub(lambda m: f"[{WORD_JOINER}{m.group(1)}{m.group(2)}]", plain_text(text))
    )


def adf_text(text: Any) -> str:
    """An ADF text node (literal by construction): no controls, no auto-linked address."""
    return defang(plain_text(text))


def xml_text(text: Any) -> str:
    """Text an XML 1.0 document can hold: characters XML forbids (NUL, most C0 controls,
    lone surrogates, U+FFFE/U+FFFF) become U+FFFD; ElementTree escapes the rest."""
    if text is None:
        return ""
    return _XML_FORBIDDEN.sub("\ufffd", str(text))


def link_url(url: Any) -> str | None:
    """A URL safe to put inside ``[text](url)`` or ``href="..."``: ``http(s)`` only, with
    spaces, quotes, brackets and control characters percent-encoded; None otherwise."""
    if not isinstance(url, str) or not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    if scheme not in _SAFE_SCHEMES:
        return None
    return quote(url.strip(), safe="/:?#&=%+,;@!$*~.-_")
