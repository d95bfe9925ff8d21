"""What both mappers share: options from a source's config, the per-run mapping report
(errors, skipped rows, unknown statuses), and parsing of source values."""

from __future__ import annotations

import contextlib
import gc
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Any

WRITEBACK_MARKER = "ticketlint-writeback"
"""Carried by every comment / work note ticketlint writes onto a ticket (``ticketlint.plugin.writeback``).
Mappers never read such a text as the team's own notes: our comment listing what is
missing must not count as the resolution notes it asks for."""


_OFFSET_NO_COLON = re.compile(r"([+-])(\d\d)(\d\d)$")


class MappingError(Exception):
    """One source record could not be mapped. Counted and reported; the run goes on."""

    def __init__(self, source: str, key: str | None, reason: str) -> None:
        super().__init__(f"{source}: {key or '(no key)'}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled back from a ``check --input`` worker with all three parts.
        return (type(self), (self.source, self.key, self.reason))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "key": self.key, "reason": self.reason}


class Unreadable(ValueError):
    """A mapped value that cannot be read as its type (settled reading 17).

    The mappers turn it into ``None`` for that one field (never empty), note it in the
    record's ``unreadable`` map and count it per field and ``reason`` in the run summary;
    the rest of the record is still read and checked. ``reason`` is a short category
    ("not a date or time", "not a number", ...) that the summary groups by, ``detail``
    names the value (for the record's own list)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail))


def unreadable_reason(exc: Exception) -> str:
    """The summary category of an exception raised while reading one field."""
    if isinstance(exc, Unreadable):
        return exc.reason
    if isinstance(exc, (TypeError, AttributeError)):
        return "unexpected value shape"
    return "value cannot be read"


@dataclass
class MappingOptions:
    """Per-source overrides of the docs/mapping.md defaults (from the source's config)."""

    source: str
    base_url: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    """canonical ``<process>.<field>`` -> source field name or id; ``!name`` negates."""
    status_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """process -> source status name or code -> normalised state."""
    issue_types: Mapping[str, list[str]] = field(default_factory=dict)
    """Jira: process (or ``review``) -> issue type names."""
    tables: Mapping[str, str] = field(default_factory=dict)
    """ServiceNow: process -> table name."""
    priority_map: Mapping[str, int] = field(default_factory=dict)
    """Jira: priority name -> 1..5 for names outside the defaults."""


@dataclass
class MappingReport:
    """Counts of one mapping run, shown in the summary and by ``doctor``."""

    rows: int = 0
    mapped: int = 0
    skipped_empty: int = 0
    errors: list[MappingError] = field(default_factory=list)
    unknown_statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    unreadable: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(``<process>.<field>``, reason) -> how many records could not read that field
    (settled reading 17: the field is None on those records, the records are checked)."""
    skipped: list[MappingError] = field(default_factory=list)
    """Records read but deliberately not checked: a type or table that maps to no
    process (settled reading 21), listed with key and reason in every output."""

    def merge(self, other: MappingReport) -> None:
        self.rows += other.rows
        self.mapped += other.mapped
        self.skipped_empty += other.skipped_empty
        self.errors.extend(other.errors)
        self.unknown_statuses.update(other.unknown_statuses)
        self.warnings.update(other.warnings)
        self.unreadable.update(other.unreadable)
        self.skipped.extend(other.skipped)

    def note_unreadable(
        self, unreadable: dict[str, str], process: str, name: str, exc: Exception
    ) -> None:
        """Record that field ``name`` of one record could not be read (the caller sets
        the field to None): in the record's own list and in the per-field count."""
        reason = unreadable_reason(exc)
        detail = exc.detail if isinstance(exc, Unreadable) else str(exc)
        unreadable[name] = f"{reason}: {detail[:160]}" if detail else reason
        self.unreadable[(f"{process}.{name}", reason)] += 1

    def not_checked(self) -> list[dict[str, Any]]:
        """Every record of the input that was not checked, with key and reason: mapping
        errors (no identity, not an object) first, then skipped records (unmapped types)."""
        out = [{**e.to_dict(), "kind": "error"} for e in self.errors]
        out += [{**e.to_dict(), "kind": "skipped"} for e in self.skipped]
        return sorted(out, key=lambda e: (e["kind"], e["source"], e["key"] or "", e["reason"]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "mapped": self.mapped,
            "skipped_empty": self.skipped_empty,
            "errors": [e.to_dict() for e in self.errors],
            "unknown_statuses": [
                {"process": p, "status": s, "count": n}
                for (p, s), n in sorted(self.unknown_statuses.items())
            ],
            "warnings": dict(sorted(self.warnings.items())),
            "unreadable": [
                {"field": f, "reason": r, "count": n}
                for (f, r), n in sorted(self.unreadable.items())
            ],
            "skipped": [e.to_dict() for e in self.skipped],
        }


def parse_jira_time(value: Any) -> datetime | None:
    """``2026-03-02T14:10:05.123-0700`` (any offset) -> aware UTC datetime."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = _OFFSET_NO_COLON.sub(r"\1\2:\3", text)  # Python 3.10 needs +HH:MM
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed.astimezone(timezone.utc)


def parse_servicenow_time(value: Any) -> datetime | None:
    """``yyyy-MM-dd HH:mm:ss`` in UTC (raw Table API values) -> aware UTC datetime."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a 'yyyy-MM-dd HH:mm:ss' string, got {type(value).__name__}")
    text = value.strip()
    if _SERVICENOW_TIME.fullmatch(text):  # the usual shape: fromisoformat, ~10x strptime
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


_SERVICENOW_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
"""The Table API's own spelling, on which ``fromisoformat`` reads what ``strptime`` does;
anything else (one-digit parts, which ``strptime`` accepts) still goes to ``strptime``."""


class _TextOfHtml(HTMLParser):
    """Collects the text of an HTML fragment (entities decoded); block tags and ``<br>``
    become line breaks so words of adjacent paragraphs stay apart."""

    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_HTML_TAGS = (
    "a|b|blockquote|br|code|div|em|font|h[1-6]|hr|i|img|li|ol|p|pre|s|span|strike|strong|"
    "sub|sup|table|tbody|td|th|thead|tr|u|ul"
)
_HTML_TAG = re.compile(
    rf"<(?:(?:{_HTML_TAGS})(?:\s[^<>]*)?/?|/(?:{_HTML_TAGS})\s*|!--.*?--)>",
    re.DOTALL | re.IGNORECASE,
)


def looks_like_html(text: str) -> bool:
    """True when the text holds at least one tag of the HTML that rich-text fields write
    (``<p>``, ``</div>``, ``<br/>``, ``<span style=...>``). Plain text that merely uses angle
    brackets (``<none>``, ``press <ctrl>``, ``a < b > c``) is left as it is."""
    return "<" in text and _HTML_TAG.search(text) is not None


def html_to_text(text: str) -> str:
    """HTML -> its text (settled reading 19): tags removed, character entities decoded,
    blank lines collapsed. ``<p><br></p>`` and ``<p>&nbsp;</p>`` give only whitespace, so
    they read as empty under settled reading 3."""
    parser = _TextOfHtml()
    parser.feed(text)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line)


