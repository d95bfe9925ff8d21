"""Jira Cloud (REST v3, ADF bodies) and Data Center (REST v2, plain text) issues to
normalised ISO/IEC 20000 records, with the defaults of docs/mapping.md "Jira Cloud / Data
Center" and the settled readings of §5 (2-11, 16).

Field resolution. Canonical fields (``change.backout_plan``) map to display names
("Backout plan") which the :class:`JiraFieldCatalog` resolves to this instance's ids once,
in ``JiraMapper.__init__``; ``options.fields`` overrides a name or id per canonical field
and a leading ``!`` negates a boolean field. Three cases follow from docs/record-model.md's None
versus empty:

- the instance lacks the field (the catalog cannot resolve the name): the record field
  is ``None`` (not provided) and rules that need it say NOT_EVALUATED;
- the catalog knows the field but the issue's ``fields`` omits it or holds ``null``:
  the record field is empty (``""`` / ``[]`` / ``False``). The search asked for the field
  by id (see :meth:`JiraMapper.search_fields`); Jira leaves out or nulls a field that has
  no value on that issue, and settled reading 2 says a mapped-but-null field is empty.
  (A field whose context excludes a project looks the same: ``doctor`` shows such
  fields, and a config override fixes them; guessing "not provided" would hide real gaps.)
- a value.

System fields (priority, resolution, comment, ...) exist on every instance, so a null
or missing one is empty (a null Priority fails INC002). Two deliberate exceptions, both
because the field's null carries no verdict: the "Time to resolution" SLA field with no
cycle yields ``sla_breached = None`` (no SLA goal applied, INC005 then measures against
the priority targets), and ``closed_at`` of a closed issue whose closing time is unknown
is ``None`` (settled reading 4: CHG008 / INC004 cannot be evaluated).

Field types. Where the field list (``/rest/api/2/field``) or a search export's
``expand=schema`` gives a mapped field's ``schema.type``, the field is read as that type:
a ``date`` field (a date picker) is a date, a ``datetime`` field a UTC time, a ``string``
field text (a plain string or an ADF document); a text or flag field whose schema is
``option``, ``number``, ``array`` or ``user`` must hold that shape
(:mod:`ticketlint.mapping.jira_schema`). A value that contradicts its schema is
unreadable (the field is None, the reason names the schema type). Without a schema (an
export without ``names``/``schema``) the value's shape decides, as before.

History. ``transitions`` comes from a bulkfetch changelog handed in by the connector or
from a complete embedded changelog (``expand=changelog`` with ``total`` <= histories
read); a truncated embedded changelog is never taken as the whole history, so
``transitions`` is then ``None`` and history-derived fields (``actual_start`` /
``actual_end`` of changes) are ``None`` too.

Performance: field ids, status and priority tables are computed once per mapper; records
are built with ``model_validate`` on plain dicts holding ready-made nested models; the
raw issue is kept by reference, never copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from ticketlint.mapping.adf import adf_to_text, is_adf
from ticketlint.mapping.common import (
    WRITEBACK_MARKER,
    MappingError,
    MappingOptions,
    MappingReport,
    Unreadable,
    gc_paused,
    maybe_html_text,
    truthy_flag,
)
from ticketlint.mapping.jira_fields import (
    APPROVALS_CUSTOM_TYPE,
    ASSETS_CUSTOM_TYPE,
    JiraFieldCatalog,
    ci_names,
    comments_of,
    load_search_export,
    person_of,
    sla_breached,
    text_of,
    time_of,
)
from ticketlint.mapping.jira_schema import CHECKED_TYPES, schema_error, typed_value
from ticketlint.mapping.model import (
    CHANGE_STATES,
    RECORD_CLASSES,
    TICKET_STATES,
    Approval,
    BaseRecord,
    Link,
    Person,
    Review,
    Transition,
    build,
    builder,
)

__all__ = ["JiraFieldCatalog", "JiraMapper", "load_search_export", "type_key"]

ReviewIndex = dict[str, dict[str, Any]]
"""What :meth:`JiraMapper.review_index` gathers: ``own`` (review key -> (done, resolved
at)) and ``completes`` (key of a record a done review links -> that review's time)."""

# --- docs/mapping.md defaults -------------------------------------------------------------

DEFAULT_ISSUE_TYPES: dict[str, list[str]] = {
    "incident": ["Incident"],
    "change": ["Change"],
    "problem": ["Problem"],
    "service_request": ["Service request", "Service request with approvals"],
    "release": [],
    "review": ["Post-incident review"],
}
APPROVAL_REQUEST_TYPE = "service request with approvals"

_TICKET_STATUSES = {
    "open": "new",
    "waiting for support": "new",
    "waiting for approval": "new",
    "work in progress": "in_progress",
    "in progress": "in_progress",
    "escalated": "in_progress",
    "pending": "on_hold",
    "waiting for customer": "on_hold",
    "resolved": "resolved",
    "completed": "resolved",
    "closed": "closed",
    "done": "closed",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "declined": "cancelled",
}
DEFAULT_STATUS_MAP: dict[str, dict[str, str]] = {
    "incident": dict(_TICKET_STATUSES),
    "service_request": dict(_TICKET_STATUSES),
    "release": dict(_TICKET_STATUSES),
    "problem": {
        "open": "new",
        "under investigation": "in_progress",
        "under review": "in_progress",
        "root cause identified": "in_progress",
        # docs/mapping.md names the "Known error" status (reading 7) but leaves it out of
        # the map; it is a working state of the JSM problem workflow, not an unknown one.
        "known error": "in_progress",
        "resolved": "resolved",
        "completed": "resolved",
        "closed": "closed",
        "done": "closed",
        "canceled": "cancelled",
    },
    "change": {
        "open": "new",
        "planning": "assess",
        "awaiting approval": "authorize",
        "awaiting cab approval": "authorize",
        "awaiting implementation": "scheduled",
        "scheduled": "scheduled",
        "implementing": "implement",
        "review": "review",
        "peer review": "review",
        "completed": "closed",
        "closed": "closed",
        "done": "closed",
        "failed": "closed",
        "declined": "cancelled",
        "canceled": "cancelled",
        "cancelled": "cancelled",
    },
}
CANCELLING_RESOLUTIONS = frozenset({"won't do", "declined", "cancelled", "canceled", "duplicate"})
FAILED_RESOLUTIONS = frozenset({"failed", "unsuccessful", "rolled back"})
DEFAULT_PRIORITIES: dict[str, int] = {
    "highest": 1,
    "blocker": 1,
    "critical": 1,
    "high": 2,
    "major": 2,
    "medium": 3,
    "low": 4,
    "minor": 4,
    "lowest": 5,
    "trivial": 5,
}

_GROUP = ("Team", "Assignment group")
_CIS = ("Affected services", "Affected hardware")
DEFAULT_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "change": {
        "change_type": ("Change type",),
        "risk": ("Change risk",),
        "impact": ("Impact",),
        "implementation_plan": ("Implementation plan",),
        "backout_plan": ("Backout plan",),
        "test_plan": ("Test plan",),
        "planned_start": ("Planned start",),
        "planned_end": ("Planned end",),
        "close_notes": ("Resolution notes",),
        "group": _GROUP,
        "ci_refs": _CIS,
    },
    "incident": {
        "major": ("Major incident",),
        "resolution_notes": ("Resolution notes",),
        "sla_breached": ("Time to resolution",),
        "group": _GROUP,
        "ci_refs": _CIS,
    },
    "service_request": {
        "resolution_notes": ("Resolution notes",),
        "group": _GROUP,
        "ci_refs": _CIS,
    },
    "problem": {
        "root_cause": ("Root cause",),
        "workaround": ("Workaround",),
        "group": _GROUP,
        "ci_refs": _CIS,
    },
    "release": {"group": _GROUP, "ci_refs": _CIS},
}

