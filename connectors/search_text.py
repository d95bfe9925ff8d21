"""What the first pass over a Jira export folder needs from a search page, read off its
text instead of parsing the whole page.

``check --input`` reads a Jira folder twice: a first pass gathers what crosses pages
(the review issues, and which issues each changelog file serves), then each page is
parsed again and mapped. With ``field.json`` beside the pages, the first pass needs only
two things of a page: the ids and keys of its issues, and its review issues. Both are
found in the text Jira writes: every issue object begins ``{"expand": "...", "id": "...",
"self": "...", "key": "..."`` (compact or indented), and a review issue names its type
in an ``"issuetype": {... "name": "..."}`` object. Only the issues whose text names a
review type (their own type or a linked issue's) are decoded, each alone.

A page that does not read this way (another key order, an issue head with escapes, an
object with ``"expand"`` that is not an issue head) gets None, and the caller parses it
whole. What this reading finds is checked when the second pass parses the page: the
ids, keys and review index it gives must be those of the parsed page, or the whole
batch is read instead (``connectors.files.NeedsBatch``).
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_WS = r"[ \t\n\r]*"
_ISSUES_OR_TYPE = re.compile(rf'"issue(s|type)"{_WS}:{_WS}([\[{{])')
"""An ``"issues": [`` array or an ``"issuetype": {`` object, found in one scan (a pattern
each scanned the text twice: ~0.4 ms a page more)."""
_EXPAND_OBJECT = re.compile(rf'\{{{_WS}"expand"{_WS}:')
_ISSUE_HEAD = re.compile(
    rf'\{{{_WS}"expand"{_WS}:{_WS}"[^"\\]*"{_WS},'
    rf'{_WS}"id"{_WS}:{_WS}"([^"\\]*)"{_WS},'
    rf'{_WS}"self"{_WS}:{_WS}"[^"\\]*(?:\\.[^"\\]*)*"{_WS},'
    rf'{_WS}"key"{_WS}:{_WS}"([^"\\]*)"'
)
_STRING_VALUE = re.compile(rf'{_WS}:{_WS}"([^"\\]*(?:\\.[^"\\]*)*)"')
_DECODER = json.JSONDecoder()


@dataclass
class PageSkim:
    """A search page as the first pass needs it."""

    idents: set[str]
    """The id and key of every issue of the page."""
    candidates: list[dict[str, Any]]
    """In page order, the issues whose text names a review issue type (their own type
    or a linked issue's): every review issue of the page is among them."""


def skim_search_page(text: str, is_review_type: Callable[[str], bool]) -> PageSkim | None:
    """The page's issue idents and review candidates, or None when the text does not
    read as a Jira search response whose issues all begin with the usual head."""
    arrays: list[int] = []  # where each "issues" array's items begin
    type_objects: list[tuple[int, int]] = []  # each "issuetype" key and its object's brace
    for found in _ISSUES_OR_TYPE.finditer(text):
        suffix, opening = found.groups()
        if suffix == "s":
            if opening == "[":
                arrays.append(found.end())
        elif opening == "{":
            type_objects.append((found.start(), found.end() - 1))
    if not arrays:
        return None
    page_start = _after_whitespace(text, 0)
    starts: list[int] = []
    idents: set[str] = set()
    for found in _EXPAND_OBJECT.finditer(text):
        if found.start() == page_start:
            continue  # a Data Center page begins {"expand": "names,schema", ...
        head = _ISSUE_HEAD.match(text, found.start())
        if head is None:
            return None  # an issue head written otherwise, or another object with "expand"
        starts.append(found.start())
        idents.update(head.groups())
    opening = set(starts)
    for array in arrays:
        first = _after_whitespace(text, array)
        if text[first : first + 1] != "]" and first not in opening:
            return None  # the first issue does not begin with the usual head
    hits: dict[int, int] = {}  # issue start -> the last review type name inside it
    for key_at, brace in type_objects:
        try:
            name = _type_name(text, brace)
        except ValueError:
            return None
        if name is None or not is_review_type(name):
            continue
        number = bisect_right(starts, key_at) - 1
        if number < 0:
            return None  # outside every issue
        hits[starts[number]] = key_at
    candidates: list[dict[str, Any]] = []
    for start, last_hit in hits.items():  # in page order: hits come in text order
        try:
            issue, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            return None  # the full reader salvages what json refuses
        if end <= last_hit or not isinstance(issue, dict) or "fields" not in issue:
            return None
        candidates.append(issue)
    return PageSkim(idents, candidates)


def _after_whitespace(text: str, at: int) -> int:
    while text[at : at + 1] in (" ", "\t", "\n", "\r"):
        at += 1
    return at


def _type_name(text: str, brace: int) -> str | None:
    """The ``name`` of the issue type object at ``text[brace]`` (None: it has no string
    name, so it names no review type). Raises ``ValueError`` when the object cannot be
    decoded here (the page is parsed instead).

    The first ``"name"`` after the brace is the object's own key when no brace comes
    between (an object inside would begin with one) and a colon follows it (a string
    value ``"name"`` is followed by a comma or a closing bracket; inside a string, a
    quote would be escaped). Anything else, such as Jira Cloud's ``scope`` object
    before the name, is decoded."""
    at = text.find('"name"', brace)
    if at > 0 and text.find("{", brace + 1, at) < 0 and text.find("}", brace + 1, at) < 0:
        value = _STRING_VALUE.match(text, at + 6)
        if value is not None:
            raw = value.group(1)
            return raw if "\\" not in raw else str(json.loads(f'"{raw}"'))
    try:
        decoded, _ = _DECODER.raw_decode(text, brace)
    except RecursionError:
        raise ValueError("nested too deep") from None
    name = decoded.get("name") if isinstance(decoded, dict) else None
    return name if isinstance(name, str) else None