def maybe_html_text(text: str) -> str:
    """The text itself, or its HTML made text when it holds tags."""
    return html_to_text(text) if looks_like_html(text) else text


_NUMBER = re.compile(r"^\s*([+-]?\d+)(?:\.0*)?\s*(?:-\s*\S.*)?$", re.DOTALL)


def parse_int(value: Any) -> int | None:
    """A whole number as sources send it: ``4``, ``4.0``, ``"4"``, ``"4.0"``, or a choice
    label that starts with its code (``"2 - High"``, ServiceNow display values). None
    for ``""``/whitespace; :class:`Unreadable` for anything else."""
    if isinstance(value, bool):
        raise Unreadable("not a number", f"boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value != value or value != int(value):
            raise Unreadable("not a number", repr(value))
        return int(value)
    if isinstance(value, str):
        if not value.strip():
            return None
        match = _NUMBER.match(value)
        if match is None:
            raise Unreadable("not a number", repr(value[:60]))
        return int(match.group(1))
    raise Unreadable("not a number", type(value).__name__)


def text_or_empty(value: Any) -> str:
    """A provided text field: its text, or "" when it holds nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # option / reference objects
        for k in ("value", "name", "displayName", "display_value"):
            text = value.get(k)
            if isinstance(text, str):
                return text
    return str(value)


def truthy_flag(value: Any) -> bool:
    """A source boolean: real booleans, ServiceNow's "true"/"false", Jira option objects.
    A non-empty text or a date counts as set (how `review` fields are read)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        v = value.strip().lower()
        return v not in ("", "false", "0", "no", "n", "off", "none", "null")
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (list, dict)):
        return len(value) > 0
    return True


@contextlib.contextmanager
def gc_paused(*, promote: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector around a batch that allocates many long-lived
    objects (mapping a page, evaluating a run). Those objects hold no cycles, yet each
    allocation burst triggers full collections that re-scan everything built so far:
    about a third of the mapping time. Nested use is safe.

    ``promote=True`` (the mappers): when the outermost pause ends, what the batch built
    moves straight to the oldest generation instead of being scanned by the next young
    collection and the one after it (~15% of mapping time). Nothing is lost: a cycle
    built during the batch is still found, by the next full collection. Skipped when
    the process keeps objects frozen on purpose (``gc.freeze()``, e.g. before a fork),
    whose freeze ``gc.unfreeze()`` would undo."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if promote and gc.get_freeze_count() == 0:
                gc.freeze()  # every tracked object -> the permanent generation ...
                gc.unfreeze()  # ... -> the oldest generation, no scan either way
            gc.enable()