# How a canonical field reads its source field(s).
_KINDS: dict[str, str] = {
    "change_type": "text",
    "risk": "text",
    "impact": "text",
    "implementation_plan": "text",
    "backout_plan": "text",
    "test_plan": "text",
    "close_code": "text",
    "close_notes": "text",
    "resolution_notes": "text",
    "resolution_code": "text",
    "root_cause": "text",
    "workaround": "text",
    "category": "text",
    "group": "text",
    "title": "text",
    "planned_start": "time",
    "planned_end": "time",
    "actual_start": "time",
    "actual_end": "time",
    "cab_date": "time",
    "cab_required": "bool",
    "major": "bool",
    "known_error": "bool",
    "approval_required": "bool",
    "sla_breached": "sla",
    "ci_refs": "ci",
    "review": "review",
}

SYSTEM_FIELDS: tuple[str, ...] = (
    "summary",
    "status",
    "issuetype",
    "priority",
    "created",
    "updated",
    "resolutiondate",
    "resolution",
    "reporter",
    "assignee",
    "labels",
    "issuelinks",
    "comment",
    "project",
)


@dataclass(frozen=True)
class _FieldPlan:
    """Where one canonical field comes from on this instance (resolved once)."""

    ids: tuple[str, ...]
    """Field ids, in order; empty when the instance lacks the field (-> None)."""
    kind: str
    negate: bool = False
    overridden: bool = False
    schema_type: str | None = None
    """The first field's ``schema.type`` (``date``, ``datetime``, ``string``...), when known."""
    schema_items: str | None = None
    """``schema.items`` of an ``array`` field (``option``, ``string``, ``user``...)."""


