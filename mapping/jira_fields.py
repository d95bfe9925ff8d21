"""Jira field catalog and value readers: what a Jira field id means and how to read it.

The catalog answers "which field id holds <display name> on this instance?" from the
field list (``GET /rest/api/2/field``) or from the ``names`` / ``schema`` maps of a search
made with ``expand=names,schema``. Custom field ids differ per instance
(``customfield_10042``), so the mapper never hard-codes them.

The readers turn a field value of any of Jira's shapes (plain strings, ADF documents,
option objects, arrays of options, cascading selects, user pickers, JSM service and
Assets objects, timestamps with ``-0700`` offsets) into plain Python values. They take
the raw value, never the issue, so the mapper decides what "absent" means.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

from ticketlint.mapping.adf import adf_to_text, is_adf
from ticketlint.mapping.common import Unreadable, maybe_html_text, parse_jira_time
from ticketlint.mapping.model import Person, build

ASSETS_CUSTOM_TYPE = "com.atlassian.jira.plugins.cmdb:cmdb-object-cftype"
APPROVALS_CUSTOM_TYPE = "com.atlassian.servicedesk.approvals-plugin:sd-approvals"
SLA_CUSTOM_TYPE = "com.atlassian.servicedesk:sla-field"


class JiraFieldCatalog:
    """Field ids, display names and schemas of one Jira instance.

    Names are matched case-insensitively. Jira allows two custom fields with the same
    name; the first one listed wins and the name is kept in :attr:`ambiguous` so that
    ``doctor`` can tell the admin to map it by id.
    """

    __slots__ = ("_by_name", "_names", "_schema", "ambiguous")

    def __init__(
        self, names: dict[str, str], schema: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self._names: dict[str, str] = dict(names)
        self._schema: dict[str, dict[str, Any]] = dict(schema or {})
        self._by_name: dict[str, str] = {}
        self.ambiguous: dict[str, list[str]] = {}
        for field_id, name in self._names.items():
            if not isinstance(name, str):
                continue
            folded = name.strip().casefold()
            if folded in self._by_name:
                self.ambiguous.setdefault(folded, [self._by_name[folded]]).append(field_id)
                continue
            self._by_name[folded] = field_id

    @classmethod
    def from_field_list(cls, fields: Sequence[object] | None) -> JiraFieldCatalog:
        """From the ``GET /rest/api/2|3/field`` response (a list of FieldDetails); items
        that are not objects with a string ``id`` are skipped."""
        names: dict[str, str] = {}
        schema: dict[str, dict[str, Any]] = {}
        for item in fields or []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            name = item.get("name")
            names[item["id"]] = name if isinstance(name, str) else item["id"]
            if isinstance(item.get("schema"), dict):
                schema[item["id"]] = item["schema"]
        return cls(names, schema)

    @classmethod
    def from_names(
        cls, names: dict[str, str], schema: dict[str, dict[str, Any]] | None = None
    ) -> JiraFieldCatalog:
        """From a search export's ``expand=names`` map (and optional ``expand=schema``)."""
        return cls(names or {}, schema or {})

    def resolve(self, name_or_id: str) -> str | None:
        """The field id for a display name or a known id; None when the instance lacks it."""
        if not name_or_id:
            return None
        if name_or_id in self._names:
            return name_or_id
        return self._by_name.get(name_or_id.strip().casefold())

    def by_custom_type(self, custom: str) -> list[str]:
        """Ids of the fields whose ``schema.custom`` equals ``custom``, in catalog order."""
        return [
            fid
            for fid, s in self._schema.items()
            if s.get("custom") == custom and fid in self._names
        ]

    def name_of(self, field_id: str) -> str | None:
        return self._names.get(field_id)

    def schema_of(self, field_id: str) -> dict[str, Any]:
        return self._schema.get(field_id, {})

    def __contains__(self, field_id: object) -> bool:
        return field_id in self._names

    def __len__(self) -> int:
        return len(self._names)


def load_search_export(
    data: object,
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, dict[str, Any]]]:
    """A search response (Cloud ``search/jql`` or DC ``search``) or a list of its pages ->
    (issues, names merged over pages, schema merged over pages).

    A bare list of issues is accepted too (names and schema are then empty).
    """
    pages: list[Any]
    if isinstance(data, dict):
        pages = [data]
    elif isinstance(data, list):
        if data and all(isinstance(p, dict) and "fields" in p and "issues" not in p for p in data):
            return list(data), {}, {}
        pages = data
    else:
        raise ValueError(
            f"expected a Jira search response or a list of pages, got {type(data).__name__}"
        )
    issues: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    schema: dict[str, dict[str, Any]] = {}
    for number, page in enumerate(pages, 1):
        if not isinstance(page, dict) or not isinstance(page.get("issues", []), list):
            raise ValueError(f"page {number} is not a Jira search response (no 'issues' list)")
        issues.extend(page.get("issues") or [])
        if isinstance(page.get("names"), dict):
            names.update(page["names"])
        if isinstance(page.get("schema"), dict):
            schema.update(page["schema"])
    return issues, names, schema


