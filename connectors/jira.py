"""Jira Cloud and Data Center connector: search pages, history, approvals and Assets CIs.

What it reads and how (DESIGN.md "Connectors"):

- The session, server info, field list and ``/myself`` come from the ``jira`` library
  (pycontribs); every request, the library's included, goes through
  :class:`ticketlint.connectors.http.HttpClient`, so tenacity owns retries and errors are
  :class:`SourceError` (the library's own retry loop is switched off).
- Cloud vs Data Center from ``serverInfo.deploymentType``. Cloud pages
  ``POST /rest/api/3/search/jql`` by ``nextPageToken`` (never the removed
  ``/rest/api/3/search``); Data Center pages ``POST /rest/api/2/search`` by ``startAt``,
  advancing by the number of issues actually received.
- An explicit field list (only the mapped fields), the largest page the server gives
  (``maxResults`` 5000; the real page size is whatever comes back),
  ``ORDER BY updated ASC, key ASC``, the scope JQL ANDed with the incremental clause in
  the API user's time zone minus the lookback, de-duplication by issue id.
- History: Cloud ``POST /rest/api/3/changelog/bulkfetch`` in batches of up to 1000
  issues, buffered across search pages (the embedded changelog of a Cloud search is
  truncated, so it is never asked for); Data Center ``expand=changelog`` (complete there).
- Approvals: the JSM Approvals field when the search returns it, otherwise
  ``/rest/servicedeskapi/request/{key}/approval`` only for the issues the mapper says need it.
- Reviews (settled reading 10): the incident and change streams also search the review
  issue types. When a review issue of the read links records the read did not return
  (only the review changed: moved to Done, or reopened), those records are re-read by key
  after the search, with the review issues linking them, ``REVIEW_TARGETS_PER_QUERY``
  targets a query (about ceil(targets / 100) extra searches, plus their history and approvals as
  usual; none when no review changed or every target was read anyway, and never when the
  caller gave ``keys``). The watermark stays the main search's.
- CIs from JSM Assets (AQL) as the ``ci`` stream when ``assets`` is configured.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jira as jiralib

from ticketlint.config import BasicAuth, JiraCloudAuth, JiraPatAuth, JiraSource
from ticketlint.connectors.base import DoctorCheck, DoctorReport, SourceError, StreamBatch
from ticketlint.connectors.http import HttpClient
from ticketlint.mapping.common import MappingError, MappingReport, parse_jira_time
from ticketlint.mapping.jira import (
    DEFAULT_ISSUE_TYPES,
    DEFAULT_STATUS_MAP,
    JiraFieldCatalog,
    JiraMapper,
)
from ticketlint.mapping.jira_assets import map_assets_object
from ticketlint.mapping.model import BaseRecord

log = logging.getLogger(__name__)

CLOUD_SEARCH = "/rest/api/3/search/jql"
DC_SEARCH = "/rest/api/2/search"
BULK_CHANGELOG = "/rest/api/3/changelog/bulkfetch"
APPROVALS = "/rest/servicedeskapi/request/{key}/approval"
ASSETS_AQL = "/jsm/assets/workspace/{workspace}/v1/object/aql"
ASSETS_WORKSPACES = "/rest/servicedeskapi/assets/workspace"

SEARCH_PAGE = 5000
"""Asked for on every search; servers cap it (Cloud by field count, DC at 1000 by default)."""
CHANGELOG_BATCH = 1000
"""Issues per bulkfetch call (the API's maximum)."""
CHANGELOG_PAGE = 10000
BUFFER_LIMIT = 5000
"""Issues held while waiting for a full changelog batch; keeps memory flat."""
APPROVAL_PAGE = 100
ASSETS_PAGE = 500
ALWAYS_FIELDS = ("updated", "issuetype", "status")
"""The connector itself reads these (watermark, stream membership), whatever is mapped."""
APPROVALS_CUSTOM_TYPE = "com.atlassian.servicedesk.approvals-plugin:sd-approvals"

PROCESS_STREAMS = ("incident", "service_request", "problem", "change", "release")
REVIEWED_PROCESSES = ("incident", "change")
"""Streams whose search also returns review issues, so the mapper can complete reviews."""
REVIEW_TARGETS_PER_QUERY = 100
"""Targets per ``key in (...)`` re-read of review targets (plus the review keys linking
them, so usually at most 200 keys): a short JQL in a POST body, one page each."""

# Canonical field -> (default display names, rule codes that need it). Used by `doctor`
# to say which rules will be NOT_EVALUATED on this instance and why (RULES.md §4).
FIELD_RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "change.change_type": (
        ("Change type",),
        ("CHG001", "CHG002", "CHG004", "CHG005", "CHG006", "CHG009", "CHG011"),
    ),
    "change.risk": (("Change risk",), ("CHG004",)),
    "change.impact": (("Impact",), ("CHG004",)),
    "change.implementation_plan": (("Implementation plan",), ()),
    "change.backout_plan": (("Backout plan",), ("CHG005",)),
    "change.test_plan": (("Test plan",), ("CHG006",)),
    "change.planned_start": (("Planned start",), ("CHG010",)),
    "change.planned_end": (("Planned end",), ("CHG010",)),
    "change.cab_required": ((), ("CHG012",)),
    "change.cab_date": ((), ("CHG012",)),
    "change.ci_refs": (("Affected services", "Affected hardware"), ("CHG009",)),
    "incident.major": (("Major incident",), ("INC004", "PRB005")),
    "incident.sla_breached": (("Time to resolution",), ()),
    "problem.root_cause": (("Root cause",), ("PRB001",)),
    "problem.workaround": (("Workaround",), ("PRB002",)),
    "incident.ci_refs": (("Affected services", "Affected hardware"), ("PRB004",)),
}