class JiraMapper:
    """Maps pages of Jira issues to records; one instance per source and run."""

    def __init__(
        self,
        options: MappingOptions,
        catalog: JiraFieldCatalog,
        *,
        statuses: list[dict[str, Any]] | None = None,
        deployment: str = "Cloud",
    ) -> None:
        self.options = options
        self.catalog = catalog
        self.cloud = (deployment or "Cloud").strip().casefold() == "cloud"
        self._base = (options.base_url or "").rstrip("/")
        self._init_warnings: dict[str, int] = {}
        self._people: dict[tuple[Any, ...], Person] = {}

        types = {p: list(v) for p, v in DEFAULT_ISSUE_TYPES.items()}
        types.update({p: list(v) for p, v in (options.issue_types or {}).items()})
        self._process_by_type: dict[str, str] = {}
        for process, names in types.items():
            for name in names:
                self._process_by_type.setdefault(type_key(name), process)
        self._review_enabled = bool(types.get("review"))

        self._status_maps: dict[str, dict[str, str]] = {}
        for process in ("incident", "service_request", "problem", "change", "release"):
            allowed = CHANGE_STATES if process == "change" else TICKET_STATES
            table = dict(DEFAULT_STATUS_MAP[process])
            for raw, state in (options.status_map or {}).get(process, {}).items():
                if state not in allowed:
                    self._warn_once(f"status_map {process}.{raw}: {state!r} is no {process} state")
                    continue
                table[str(raw).strip().casefold()] = state
            self._status_maps[process] = table
        self._status_category: dict[str, str] = {}
        for status in statuses or []:
            if isinstance(status, dict) and isinstance(status.get("name"), str):
                category = (status.get("statusCategory") or {}).get("key")
                if isinstance(category, str):
                    self._status_category[status["name"].strip().casefold()] = category

        self._priorities = dict(DEFAULT_PRIORITIES)
        self._priorities.update(
            {str(k).strip().casefold(): v for k, v in (options.priority_map or {}).items()}
        )

        approvals = catalog.by_custom_type(APPROVALS_CUSTOM_TYPE)
        self._approvals_id = approvals[0] if approvals else catalog.resolve("Approvals")
        self._assets_ids = tuple(catalog.by_custom_type(ASSETS_CUSTOM_TYPE))
        self._plans = {p: self._plan(p) for p in DEFAULT_FIELDS}
        # One reader per canonical field, specialised to its resolved ids and kind, and
        # the plain fields _map_one reads in its loop (those the fixed keys do not cover).
        self._readers = {
            p: {c: _compile_reader(plan) for c, plan in plans.items()}
            for p, plans in self._plans.items()
        }
        self._plain_readers = {
            p: tuple((c, r) for c, r in readers.items() if c not in _FIXED_KEYS)
            for p, readers in self._readers.items()
        }
        # History status name -> (state, warning) per process: a run sees a handful of
        # names tens of thousands of times.
        self._history_cache: dict[str, dict[str, tuple[str | None, str | None]]] = {
            p: {} for p in self._status_maps
        }

    # --- setup ----------------------------------------------------------------------

    def _warn_once(self, message: str) -> None:
        self._init_warnings[message] = 1

    def _plan(self, process: str) -> dict[str, _FieldPlan]:
        model_fields = RECORD_CLASSES[process].model_fields
        plans: dict[str, _FieldPlan] = {}
        for canonical, names in DEFAULT_FIELDS[process].items():
            ids = tuple(fid for fid in (self.catalog.resolve(n) for n in names) if fid)
            if canonical == "ci_refs":
                ids = tuple(dict.fromkeys(ids + self._assets_ids))
            plans[canonical] = _FieldPlan(
                ids,
                _KINDS[canonical],
                schema_type=self._schema(ids),
                schema_items=self._schema(ids, "items"),
            )
        for key, target in (self.options.fields or {}).items():
            owner, _, canonical = key.partition(".")
            if owner != process:
                continue
            if canonical not in model_fields or canonical not in _KINDS:
                self._warn_once(f"field override {key} is not a mappable Jira field")
                continue
            negate = target.startswith("!")
            name = target[1:] if negate else target
            fid = self.catalog.resolve(name)
            if fid is None:
                self._warn_once(f"field override {key}: {name!r} not on this instance")
            ids = (fid,) if fid else ()
            plans[canonical] = _FieldPlan(
                ids,
                _KINDS[canonical],
                negate,
                True,
                schema_type=self._schema(ids),
                schema_items=self._schema(ids, "items"),
            )
        return plans

    def schema_problems(self) -> list[str]:
        """Mapped date/time fields whose ``schema.type`` is neither ``date`` nor
        ``datetime`` (they are read by their values' shapes); for ``doctor``."""
        out: dict[str, None] = {}
        for process, plans in self._plans.items():
            for canonical, plan in plans.items():
                if plan.kind == "time" and plan.schema_type not in (None, "date", "datetime"):
                    fid = plan.ids[0]
                    out[
                        f"{process}.{canonical}: field {self.catalog.name_of(fid)!r} ({fid}) "
                        f"has schema type {plan.schema_type!r}, not date or datetime"
                    ] = None
        return list(out)

    def _schema(self, ids: tuple[str, ...], key: str = "type") -> str | None:
        """The ``schema.type`` (or ``key``) of a field read alone (several fields: their
        shapes decide)."""
        if len(ids) != 1:
            return None
        kind = self.catalog.schema_of(ids[0]).get(key)
        return kind if isinstance(kind, str) else None

    def search_fields(self) -> list[str]:
        """The explicit field list a search needs: system fields plus the mapped ids."""
        out: dict[str, None] = dict.fromkeys(SYSTEM_FIELDS)
        for plans in self._plans.values():
            for plan in plans.values():
                out.update(dict.fromkeys(plan.ids))
        if self._approvals_id:
            out[self._approvals_id] = None
        return list(out)

    # --- per-issue questions the connector asks ----------------------------------------

    def process_of(self, issue: dict[str, Any]) -> str | None:
        """incident / service_request / problem / change / release, "review", or None."""
        fields = issue.get("fields") if isinstance(issue, dict) else None
        itype = (fields or {}).get("issuetype") if isinstance(fields, dict) else None
        name = itype.get("name") if isinstance(itype, dict) else None
        if not isinstance(name, str):
            return None
        return self.process_of_type(name)

    def process_of_type(self, name: str) -> str | None:
        """What :meth:`process_of` answers for an issue of the type called ``name``."""
        return self._process_by_type.get(type_key(name))

    def review_targets(self, issue: dict[str, Any]) -> list[str]:
        """Keys of the records a review issue completes (settled reading 10): its linked
        incidents and changes, whether the review is done or not (a reopened review takes
        the completion back). Empty for any other issue. A linked issue whose embedded type
        is not given counts (it may be one); one of another type does not.

        The connector re-reads these when only the review issue changed, since the
        linked record's own search hit is what carries ``review.completed``."""
        if not self._review_enabled or self.process_of(issue) != "review":
            return []
        try:
            linked_issues = _linked_issues((issue.get("fields") or {}).get("issuelinks"))
        except ValueError:
            return []  # a malformed link list completes nothing (review_index skips it too)
        out: list[str] = []
        for linked in linked_issues:
            key = linked.get("key")
            if not isinstance(key, str) or not key or key in out:
                continue
            name = _type_name(linked)
            if name and self._process_by_type.get(type_key(name)) not in (
                "incident",
                "change",
            ):
                continue
            out.append(key)
        return out

    def needs_history(self, issue: dict[str, Any]) -> bool:
        """True when a rule needs the issue's history and the issue lacks a complete one:
        changes (their actual start and end come from it, docs/record-model.md), and other issues
        in a closed state without ``resolutiondate`` (their closing time, settled reading
        4, which INC004 / INC005 / CHG008 need). Any other issue needs none: fetching it
        would cost a bulkfetch call per 1000 issues for nothing."""
        process = self.process_of(issue)
        if process is None or process == "review":
            return False
        if _embedded_histories(issue) is not None:
            return False
        if process == "change":
            return True
        fields = issue.get("fields") or {}
        if fields.get("resolutiondate"):
            return False
        status = fields.get("status")
        if not isinstance(status, dict) or not isinstance(status.get("name"), str):
            return False
        resolution = fields.get("resolution")
        state = self._state(
            process, status, resolution if isinstance(resolution, dict) else None, None
        )
        return state == "closed"

    def needs_approvals(self, issue: dict[str, Any]) -> bool:
        """True when the record needs approvals (changes, requests of the approvals type)
        and the Approvals field is not in the issue's fields."""
        process = self.process_of(issue)
        if process == "change":
            needed = True
        elif process == "service_request":
            needed = type_key(_type_name(issue)) == APPROVAL_REQUEST_TYPE
        else:
            needed = False
        if not needed:
            return False
        fields = issue.get("fields") or {}
        return self._approvals_id is None or self._approvals_id not in fields

    # --- mapping ----------------------------------------------------------------------

    def map_issues(
        self,
        issues: Iterable[dict[str, Any]],
        *,
        changelogs: Mapping[str, list[dict[str, Any]]] | None = None,
        approvals: Mapping[str, list[dict[str, Any]]] | None = None,
        comments: Mapping[str, list[dict[str, Any]]] | None = None,
        reviews: ReviewIndex | None = None,
        setup_warnings: bool = True,
    ) -> tuple[list[BaseRecord], MappingReport]:
        """Map a batch; review issues mark their linked records reviewed and are dropped.

        ``changelogs`` (issue id or key -> every history) and ``comments`` (issue key ->
        every comment) complete issues whose search result truncated them (settled
        readings 4 and 6); the connector reads them only for issues that
        :meth:`needs_history` / :meth:`needs_comments` name.

        ``reviews`` (from :meth:`review_index` over a larger batch read page by page)
        replaces the batch's own: a caller mapping one page at a time passes the index of
        every page, and ``setup_warnings=False`` after the first page so that warnings
        about the mapper's own setup are counted once."""
        with gc_paused(promote=True):
            return self._map_issues_unpaused(
                issues,
                changelogs=changelogs,
                approvals=approvals,
                comments=comments,
                reviews=reviews,
                setup_warnings=setup_warnings,
            )

    def _map_issues_unpaused(
        self,
        issues: Iterable[dict[str, Any]],
        *,
        changelogs: Mapping[str, list[dict[str, Any]]] | None = None,
        approvals: Mapping[str, list[dict[str, Any]]] | None = None,
        comments: Mapping[str, list[dict[str, Any]]] | None = None,
        reviews: ReviewIndex | None = None,
        setup_warnings: bool = True,
    ) -> tuple[list[BaseRecord], MappingReport]:
        """Map a batch; review issues mark their linked records reviewed and are dropped."""
        report = MappingReport()
        if setup_warnings:
            for message in self._init_warnings:
                report.warnings[message] += 1
        batch = issues if isinstance(issues, list) else list(issues)
        if reviews is None:
            reviews = self.review_index(batch)
        records: list[BaseRecord] = []
        for issue in batch:
            report.rows += 1
            if isinstance(issue, dict) and not issue:
                report.skipped_empty += 1
                continue
            key = issue.get("key") if isinstance(issue, dict) else None
            try:
                record = self._map_one(
                    issue, reviews, changelogs or {}, approvals or {}, comments or {}, report
                )
            except Exception as exc:  # noqa: BLE001 - one bad issue is counted and listed, never fatal to the run
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                report.errors.append(
                    MappingError(self.options.source, key if isinstance(key, str) else None, reason)
                )
                continue
            if record is not None:
                records.append(record)
                report.mapped += 1
        return records, report

    def review_index(self, batch: Iterable[Any], into: ReviewIndex | None = None) -> ReviewIndex:
        """Review issues of the batch: their own done-ness, and the records they complete.

        ``into`` (an index of earlier pages) is extended in place: calling this page by
        page, in order, gives the index of the pages read as one batch."""
        if into is None:
            into = {"own": {}, "completes": {}}
        own: dict[str, tuple[bool, Any]] = into["own"]
        completes: dict[str, Any] = into["completes"]
        if not self._review_enabled:
            return into
        for issue in batch:
            try:
                if self.process_of(issue) != "review":
                    continue
                fields = issue["fields"]
                status = fields.get("status") or {}
                category = (status.get("statusCategory") or {}).get("key")
                resolution = _name(fields.get("resolution")).casefold()
                done = category == "done" and resolution not in CANCELLING_RESOLUTIONS
                at = (time_of(fields.get("resolutiondate")) or "") if done else ""
                own[issue["key"]] = (done, at)
                if done:
                    for linked in _linked_issues(fields.get("issuelinks")):
                        linked_key = linked.get("key")
                        if isinstance(linked_key, str):
                            completes.setdefault(linked_key, at)
            except Exception:  # noqa: BLE001, S112 - a malformed review issue is not a review; the incident is still checked
                continue
        return into

    def _map_one(
        self,
        issue: Any,
        reviews: ReviewIndex,
        changelogs: Mapping[str, list[dict[str, Any]]],
        approvals_arg: Mapping[str, list[dict[str, Any]]],
        comments_arg: Mapping[str, list[dict[str, Any]]],
        report: MappingReport,
    ) -> BaseRecord | None:
        if not isinstance(issue, dict):
            raise ValueError(f"issue is a {type(issue).__name__}, not an object")
        key, native_id, fields = issue.get("key"), issue.get("id"), issue.get("fields")
        if not isinstance(key, str) or not key:
            raise ValueError("issue has no key")
        if not isinstance(fields, dict):
            raise ValueError("issue has no fields object")
        itype = fields.get("issuetype")
        if not isinstance(itype, dict) or not isinstance(itype.get("name"), str):
            raise ValueError("issuetype.name is missing")
        process = self._process_by_type.get(type_key(itype["name"]))
        if process == "review":
            return None
        if process is None:  # settled reading 21: counted per type and listed
            report.warnings[f"unmapped issue type {itype['name']}"] += 1
            report.skipped.append(
                MappingError(
                    self.options.source, key, f"issue type {itype['name']} maps to no process"
                )
            )
            return None
        unreadable: dict[str, str] = {}

        def unread(name: str, exc: Exception) -> None:
            report.note_unreadable(unreadable, str(process), name, exc)

        plans = self._plans[process]
        readers = self._readers[process]
        resolution = fields.get("resolution")
        resolution_name: str | None = _name(resolution)
        if resolution is not None and not isinstance(resolution, dict):
            code_field = {"change": "close_code", "service_request": None}.get(
                process, "resolution_code"
            )
            if code_field is not None:
                unread(code_field, Unreadable("not a resolution object", type(resolution).__name__))
            resolution, resolution_name = None, None
        status = fields.get("status")
        raw_state: str | None
        state: str | None
        if isinstance(status, dict) and isinstance(status.get("name"), str):
            raw_state = status["name"]
            state = self._state(process, status, resolution, report)
        else:
            unread("state", Unreadable("no status name", type(status).__name__))
            raw_state = state = None
        try:
            resolved_at: Any = time_of(fields.get("resolutiondate")) or ""
        except ValueError as exc:
            unread("resolved_at", exc)
            resolved_at = None

        transitions: list[Transition] | None = None
        histories = self._histories(issue, native_id, key, changelogs)
        if histories is not None:
            try:
                transitions = self._transitions(process, histories, report)
            except (ValueError, TypeError, AttributeError) as exc:
                unread("transitions", exc)

        closed_at: Any = ""
        if state == "closed":
            closed_at = self._closed_at(transitions, resolved_at)

        data: dict[str, Any] = {
            "source": self.options.source,
            "system": "jira",
            "key": key,
            "native_id": str(native_id) if native_id is not None else None,
            "url": f"{self._base}/browse/{key}" if self._base else None,
            "process": process,
            "state": state,
            "raw_state": raw_state,
            "resolved_at": resolved_at,
            "closed_at": closed_at,
            "transitions": transitions,
            "raw": issue,
        }
        cloud, people = self.cloud, self._people
        try:  # the hot path: every value reads; no per-field bookkeeping
            data["title"] = text_of(fields.get("summary"))
            data["priority"] = self._priority(fields.get("priority"), report)
            data["created_at"] = time_of(fields.get("created")) or ""
            data["updated_at"] = time_of(fields.get("updated")) or ""
            data["requester"] = person_of(fields.get("reporter"), cloud, people)
            data["assignee"] = person_of(fields.get("assignee"), cloud, people)
            data["group"] = readers["group"](fields)
            data["ci_refs"] = readers["ci_refs"](fields)
            data["links"] = self._links(fields.get("issuelinks"))
            data["approvals"] = self._approvals(key, fields, approvals_arg, report)
            for canonical, read in self._plain_readers[process]:
                data[canonical] = read(fields)
        except (ValueError, TypeError, AttributeError):
            # settled reading 17: the rest field by field; each unreadable one is None
            self._read_each(data, fields, key, process, approvals_arg, report, unread)
        notes_field = "close_notes" if process == "change" else "resolution_notes"
        if notes_field in plans and process != "problem" and notes_field not in unreadable:
            try:
                data[notes_field] = self._notes(
                    key, data.get(notes_field), fields, comments_arg, report
                )
            except (ValueError, TypeError, AttributeError) as exc:
                data[notes_field] = None
                unread(notes_field, exc)

        if process in ("incident", "change"):
            try:
                data["review"] = self._review(key, fields, plans.get("review"), reviews)
            except (ValueError, TypeError, AttributeError) as exc:
                data["review"] = None
                unread("review", exc)

        if process == "change":
            data.setdefault("close_code", resolution_name)
            if data.get("change_type"):
                data["change_type"] = data["change_type"].strip().casefold()
            data["outcome"] = (
                None
                if raw_state is None or resolution_name is None
                else _outcome(state, raw_state, resolution_name)
            )
            if "transitions" in unreadable:
                data.setdefault("actual_start", None)
                data.setdefault("actual_end", None)
            else:
                implement = _implement_window(transitions)
                data.setdefault("actual_start", implement[0])
                data.setdefault("actual_end", implement[1])
        elif process == "incident":
            data.setdefault("resolution_code", resolution_name)
        elif process == "problem":
            data.setdefault("resolution_code", resolution_name)
            labels = fields.get("labels") or []
            if not isinstance(labels, list):
                unread("known_error", Unreadable("labels is not a list", type(labels).__name__))
                data.setdefault("known_error", None)
            else:
                data.setdefault(
                    "known_error",
                    (raw_state or "").strip().casefold() == "known error"
                    or any(isinstance(lb, str) and lb.casefold() == "known-error" for lb in labels),
                )
        elif process == "service_request":
            data.setdefault(
                "approval_required",
                type_key(itype["name"]) == APPROVAL_REQUEST_TYPE or bool(data["approvals"]),
            )
        if unreadable:
            data["unreadable"] = unreadable
        # Every value above already has its model type (aware UTC datetimes from time_of,
        # states from the validated status tables, Person/Link/Approval/Transition built
        # from controlled values), so validation would only cost time: construct directly.
        # The tests round-trip mapped records through ``record_from_dict`` to keep this honest.
        return build(RECORD_CLASSES[process], **data)

    # --- field readers ------------------------------------------------------------------

    def _read_each(
        self,
        data: dict[str, Any],
        fields: dict[str, Any],
        key: str,
        process: str,
        approvals_arg: Mapping[str, list[dict[str, Any]]],
        report: MappingReport,
        unread: Callable[[str, Exception], None],
    ) -> None:
        """Every common and mapped field the hot path did not finish read on its own: one
        that raises is None and noted (settled reading 17), the others keep their values.
        Fields the hot path read (already in ``data``) are not read twice, so no warning
        is counted twice."""
        cloud, people = self.cloud, self._people
        readers = self._readers[process]
        readings: tuple[tuple[str, Callable[[Any], Any], Any], ...] = (
            ("title", text_of, fields.get("summary")),
            ("priority", lambda v: self._priority(v, report), fields.get("priority")),
            ("created_at", _time_or_empty, fields.get("created")),
            ("updated_at", _time_or_empty, fields.get("updated")),
            ("requester", lambda v: person_of(v, cloud, people), fields.get("reporter")),
            ("assignee", lambda v: person_of(v, cloud, people), fields.get("assignee")),
            ("group", readers["group"], fields),
            ("ci_refs", readers["ci_refs"], fields),
            ("links", self._links, fields.get("issuelinks")),
            ("approvals", lambda f: self._approvals(key, f, approvals_arg, report), fields),
            *((c, r, fields) for c, r in self._plain_readers[process]),
        )
        for name, read, arg in readings:
            if name in data:
                continue
            try:
                data[name] = read(arg)
            except (ValueError, TypeError, AttributeError) as exc:
                data[name] = None
                unread(name, exc)

    def _notes(
        self,
        key: str,
        notes: str | None,
        fields: dict[str, Any],
        given: Mapping[str, list[dict[str, Any]]],
        report: MappingReport,
    ) -> str | None:
        """Settled reading 6: "Resolution notes", else the last comment's text, else "".

        The last comment is only known from a complete list: the issue's own comment field
        when it holds every comment, else the list the connector read (``given``). A
        truncated list that was not completed, or an issue without its ``comment`` field
        (an export that did not ask for it), leaves the notes unknown (None with the
        reason), never empty: an empty reading would fail INC001 / CHG007 / REQ002.

        Decision: comments ticketlint wrote itself (they carry :data:`WRITEBACK_MARKER`) are
        not the team's notes and are skipped; otherwise our own write-back comment, which
        lists the missing notes, would be read as those notes and resolve the finding."""
        if notes and notes.strip():
            return notes
        if key in given:
            comments: list[Any] = list(given[key])
        elif "comment" not in fields:
            raise Unreadable("comment field not in the issue", "export with fields=comment")
        else:
            comments, truncated = comments_of(fields.get("comment"))
            if truncated:
                report.warnings["comments truncated by the search and not read in full"] += 1
                raise Unreadable("comment list truncated", "the last comment was not read")
        for comment in reversed(comments):
            if not isinstance(comment, dict):
                raise Unreadable("a comment is not an object", type(comment).__name__)
            text = text_of(comment.get("body"))
            if WRITEBACK_MARKER not in text:
                return text
        return ""

    def _closed_at(self, transitions: list[Transition] | None, resolved_at: Any) -> Any:
        """Settled reading 4: the last transition into closed, else ``resolutiondate``;
        None (unknown) when neither gives it, or when a status the history names but
        the status list does not know came after the last known closing (it may be the
        real closing)."""
        last = None
        for t in transitions or []:
            if t.to_state == "closed":
                last = t.at
            elif t.to_state is None and t.to_raw and last is not None:
                last = _UNKNOWN
        if last is _UNKNOWN:
            return None
        return last if last is not None else (resolved_at or None)

    def needs_comments(self, issue: dict[str, Any]) -> bool:
        """True when the issue's notes decide a rule and only a full comment list gives
        them (settled reading 6 at the least requests): an incident, change or request
        in a resolved / closed state, whose "Resolution notes" field is empty, whose
        search result truncated the comment list."""
        process = self.process_of(issue)
        if process not in ("incident", "change", "service_request"):
            return False
        fields = issue.get("fields") or {}
        value = fields.get("comment")
        if not isinstance(value, dict):
            return False
        try:
            _, truncated = comments_of(value)
        except ValueError:
            return False
        if not truncated:
            return False
        plan = self._plans[process].get(
            "close_notes" if process == "change" else "resolution_notes"
        )
        if plan is not None and plan.ids:
            try:
                if text_of(fields.get(plan.ids[0])).strip():
                    return False
            except ValueError:
                pass
        status = fields.get("status")
        if not isinstance(status, dict) or not isinstance(status.get("name"), str):
            return False
        state = self._state(process, status, fields.get("resolution"), None)
        return state in ("resolved", "closed")

    def _state(
        self, process: str, status: dict[str, Any], resolution: Any, report: MappingReport | None
    ) -> str | None:
        """Settled reading 9: the status map wins; else the category, where a cancelling
        resolution turns done into cancelled. Fallbacks are counted."""
        raw = status.get("name") or ""
        mapped = self._status_maps[process].get(raw.strip().casefold())
        if mapped is not None:
            return mapped
        if report is not None:
            report.unknown_statuses[(process, raw)] += 1
        category = (status.get("statusCategory") or {}).get("key") or self._status_category.get(
            raw.strip().casefold()
        )
        state = _category_state(process, category)
        if state == "closed" and _name(resolution).casefold() in CANCELLING_RESOLUTIONS:
            return "cancelled"
        return state

    def _history_state(self, process: str, raw: str | None, report: MappingReport) -> str | None:
        if raw.__class__ is str:
            cache = self._history_cache[process]
            entry = cache.get(raw)
            if entry is None:
                if len(cache) > 10_000:  # bounded: status names are few, bad data is not
                    cache.clear()
                entry = cache[raw] = self._history_entry(process, raw)
        else:
            entry = self._history_entry(process, raw)
        if entry[1] is not None:
            report.warnings[entry[1]] += 1
        return entry[0]

    def _history_entry(self, process: str, raw: str | None) -> tuple[str | None, str | None]:
        """(state, warning to count) of a status name read from the history."""
        if not raw:
            return None, None
        folded = raw.strip().casefold()
        mapped = self._status_maps[process].get(folded)
        if mapped is not None:
            return mapped, None
        category = self._status_category.get(folded)
        warning = f"history status {raw} not in the status list" if category is None else None
        return _category_state(process, category), warning

    def _priority(self, value: Any, report: MappingReport) -> int | str | None:
        """Settled reading 16; a null priority is empty (fails INC002). A value that is
        neither a priority object nor a name is :class:`Unreadable`."""
        if value is None:
            return ""
        if isinstance(value, dict):
            if not isinstance(value.get("name"), str):
                raise Unreadable("not a priority object", f"keys {sorted(value)[:6]}")
            name = value["name"]
        elif isinstance(value, str):
            name = value
        else:
            raise Unreadable("not a priority object", type(value).__name__)
        if not name.strip():
            return ""
        number = self._priorities.get(name.strip().casefold())
        if number is None:
            report.warnings[f"unknown priority {name}"] += 1
        return number

    def _histories(
        self,
        issue: dict[str, Any],
        native_id: Any,
        key: str,
        changelogs: Mapping[str, list[dict[str, Any]]],
    ) -> list[dict[str, Any]] | None:
        for ident in (native_id, str(native_id) if native_id is not None else None, key):
            if ident is not None and ident in changelogs:
                return changelogs[ident]
        return _embedded_histories(issue)

    def _transitions(
        self, process: str, histories: list[dict[str, Any]], report: MappingReport
    ) -> list[Transition]:
        out: list[Transition] = []
        ats: list[datetime] = []
        state_of = self._history_state
        cloud, people = self.cloud, self._people
        for history in histories:
            if not isinstance(history, dict):
                raise ValueError("a changelog history is not an object")
            items = [
                i
                for i in history.get("items") or []
                if isinstance(i, dict)
                and (
                    i.get("fieldId") == "status"
                    or (i.get("field") == "status" and i.get("fieldtype", "jira") == "jira")
                )
            ]
            if not items:
                continue
            at = time_of(history.get("created"))
            if not isinstance(at, datetime):
                raise Unreadable("history without a time", f"changelog history {history.get('id')}")
            by = person_of(history.get("author"), cloud, people)
            for item in items:
                from_raw, to_raw = item.get("fromString"), item.get("toString")
                from_state = state_of(process, from_raw, report)
                out.append(
                    _TRANSITION(
                        at, from_state, state_of(process, to_raw, report), from_raw, to_raw, by
                    )
                )
                ats.append(at)
        # Oldest first; bulkfetch order is not promised. A stable sort on the time keeps
        # history order among equal times; histories mostly come sorted already.
        if any(ats[i] > ats[i + 1] for i in range(len(ats) - 1)):
            order = sorted(range(len(out)), key=ats.__getitem__)
            out = [out[i] for i in order]
        return out

    def _links(self, issuelinks: Any) -> list[Link]:
        if issuelinks is None:
            return []
        if not isinstance(issuelinks, list):
            raise ValueError("issuelinks is not a list")
        links: list[Link] = []
        for linked in _linked_issues(issuelinks):
            linked_key = linked.get("key")
            if not isinstance(linked_key, str):
                continue
            process = self._process_by_type.get(type_key(_type_name(linked)))
            kind = (
                process
                if process in ("incident", "problem", "change", "release", "review")
                else "other"
            )
            links.append(_LINK(kind, linked_key))
        return links

    def _approvals(
        self,
        key: str,
        fields: dict[str, Any],
        given: Mapping[str, list[dict[str, Any]]],
        report: MappingReport,
    ) -> list[Approval] | None:
        """Settled reading 11: one Approval per approver entry; decided_at = completedDate."""
        if key in given:
            items = given[key]
        elif self._approvals_id is not None and self._approvals_id in fields:
            items = fields.get(self._approvals_id) or []
        else:
            return None
        if not isinstance(items, list):
            raise ValueError("approvals are not a list")
        out: list[Approval] = []
        for approval in items:
            if not isinstance(approval, dict):
                raise ValueError("an approval is not an object")
            completed = time_of(approval.get("completedDate"))
            for entry in approval.get("approvers") or []:
                decision = _decision(entry.get("approverDecision") or approval.get("finalDecision"))
                if decision is None:
                    report.warnings[
                        f"unknown approval decision {entry.get('approverDecision')}"
                    ] += 1
                    decision = "pending"
                approver = person_of(entry.get("approver"), self.cloud, self._people) or build(
                    Person
                )
                out.append(
                    _APPROVAL(
                        approver,
                        decision,
                        completed if decision in ("approved", "rejected") else None,
                    )
                )
        return out

    def _review(
        self, key: str, fields: dict[str, Any], plan: _FieldPlan | None, reviews: ReviewIndex
    ) -> Review | None:
        """Settled reading 10, or the field mapped to ``<process>.review``."""
        if plan is not None:
            if not plan.ids:
                return None
            value = fields.get(plan.ids[0])
            completed = _flag(value) != plan.negate
            at: Any = ""
            if completed and isinstance(value, str):
                try:
                    at = time_of(value) or ""
                except ValueError:
                    at = ""  # a text field, not a date
            return build(Review, completed=completed, at=at)
        if not self._review_enabled:
            return None
        if key in reviews["completes"]:
            return build(Review, completed=True, at=reviews["completes"][key])
        for linked in _linked_issues(fields.get("issuelinks")):
            if self._process_by_type.get(type_key(_type_name(linked))) != "review":
                continue
            linked_key = linked.get("key")
            if linked_key in reviews["own"]:
                done, at = reviews["own"][linked_key]
                if done:
                    return build(Review, completed=True, at=at)
                continue
            status = (linked.get("fields") or {}).get("status") or {}
            if (status.get("statusCategory") or {}).get("key") == "done":
                return build(Review, completed=True, at=None)  # review issue outside the batch
        return build(Review, completed=False)