# --- value readers ------------------------------------------------------------------


def text_of(value: Any) -> str:
    """A text-like field (plain string, ADF, option, array of options) -> its text; "" if none.

    HTML in a string (a rendered field, an import) is made text (settled reading 19); an
    object that carries no text at all is :class:`Unreadable`, never empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return maybe_html_text(value) if "<" in value else value
    if is_adf(value):
        return adf_to_text(value)
    if isinstance(value, dict):
        return option_text(value)
    if isinstance(value, list):
        return ", ".join(t for t in (text_of(v) for v in value) if t)
    return str(value)


def option_text(value: dict[str, Any]) -> str:
    """Option / cascading select / named object -> its visible text."""
    text = ""
    for key in ("value", "name", "displayName", "title", "label", "key"):
        candidate = value.get(key)
        if isinstance(candidate, str) and candidate:
            text = candidate
            break
    child = value.get("child")  # cascading select: "Parent - Child"
    if isinstance(child, dict):
        child_text = option_text(child)
        if child_text:
            text = f"{text} - {child_text}" if text else child_text
    if not text and not any(key in value for key in _TEXT_KEYS) and "child" not in value:
        raise Unreadable("object without text", f"keys {sorted(value)[:6]}")
    return text


_TEXT_KEYS = ("value", "name", "displayName", "title", "label", "key")


def person_of(
    value: Any, cloud: bool, cache: dict[tuple[Any, ...], Person] | None = None
) -> Person | None:
    """A user object -> Person; Cloud keys people by ``accountId``, DC by ``key``/``name``.

    ``cache`` (one per mapper) shares the immutable Person of a user across records.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None  # nobody: a null or blank user field
    if not isinstance(value, dict):
        raise Unreadable("not a user object", type(value).__name__)
    ident = None
    for k in _CLOUD_ID_ORDER if cloud else _DC_ID_ORDER:
        candidate = value.get(k)
        if candidate and isinstance(candidate, str):
            ident = candidate
            break
    name = value.get("displayName") or None
    email = value.get("emailAddress") or None
    if ident is None and name is None and email is None:
        return None
    token = (ident, name, email)
    person = cache.get(token) if cache is not None else None
    if person is None:
        # Values are plain str/None, so skip validation (the mapping budget; see JiraMapper).
        person = build(Person, id=ident, name=name, email=email)
        if cache is not None:
            if len(cache) > 100_000:  # bounded: a run sees thousands of people, not millions
                cache.clear()
            cache[token] = person
    return person


_CLOUD_ID_ORDER = ("accountId", "key", "name")
_DC_ID_ORDER = ("key", "name", "accountId")


def time_of(value: Any) -> datetime | date | None:
    """Jira timestamp (string with offset, JSM date object, epoch ms) -> UTC datetime; a
    date-only string (a date picker, ``2026-03-02``) -> a date (settled reading 18).
    Anything else is :class:`Unreadable`."""
    if (
        value.__class__ is str
        and len(value) == 28
        and value[10] == "T"
        and value[19] == "."
        and value[23] in "+-"
    ):
        # Jira's own ``2026-03-02T14:10:05.123-0700``: the hot path (several per issue).
        if _FROMISO_BASIC_OFFSET:
            try:
                return _fromisoformat(value).astimezone(timezone.utc)
            except ValueError:
                pass  # the old path below decides (and words the error) as before
        fast = _fast_time(value)
        if fast is not None:
            return fast
    if value is None or value == "":
        return None
    try:
        return _time_of_shape(value)
    except Unreadable:
        raise
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise Unreadable("not a date or time", f"{str(value)[:40]!r}") from exc