def incremental_clause(since: datetime, tz_name: str, lookback_minutes: int) -> str:
    """``updated >= "yyyy/MM/dd HH:mm"`` for ``since`` minus the lookback, written in the
    API user's time zone (JQL dates are read in that zone, to the minute).

    A naive ``since`` is taken as UTC. Seconds are dropped (floor), which only widens the
    window, so nothing changed at or after ``since - lookback`` is missed.
    """
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    local = (since - timedelta(minutes=lookback_minutes)).astimezone(ZoneInfo(tz_name))
    return f'updated >= "{local:%Y/%m/%d %H:%M}"'


def jql_string(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_jql(
    *,
    scope: str | None,
    issue_types: Sequence[str],
    since_clause: str | None,
    query: str | None = None,
    keys: Sequence[str] | None = None,
) -> str:
    """Scope AND issue types AND incremental clause AND extra query AND keys, ordered."""

    def group(extra: str | None) -> list[str]:
        if not extra or not extra.strip():
            return []
        if re.search(r"\border\s+by\b", extra, re.IGNORECASE):
            raise ValueError(
                f"JQL {extra!r} must not hold ORDER BY (ticketlint orders by updated, key)"
            )
        return [f"({extra.strip()})"]

    parts = group(scope)
    if issue_types:
        parts.append(f"issuetype in ({', '.join(jql_string(t) for t in issue_types)})")
    if since_clause:
        parts.append(since_clause)
    parts += group(query)
    if keys:
        parts.append(f"key in ({', '.join(jql_string(k) for k in keys)})")
    return " AND ".join(parts) + " ORDER BY updated ASC, key ASC"


@dataclass
class _Instance:
    """What the connector learns about the site once, before the first read."""

    server_info: dict[str, Any]
    myself: dict[str, Any]
    fields: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    time_zone: str
    mapper: Any
    catalog: Any

    @property
    def deployment(self) -> str:
        return str(self.server_info.get("deploymentType") or "Server")

    @property
    def cloud(self) -> bool:
        return self.deployment == "Cloud"


class _Buffer:
    """Issues read but not yet mapped, in read order (ascending ``updated``)."""

    def __init__(self, requests_mark: int) -> None:
        self.issues: dict[str, dict[str, Any]] = {}
        self.history: set[str] = set()
        self.watermark: datetime | None = None
        """Newest ``updated`` among the issues already handed out (safe to store)."""
        self.requests_mark = requests_mark

    def add(self, issue_id: str, issue: dict[str, Any], *, needs_history: bool) -> None:
        # A newer version of a buffered issue replaces it and moves to the end, where
        # its new `updated` sorts.
        self.issues.pop(issue_id, None)
        self.issues[issue_id] = issue
        if needs_history:
            self.history.add(issue_id)
        else:
            self.history.discard(issue_id)

    def take(self, history_limit: int | None) -> list[tuple[str, dict[str, Any], bool]]:
        """The oldest issues, up to and including the ``history_limit``-th one needing
        history (everything when None or when fewer are pending)."""
        taken: list[tuple[str, dict[str, Any], bool]] = []
        count = 0
        for issue_id in list(self.issues):
            needs = issue_id in self.history
            taken.append((issue_id, self.issues.pop(issue_id), needs))
            self.history.discard(issue_id)
            count += needs
            if history_limit is not None and count >= history_limit:
                break
        return taken


def _default_mapper_factory(
    options: Any, fields: list[dict[str, Any]], statuses: list[dict[str, Any]], deployment: str
) -> tuple[Any, Any]:
    catalog = JiraFieldCatalog.from_field_list(fields)
    return JiraMapper(options, catalog, statuses=statuses, deployment=deployment), catalog


MapperFactory = Callable[[Any, list, list, str], tuple[Any, Any]]


class JiraConnector:
    """One configured Jira source (Cloud or Data Center). See the module docstring."""

    def __init__(
        self,
        source_cfg: JiraSource,
        *,
        sleep: Callable[[float], None] = time.sleep,
        mapper_factory: MapperFactory | None = None,
    ) -> None:
        self.cfg = source_cfg
        self.name = source_cfg.name
        self.base_url = source_cfg.url.rstrip("/")
        self.issue_types = {
            **DEFAULT_ISSUE_TYPES,
            **source_cfg.issue_types,
        }  # as the mapper reads them
        self.streams: list[str] = [p for p in PROCESS_STREAMS if self.issue_types.get(p)]
        if source_cfg.assets is not None:
            self.streams.append("ci")
        self._mapper_factory = mapper_factory or _default_mapper_factory
        self._client = jiralib.JIRA(
            server=self.base_url,
            get_server_info=False,
            max_retries=0,
            logging=False,
            timeout=source_cfg.timeout,
            options={"verify": source_cfg.verify, "check_update": False},
            **_auth_kwargs(source_cfg),
        )
        session = self._client._session
        self.http = HttpClient(
            self.name,
            self.base_url,
            session,
            timeout=source_cfg.timeout,
            max_attempts=source_cfg.max_attempts,
            retry_after_max=source_cfg.retry_after_max,
            verify=source_cfg.verify,
            sleep=sleep,
        )
        # Route the library's own calls (server_info, fields, myself) through HttpClient:
        # an instance attribute shadows ResilientSession.request for Session.get/post, while
        # HttpClient itself calls the base requests.Session.request, so nothing recurses.
        session.request = self._library_request  # type: ignore[method-assign]
        self._instance: _Instance | None = None

    # -- Connector protocol -----------------------------------------------------------
    @property
    def request_count(self) -> int:
        return self.http.request_count

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        if stream not in self.streams:
            raise SourceError(
                self.name, f"no stream {stream!r} (this source has: {', '.join(self.streams)})"
            )
        inst = self.instance()
        if stream == "ci":
            yield from self._read_assets(inst)
            return
        yield from self._read_issues(inst, stream, since=since, query=query, keys=keys)

    def doctor(self) -> DoctorReport:
        report = DoctorReport(source=self.name)
        try:
            info = self._client.server_info()
        except SourceError as exc:
            report.checks.append(DoctorCheck("reachable", False, str(exc)))
            return report
        report.checks.append(
            DoctorCheck(
                "reachable",
                True,
                f"{self.base_url}: {info.get('serverTitle', 'Jira')} {info.get('version', '')}".strip(),
                level="info",
            )
        )
        deployment = str(info.get("deploymentType") or "Server")
        report.info["deployment"] = deployment
        report.checks.append(
            DoctorCheck(
                "deployment",
                True,
                deployment + ("" if deployment == "Cloud" else " (Data Center / Server)"),
                level="info",
            )
        )
        try:
            me = self._client.myself()
        except SourceError as exc:
            report.checks.append(DoctorCheck("auth", False, str(exc)))
            return report
        who = (
            me.get("displayName") or me.get("emailAddress") or me.get("name") or me.get("accountId")
        )
        report.checks.append(DoctorCheck("auth", True, f"authenticated as {who}", level="info"))
        tz = self._time_zone(me, info)
        report.info["time_zone"] = tz
        report.checks.append(
            DoctorCheck(
                "time zone",
                "timeZone" in me,
                f"API user's time zone {tz} (incremental JQL is written in it)",
                level="info" if "timeZone" in me else "warning",
            )
        )
        try:
            fields = self._client.fields()
            statuses = self.http.get_json("/rest/api/2/status")
        except SourceError as exc:
            report.checks.append(DoctorCheck("metadata", False, str(exc)))
            return report
        self._doctor_fields(report, fields)
        self._doctor_statuses(report, statuses)
        if self.cfg.assets is None:
            for code in ("CFG001", "CFG002", "CFG003"):
                report.not_evaluated[code] = (
                    "no CI stream: `assets` is not configured for this source"
                )
        report.checks.append(DoctorCheck("streams", True, ", ".join(self.streams), level="info"))
        return report

    def close(self) -> None:
        self.http.close()

    # -- setup ----------------------------------------------------------------------
    def instance(self) -> _Instance:
        """Server info, user time zone, field list, statuses and the mapper (read once)."""
        if self._instance is None:
            info = self._client.server_info()
            me = self._client.myself()
            fields = self._client.fields()
            statuses = self.http.get_json("/rest/api/2/status") or []
            deployment = str(info.get("deploymentType") or "Server")
            mapper, catalog = self._mapper_factory(
                self.cfg.mapping_options(), fields, statuses, deployment
            )
            self._instance = _Instance(
                info, me, fields, statuses, self._time_zone(me, info), mapper, catalog
            )
        return self._instance

    def _time_zone(self, me: dict[str, Any], info: dict[str, Any]) -> str:
        for tz in (me.get("timeZone"), info.get("serverTimeZone")):
            if isinstance(tz, str) and tz:
                try:
                    ZoneInfo(tz)
                    return tz
                except (ZoneInfoNotFoundError, ValueError):
                    log.warning(
                        "%s: unknown time zone %r; trying the next source of it", self.name, tz
                    )
        log.warning(
            "%s: the API user's time zone is unknown; writing incremental JQL in UTC", self.name
        )
        return "UTC"

    def _library_request(self, method: str, url: str, **kwargs: Any) -> Any:
        response, _ = self.http._send(
            method,
            url,
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            data=kwargs.get("data"),
            headers=kwargs.get("headers"),
            want_json=True,
        )
        return response

    # -- issues ---------------------------------------------------------------------
    def _stream_types(self, stream: str) -> list[str]:
        types = list(self.issue_types.get(stream, []))
        if stream in REVIEWED_PROCESSES:
            types += [t for t in self.issue_types.get("review", []) if t not in types]
        return types

    def _read_issues(
        self,
        inst: _Instance,
        stream: str,
        *,
        since: datetime | None,
        query: str | None,
        keys: Sequence[str] | None,
    ) -> Iterator[StreamBatch]:
        clause = (
            incremental_clause(since, inst.time_zone, self.cfg.lookback_minutes) if since else None
        )
        try:
            jql = build_jql(
                scope=self.cfg.jql,
                issue_types=self._stream_types(stream),
                since_clause=clause,
                query=query,
                keys=keys,
            )
        except ValueError as exc:
            raise SourceError(self.name, str(exc), hint="the source's `jql` and --jql") from None
        fields = list(dict.fromkeys([*inst.mapper.search_fields(), *ALWAYS_FIELDS]))
        approval_fields = self._approval_field_ids(inst)
        seen: dict[str, str] = {}
        read_keys: set[str] = set()
        # target key -> keys of the review issues of this read that link it
        targets: dict[str, list[str]] = {}
        review_targets = (
            getattr(inst.mapper, "review_targets", None)
            if keys is None and stream in REVIEWED_PROCESSES
            else None
        )
        buf = _Buffer(requests_mark=self.request_count)
        for page in self._search_pages(inst, jql, fields):
            for issue in page:
                issue_id = str(issue.get("id") or issue.get("key"))
                updated = (issue.get("fields") or {}).get("updated") or ""
                if seen.get(issue_id) == updated:
                    continue  # the same version twice (page overlap): drop it
                seen[issue_id] = updated
                if isinstance(issue.get("key"), str):
                    read_keys.add(issue["key"])
                    for target in review_targets(issue) if review_targets is not None else ():
                        linking = targets.setdefault(target, [])
                        if issue["key"] not in linking:
                            linking.append(issue["key"])
                buf.add(
                    issue_id,
                    issue,
                    needs_history=inst.cloud and bool(inst.mapper.needs_history(issue)),
                )
            # Cloud history costs one bulkfetch call per 1000 issues, so issues are held
            # across pages until a full batch is due; every other page is flushed at once.
            while buf.issues and (
                not buf.history
                or len(buf.history) >= CHANGELOG_BATCH
                or len(buf.issues) >= BUFFER_LIMIT
            ):
                yield self._flush(inst, stream, buf, buf.take(CHANGELOG_BATCH), approval_fields)
        if buf.issues:
            yield self._flush(inst, stream, buf, buf.take(None), approval_fields)
        missing = {t: reviews for t, reviews in targets.items() if t not in read_keys}
        if missing:
            yield from self._read_review_targets(
                inst,
                stream,
                missing,
                query=query,
                fields=fields,
                approval_fields=approval_fields,
                watermark=buf.watermark,
            )

    def _read_review_targets(
        self,
        inst: _Instance,
        stream: str,
        targets: dict[str, list[str]],
        *,
        query: str | None,
        fields: list[str],
        approval_fields: set[str],
        watermark: datetime | None,
    ) -> Iterator[StreamBatch]:
        """Re-read, by key, the records that review issues of this read complete but that
        the search did not return (they did not change themselves), each chunk together
        with the review issues linking it so the mapper sees the review's own status and
        resolution date (settled reading 10). Same scope, issue types and ``query``; no
        incremental clause. A key outside the scope or of another stream's type is simply
        not found. These batches never move the watermark: the re-read issues are older
        than the window, or changed after the search began and are read again next time.
        """
        types = self._stream_types(stream)
        for chunk in _key_chunks(targets, REVIEW_TARGETS_PER_QUERY):
            jql = build_jql(
                scope=self.cfg.jql, issue_types=types, since_clause=None, query=query, keys=chunk
            )
            buf = _Buffer(requests_mark=self.request_count)
            buf.watermark = watermark
            for page in self._search_pages(inst, jql, fields):
                for issue in page:
                    buf.add(
                        str(issue.get("id") or issue.get("key")),
                        issue,
                        needs_history=inst.cloud and bool(inst.mapper.needs_history(issue)),
                    )
            # A chunk is at most REVIEW_TARGETS_PER_QUERY issues: one batch, so every target
            # is mapped alongside the review issues that complete it.
            yield self._flush(inst, stream, buf, buf.take(None), approval_fields, advance=False)

    def _flush(
        self,
        inst: _Instance,
        stream: str,
        buf: _Buffer,
        taken: list[tuple[str, dict[str, Any], bool]],
        approval_fields: set[str],
        *,
        advance: bool = True,
    ) -> StreamBatch:
        """Fetch history and approvals for ``taken`` (oldest first), map them, one batch."""
        issues = [issue for _, issue, _ in taken]
        changelogs: dict[str, list[dict[str, Any]]] = {}
        if inst.cloud:
            ids = [i for i, _, needs in taken if needs]
            for start in range(0, len(ids), CHANGELOG_BATCH):
                changelogs.update(self._bulk_changelogs(ids[start : start + CHANGELOG_BATCH]))
        # Data Center: the search's expand=changelog is complete there; the mapper reads it
        # (and checks `total` against the histories it holds before trusting it).
        approvals: dict[str, list[dict[str, Any]]] = {}
        for issue in issues:
            present = approval_fields & set((issue.get("fields") or {}).keys())
            if not present and inst.mapper.needs_approvals(issue):
                approvals[issue["key"]] = self._approvals(issue["key"])
        records, report = inst.mapper.map_issues(issues, changelogs=changelogs, approvals=approvals)
        for issue in issues if advance else ():
            buf.watermark = _later(buf.watermark, (issue.get("fields") or {}).get("updated") or "")
        used = self.request_count - buf.requests_mark
        buf.requests_mark = self.request_count
        return StreamBatch(
            stream=stream,
            records=list(records),
            report=report,
            watermark=buf.watermark,
            requests=used,
        )

    def _approval_field_ids(self, inst: _Instance) -> set[str]:
        return {
            f["id"]
            for f in inst.fields
            if isinstance(f, dict)
            and (f.get("schema") or {}).get("custom") == APPROVALS_CUSTOM_TYPE
        }

    def _search_pages(
        self, inst: _Instance, jql: str, fields: list[str]
    ) -> Iterator[list[dict[str, Any]]]:
        size = self.cfg.page_size or SEARCH_PAGE
        if inst.cloud:
            token: str | None = None
            tokens: set[str] = set()
            while True:
                body: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": size}
                if token:
                    body["nextPageToken"] = token
                data = self.http.post_json(CLOUD_SEARCH, json=body)
                issues = _issues_of(data, self.name, CLOUD_SEARCH)
                yield issues
                token = data.get("nextPageToken")
                if not token or data.get("isLast") is True:
                    return
                if token in tokens:
                    raise SourceError(
                        self.name,
                        "search returned the same nextPageToken twice (a paging loop)",
                        url=self.base_url + CLOUD_SEARCH,
                    )
                tokens.add(token)
        else:
            start = 0
            while True:
                body = {
                    "jql": jql,
                    "fields": fields,
                    "maxResults": size,
                    "startAt": start,
                    "expand": ["changelog"],
                }
                data = self.http.post_json(DC_SEARCH, json=body)
                issues = _issues_of(data, self.name, DC_SEARCH)
                if isinstance(data.get("startAt"), int) and data["startAt"] != start:
                    # A proxy or plugin that ignores startAt would loop forever otherwise.
                    raise SourceError(
                        self.name,
                        f"search answered startAt={data['startAt']} when asked for {start}",
                        url=self.base_url + DC_SEARCH,
                        hint="proxies or plugins rewriting the search",
                    )
                if issues:
                    yield issues
                start += len(issues)  # what the server gave, never what was asked
                total = data.get("total")
                if not issues or (isinstance(total, int) and start >= total):
                    return

    def _bulk_changelogs(self, issue_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        result: dict[str, list[dict[str, Any]]] = {i: [] for i in issue_ids}
        token: str | None = None
        tokens: set[str] = set()
        while True:
            body: dict[str, Any] = {
                "issueIdsOrKeys": issue_ids,
                "fieldIds": ["status"],
                "maxResults": CHANGELOG_PAGE,
            }
            if token:
                body["nextPageToken"] = token
            data = self.http.post_json(BULK_CHANGELOG, json=body) or {}
            for entry in data.get("issueChangeLogs") or []:
                result.setdefault(str(entry.get("issueId")), []).extend(
                    entry.get("changeHistories") or []
                )
            token = data.get("nextPageToken")
            if not token:
                return result
            if token in tokens:
                raise SourceError(
                    self.name,
                    "changelog bulkfetch repeated its nextPageToken",
                    url=self.base_url + BULK_CHANGELOG,
                )
            tokens.add(token)

    def _approvals(self, key: str) -> list[dict[str, Any]]:
        path = APPROVALS.format(key=key)
        values: list[dict[str, Any]] = []
        start = 0
        while True:
            data = self.http.get_json(path, params={"start": start, "limit": APPROVAL_PAGE}) or {}
            page = data.get("values") or []
            values.extend(page)
            start += len(page)
            if data.get("isLastPage", True) or not page:
                return values

    # -- Assets (CIs) ---------------------------------------------------------------
    def _read_assets(self, inst: _Instance) -> Iterator[StreamBatch]:
        assets = self.cfg.assets
        assert assets is not None
        base = (assets.url or f"{self.base_url}/gateway/api").rstrip("/")
        workspace = assets.workspace_id or self._workspace_id()
        url = base + ASSETS_AQL.format(workspace=workspace)
        start = 0
        before = self.request_count
        while True:
            data = (
                self.http.post_json(
                    url,
                    json={"qlQuery": assets.aql},
                    params={
                        "startAt": start,
                        "maxResults": ASSETS_PAGE,
                        "includeAttributes": "true",
                    },
                )
                or {}
            )
            objects = data.get("values") or []
            names = {
                str(a.get("id")): a.get("name") for a in data.get("objectTypeAttributes") or []
            }
            report = MappingReport()
            records: list[BaseRecord] = []
            for obj in objects:
                report.rows += 1
                try:
                    records.append(
                        map_assets_object(
                            obj, names, source=self.name, key_attribute=assets.key_attribute
                        )
                    )
                    report.mapped += 1
                except (ValueError, TypeError, KeyError) as exc:
                    report.errors.append(
                        MappingError(self.name, str(obj.get("objectKey")), str(exc))
                    )
            start += len(objects)
            yield StreamBatch(
                stream="ci",
                records=records,
                report=report,
                watermark=None,
                requests=self.request_count - before,
            )
            before = self.request_count
            if data.get("isLast", True) or not objects:
                return

    def _workspace_id(self) -> str:
        data = self.http.get_json(ASSETS_WORKSPACES) or {}
        values = data.get("values") or []
        if not values or not values[0].get("workspaceId"):
            raise SourceError(
                self.name,
                "no JSM Assets workspace on this site",
                url=self.base_url + ASSETS_WORKSPACES,
                hint="`assets.workspace_id`, and that Assets is enabled (JSM Premium)",
            )
        return str(values[0]["workspaceId"])

    # -- doctor helpers ---------------------------------------------------------------
    def _doctor_fields(self, report: DoctorReport, fields: list[dict[str, Any]]) -> None:
        by_name: dict[str, dict[str, Any]] = {}
        by_id: dict[str, dict[str, Any]] = {}
        for f in fields:
            if isinstance(f, dict) and f.get("id"):
                by_id[str(f["id"])] = f
                by_name.setdefault(str(f.get("name", "")).strip().casefold(), f)
        found: dict[str, dict[str, str]] = {}
        missing: list[str] = []
        for canonical, (defaults, rules) in FIELD_RULES.items():
            wanted = (
                [self.cfg.fields[canonical].lstrip("!")]
                if canonical in self.cfg.fields
                else list(defaults)
            )
            hit = next(
                (
                    by_id.get(w) or by_name.get(w.casefold())
                    for w in wanted
                    if by_id.get(w) or by_name.get(w.casefold())
                ),
                None,
            )
            if hit is not None:
                found[canonical] = {"name": str(hit.get("name")), "id": str(hit["id"])}
                continue
            why = (
                f"field {canonical} is not mapped (no default on Jira; set `fields: {{{canonical}: <name or id>}}`)"
                if not wanted
                else f"no field named {' or '.join(repr(w) for w in wanted)} on this instance ({canonical})"
            )
            if rules:
                missing.append(canonical)
            for code in rules:
                report.not_evaluated.setdefault(code, why)
        approvals = [
            f
            for f in fields
            if isinstance(f, dict)
            and (f.get("schema") or {}).get("custom") == APPROVALS_CUSTOM_TYPE
        ]
        if approvals:
            found["approvals"] = {
                "name": str(approvals[0].get("name")),
                "id": str(approvals[0]["id"]),
            }
        report.info["fields"] = found
        report.checks.append(
            DoctorCheck(
                "fields",
                not missing,
                f"{len(found)} mapped fields found"
                + (f"; missing: {', '.join(missing)}" if missing else ""),
                level="warning",
            )
        )
        if not approvals:
            report.checks.append(
                DoctorCheck(
                    "approvals field",
                    False,
                    "no JSM Approvals field: approvals are read per request from /rest/servicedeskapi",
                    level="info",
                )
            )

    def _doctor_statuses(self, report: DoctorReport, statuses: Any) -> None:
        mapped = {name for table in DEFAULT_STATUS_MAP.values() for name in table}
        for per_process in self.cfg.status_map.values():
            mapped.update(name.casefold() for name in per_process)
        uncovered = sorted(
            {
                str(s.get("name"))
                for s in statuses or []
                if isinstance(s, dict) and str(s.get("name", "")).casefold() not in mapped
            }
        )
        report.info["unmapped_statuses"] = uncovered
        report.checks.append(
            DoctorCheck(
                "statuses",
                not uncovered,
                (
                    "every status is in the status map"
                    if not uncovered
                    else f"{len(uncovered)} statuses fall back on their category: {', '.join(uncovered)}"
                    " (add them to `status_map` if the fallback is wrong)"
                ),
                level="warning",
            )
        )


def _auth_kwargs(cfg: JiraSource) -> dict[str, Any]:
    auth = cfg.auth
    if isinstance(auth, JiraCloudAuth):
        return {"basic_auth": (auth.email, auth.token.get_secret_value())}
    if isinstance(auth, JiraPatAuth):
        return {"token_auth": auth.pat.get_secret_value()}
    if isinstance(auth, BasicAuth):
        return {"basic_auth": (auth.user, auth.password.get_secret_value())}
    raise SourceError(cfg.name, f"unsupported auth {type(auth).__name__}")  # pragma: no cover


def _key_chunks(targets: dict[str, list[str]], limit: int) -> Iterator[list[str]]:
    """Keys to re-read: up to ``limit`` targets a chunk, each followed by the review keys
    linking it (once per chunk)."""
    chunk: list[str] = []
    count = 0
    for target, reviews in targets.items():
        if count >= limit:
            yield chunk
            chunk, count = [], 0
        chunk.extend(k for k in dict.fromkeys((target, *reviews)) if k not in chunk)
        count += 1
    if chunk:
        yield chunk


def _issues_of(data: Any, source: str, path: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("issues"), list):
        raise SourceError(
            source,
            "search answered without an `issues` list",
            url=path,
            hint="that the URL points at Jira (not a proxy or login page)",
        )
    return data["issues"]


def _later(current: datetime | None, value: str) -> datetime | None:
    try:
        parsed = parse_jira_time(value)
    except ValueError:
        return current
    if parsed is None:
        return current
    return parsed if current is None or parsed > current else current


__all__ = ["JiraConnector", "build_jql", "incremental_clause"]