# --- small pure helpers -------------------------------------------------------------

_TRANSITION = builder(Transition, ("at", "from_state", "to_state", "from_raw", "to_raw", "by"))
_LINK = builder(Link, ("kind", "key"))
_APPROVAL = builder(Approval, ("approver", "decision", "decided_at"))

# Keys _map_one sets before it reads the remaining canonical fields; "review" has its
# own reader (settled reading 10).
_FIXED_KEYS = frozenset(
    {
        "source",
        "system",
        "key",
        "native_id",
        "url",
        "process",
        "title",
        "state",
        "raw_state",
        "priority",
        "created_at",
        "updated_at",
        "resolved_at",
        "closed_at",
        "requester",
        "assignee",
        "group",
        "ci_refs",
        "links",
        "approvals",
        "transitions",
        "raw",
        "review",
    }
)


_UNKNOWN: Any = object()


def _time_or_empty(value: Any) -> Any:
    return time_of(value) or ""


def _not_provided(fields: dict[str, Any]) -> None:
    return None  # the instance lacks the field


def _compile_reader(plan: _FieldPlan) -> Callable[[dict[str, Any]], Any]:
    """The reader of one canonical field, specialised once per mapper to the field's
    resolved ids and kind: per issue it costs the lookup and the value's conversion."""
    ids, kind, negate = plan.ids, plan.kind, plan.negate
    if not ids:
        return _not_provided
    first = ids[0]
    if kind in ("text", "bool") and plan.schema_type in CHECKED_TYPES:
        check = typed_value(plan.schema_type, plan.schema_items)
        if kind == "text":

            def read_checked_text(fields: dict[str, Any]) -> str:
                text = text_of(check(first, fields.get(first)))
                return text if text.strip() else ""

            return read_checked_text

        def read_checked_flag(fields: dict[str, Any]) -> bool:
            return _flag(check(first, fields.get(first))) != negate

        return read_checked_flag
    if kind == "text" and plan.schema_type == "string":

        def read_string(fields: dict[str, Any]) -> str:
            value = fields.get(first)
            if value is None:
                return ""
            if value.__class__ is str:
                text = maybe_html_text(value) if "<" in value else value  # settled 19
            elif is_adf(value):
                text = adf_to_text(value)
            else:
                raise _schema_error("string", first, value)
            return text if text.strip() else ""

        return read_string
    if kind == "time" and plan.schema_type in ("date", "datetime"):
        want_date = plan.schema_type == "date"

        def read_typed_time(fields: dict[str, Any]) -> Any:
            value = fields.get(first)
            if value is None or value == "":
                return ""
            if want_date:
                if value.__class__ is str and len(value.strip()) == 10:
                    try:
                        return date.fromisoformat(value.strip())
                    except ValueError:
                        pass
                raise _schema_error("date", first, value)
            try:
                read = time_of(value)
            except Unreadable:
                raise _schema_error("datetime", first, value) from None
            if read.__class__ is date:
                raise _schema_error("datetime", first, value)
            return read or ""

        return read_typed_time
    if kind == "text":
        if len(ids) == 1:

            def read_text(fields: dict[str, Any]) -> str:
                value = fields.get(first)
                if value.__class__ is str:
                    text = maybe_html_text(value) if "<" in value else value  # settled 19
                elif value.__class__ is dict and value.get("type") == "doc" and "content" in value:
                    text = adf_to_text(value)  # what text_of does with an ADF document
                else:
                    text = text_of(value)
                return text if text.strip() else ""

            return read_text

        def read_texts(fields: dict[str, Any]) -> str:
            for fid in ids:
                text = text_of(fields.get(fid))
                if text.strip():
                    return text
            return ""

        return read_texts
    if kind == "ci":

        def read_cis(fields: dict[str, Any]) -> list[str]:
            refs: dict[str, None] = {}
            for fid in ids:
                refs.update(dict.fromkeys(ci_names(fields.get(fid))))
            return list(refs)

        return read_cis
    if kind == "time":

        def read_time(fields: dict[str, Any]) -> Any:
            return time_of(fields.get(first)) or ""

        return read_time
    if kind == "sla":
        overridden = plan.overridden

        def read_sla(fields: dict[str, Any]) -> bool | None:
            value = fields.get(first)
            if isinstance(value, dict) or (value is None and not overridden):
                verdict = sla_breached(value)
            else:
                verdict = _flag(value)
            return None if verdict is None else verdict != negate

        return read_sla
    if kind in ("bool", "review"):

        def read_flag(fields: dict[str, Any]) -> bool:
            return _flag(fields.get(first)) != negate

        return read_flag
    raise AssertionError(f"unknown field kind {kind}")