def _time_of_shape(value: Any) -> datetime | date | None:
    if isinstance(value, str) and not value.strip():
        return None
    if isinstance(value, dict):  # JSM {"iso8601": ..., "epochMillis": ...}
        iso = value.get("iso8601")
        if iso:
            # JSM's ``2025-11-21T21:28:37+0000`` (approvals): parsed in C where possible
            if (
                _FROMISO_BASIC_OFFSET
                and iso.__class__ is str
                and len(iso) == 24
                and iso[10] == "T"
                and iso[19] in "+-"
            ):
                try:
                    return _fromisoformat(iso).astimezone(timezone.utc)
                except ValueError:
                    pass  # parse_jira_time words the error
            return parse_jira_time(iso)
        if value.get("epochMillis") is not None:
            return epoch_time(value["epochMillis"])
        raise ValueError(f"date object without iso8601 or epochMillis: {sorted(value)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if abs(value) < 1_000_000_000:  # before 2001 in seconds: not an epoch timestamp
            raise Unreadable("not a date or time", repr(value))
        return epoch_time(value)
    if isinstance(value, str) and len(value.strip()) == 10:  # a date picker: "2026-03-02"
        return date.fromisoformat(value.strip())
    return parse_jira_time(value)


_fromisoformat = datetime.fromisoformat


def _probe_fromisoformat() -> bool:
    """Python >= 3.11 parses Jira's ``-0700`` offsets in C (10x the slicing below);
    3.10 rejects them, and then the slicing parser is the hot path."""
    try:
        return _fromisoformat("2026-03-02T14:10:05.123-0700") == datetime(
            2026, 3, 2, 21, 10, 5, 123000, tzinfo=timezone.utc
        )
    except ValueError:
        return False


_FROMISO_BASIC_OFFSET = _probe_fromisoformat()
_OFFSETS: dict[str, timezone] = {}


def _fast_time(value: str) -> datetime | None:
    """Jira's own format ``2026-03-02T14:10:05.123-0700`` by slicing (the hot path);
    None for anything unexpected, which then goes through :func:`parse_jira_time`."""
    try:
        tz = _OFFSETS.get(value[23:])
        if tz is None:
            sign = -1 if value[23] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(value[24:26]), minutes=int(value[26:28])))
            _OFFSETS[value[23:]] = tz
        local = datetime(
            int(value[0:4]),
            int(value[5:7]),
            int(value[8:10]),
            int(value[11:13]),
            int(value[14:16]),
            int(value[17:19]),
            int(value[20:23]) * 1000,
            tzinfo=tz,
        )
    except ValueError:
        return None
    return local.astimezone(timezone.utc)


def epoch_time(value: float) -> datetime:
    """Epoch milliseconds (Jira) or seconds (some changelog examples) -> UTC datetime."""
    seconds = value / 1000 if abs(value) > 100_000_000_000 else value
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def ci_names(value: Any) -> list[str]:
    """Affected services / hardware / Assets values -> CI keys (names, object keys or ids)."""
    if value is None:
        return []
    items: Iterable[Any] = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            key = item
        elif isinstance(item, dict):
            # Assets objects carry workspaceId/objectId (and objectKey when expanded);
            # JSM services carry id/name; options carry value.
            if "workspaceId" in item or "objectId" in item:
                key = item.get("objectKey") or item.get("id") or item.get("objectId") or ""
            else:
                if item and not any(k in item for k in _CI_KEYS):
                    raise Unreadable("object without a CI name", f"keys {sorted(item)[:6]}")
                key = (
                    item.get("name")
                    or item.get("value")
                    or item.get("label")
                    or item.get("id")
                    or ""
                )
        else:
            key = str(item)
        key = str(key).strip()
        if key:
            out.append(key)
    return out


_CI_KEYS = ("name", "value", "label", "id")


def sla_breached(value: Any) -> bool | None:
    """JSM SLA field -> breached verdict; None when no cycle ran (no goal applied)."""
    if not isinstance(value, dict):
        return None
    ongoing = value.get("ongoingCycle")
    completed = value.get("completedCycles") or []
    if not isinstance(ongoing, dict) and not completed:
        return None
    if isinstance(ongoing, dict) and ongoing.get("breached") is True:
        return True
    return any(isinstance(c, dict) and c.get("breached") is True for c in completed)


def comments_of(value: Any) -> tuple[list[Any], bool]:
    """The comment field (v2/v3 page object or a bare list) -> (comments, truncated).
    The caller decides what a missing field means (unknown, not "no comments")."""
    if value is None:
        return [], False
    if isinstance(value, list):
        return value, False
    if isinstance(value, dict):
        comments = value.get("comments") or []
        if not isinstance(comments, list):
            raise ValueError("comment.comments is not a list")
        total = value.get("total")
        truncated = isinstance(total, int) and total > len(comments)
        return comments, truncated
    raise ValueError(f"comment field has unexpected type {type(value).__name__}")