_schema_error = schema_error


def _name(value: Any) -> str:
    if isinstance(value, dict):
        name = value.get("name")
        return name if isinstance(name, str) else ""
    return ""


SYSTEM_TYPE_PREFIX = "[system] "


def type_key(name: str) -> str:
    """An issue type name as the mapping compares it: case-folded, and without the
    "[System] " prefix Jira Service Management Cloud gives its ITSM types ("[System]
    Incident" is the Incident type, settled reading 20)."""
    folded = name.strip().casefold()
    if folded.startswith(SYSTEM_TYPE_PREFIX):
        folded = folded[len(SYSTEM_TYPE_PREFIX) :].strip()
    return folded


def _type_name(issue: dict[str, Any]) -> str:
    itype = (issue.get("fields") or {}).get("issuetype") if isinstance(issue, dict) else None
    return _name(itype)


def _flag(value: Any) -> bool:
    """A Jira boolean-ish field: checkbox / option lists, options, booleans, text, dates."""
    if isinstance(value, list):
        return any(_flag(v) for v in value)
    if isinstance(value, dict):
        return truthy_flag(text_of(value))
    return truthy_flag(value)


def _category_state(process: str, category: str | None) -> str | None:
    if category == "new":
        return "new"
    if category == "indeterminate":
        return "implement" if process == "change" else "in_progress"
    if category == "done":
        return "closed"
    return None


def _outcome(state: str | None, raw_state: str, resolution: str) -> str | None:
    """Settled reading 5."""
    res = resolution.strip().casefold()
    if raw_state.strip().casefold() == "failed" or res in FAILED_RESOLUTIONS:
        return "unsuccessful"
    if state != "closed":
        return None
    if res == "completed with issues":
        return "successful_with_issues"
    return "successful"


def _decision(value: Any) -> str | None:
    decision = str(value or "").strip().casefold()
    return {
        "approved": "approved",
        "approve": "approved",
        "declined": "rejected",
        "decline": "rejected",
        "rejected": "rejected",
        "pending": "pending",
        "cancelled": "cancelled",
        "canceled": "cancelled",
    }.get(decision)


def _implement_window(transitions: list[Transition] | None) -> tuple[Any, Any]:
    """First transition into implement, and the first one out of it after that.

    A history status that maps to no state (not in the status map nor the instance's
    status list) could be implement: while one stands where the answer would be, that
    answer is unknown (None), never "did not happen" ("")."""
    if transitions is None:
        return None, None
    start = end = None
    unknown_before_start = unknown_before_end = False
    for t in transitions:
        unknown = t.to_state is None and bool(t.to_raw)
        if start is None:
            if t.to_state == "implement":
                start = t.at
            elif unknown:
                unknown_before_start = True
        elif t.from_state == "implement" and t.to_state != "implement":
            end = t.at
            break
        elif unknown:
            unknown_before_end = True
    if unknown_before_start:
        return None, None
    if start is None:
        return "", ""
    if end is None and unknown_before_end:
        return start, None
    return start, end or ""


def _linked_issues(issuelinks: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for link in issuelinks or []:
        if not isinstance(link, dict):
            raise ValueError("an issue link is not an object")
        linked = link.get("outwardIssue") or link.get("inwardIssue")
        if isinstance(linked, dict):
            out.append(linked)
    return out


def _embedded_histories(issue: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The issue's own changelog when it is the whole history; None when truncated."""
    changelog = issue.get("changelog") if isinstance(issue, dict) else None
    if not isinstance(changelog, dict):
        return None
    histories = changelog.get("histories")
    total = changelog.get("total")
    if not isinstance(histories, list) or not isinstance(total, int):
        return None
    if (changelog.get("startAt") or 0) != 0 or total > len(histories):
        return None
    return histories
