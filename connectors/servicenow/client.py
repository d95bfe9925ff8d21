"""The Table API client: one page per request, errors in the server's words, keyset reads.

Every request goes through :class:`ticketlint.connectors.http.HttpClient` (retries,
Retry-After, TLS); with OAuth, a 401 refreshes the token once. A failure is a
:class:`SourceError`, never an empty list.

Ending a read (see :mod:`.paging`): X-Total-Count is counted before ACLs, so a counted
page whose ``offset + limit`` reaches the count is the last one. Without the header, a
counted page whose ``Link`` header (first / prev / next / last, also computed before
ACLs) has no ``next`` is the last one; with neither (a proxy stripping them), the read
ends on the empty page. Uncounted pages' links are never trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from ticketlint.config import ServiceNowSource
from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.servicenow.auth import OAuthTokens
from ticketlint.connectors.servicenow.paging import Keyset, KeysetPaginator, Page, PagingStalled
from ticketlint.mapping.common import MappingReport

log = logging.getLogger(__name__)

TABLE_API = "/api/now/table/"

_TABLE_HINTS = {
    400: "the encoded query (sources[].query, --query) and the field names in sources[].fields",
    401: "the user name and password (or OAuth client) of this source",
    403: "the API user's roles and read ACLs on table {table} (e.g. itil, "
    "snc_platform_rest_api_access) and any IP access control",
    404: "the table name {table} (sources[].tables) and the instance URL and its base path",
}


def servicenow_error_detail(response: requests.Response) -> str:
    """The server's own words: Table API ``{"error": {"message", "detail"}}`` or the OAuth
    endpoint's ``{"error": ..., "error_description": ...}``; else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return (response.text or "").strip()[:300]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            parts = [str(err.get(k)) for k in ("message", "detail") if err.get(k)]
            return ": ".join(parts)
        if isinstance(err, str):
            desc = body.get("error_description")
            return f"{err}: {desc}" if desc else err
    return str(body)[:300]


def http_client(
    cfg: ServiceNowSource, session: requests.Session, sleep: Callable[[float], None]
) -> HttpClient:
    """The retrying client of one source over ``session``."""
    return HttpClient(
        cfg.name,
        cfg.url.rstrip("/"),
        session,
        timeout=cfg.timeout,
        max_attempts=cfg.max_attempts,
        retry_after_max=cfg.retry_after_max,
        verify=cfg.verify,
        sleep=sleep,
        error_detail=servicenow_error_detail,
    )


def http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def missing_fields(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[str]:
    """Requested fields that no returned row holds: the Table API silently drops unknown
    (or unreadable) fields, so absence means the table lacks what the mapping names."""
    present: set[str] = set()
    for row in rows:
        present.update(row)
    return [f for f in fields if f not in present]


def table_params(fields: Sequence[str], query: str, limit: int, offset: int = 0) -> dict[str, str]:
    """``sysparm_*`` of one page: only ``fields``, raw values, no count (unless asked)."""
    params = {
        "sysparm_query": query,
        "sysparm_fields": ",".join(fields),
        "sysparm_limit": str(limit),
        "sysparm_exclude_reference_link": "true",
        "sysparm_no_count": "true",
        "sysparm_display_value": "false",
    }
    if offset:
        params["sysparm_offset"] = str(offset)
    return params


class TableAPI:
    """Table API reads of one source: pages, keyset reads, and the instance's clock."""

    def __init__(
        self, source: str, http: HttpClient, oauth: OAuthTokens | None, page_size: int
    ) -> None:
        self.source = source
        self.http = http
        self.oauth = oauth
        self.base_url = http.base_url
        self.page_size = page_size
        self.server_time: datetime | None = None
        """The instance's clock (``Date`` of the latest response)."""

    @property
    def request_count(self) -> int:
        """HTTP attempts sent so far (retries and token requests included)."""
        return self.http.request_count + (self.oauth.http.request_count if self.oauth else 0)

    def close(self) -> None:
        self.http.close()
        if self.oauth is not None:
            self.oauth.http.close()

    def get_result(self, table: str, params: dict[str, Any]) -> list[Any]:
        """One Table API page: its ``result`` list."""
        return self.get_page(table, params)[0]

    def get_page(self, table: str, params: dict[str, Any]) -> tuple[list[Any], int | None]:
        """One Table API page: its ``result`` list and X-Total-Count (when the request
        asked for a count). With OAuth, a 401 refreshes the token once; every other
        failure is a :class:`SourceError` (never an empty list)."""
        path = TABLE_API + table
        body: Any = None
        response: Any = None
        for attempt in (1, 2):
            token = None
            if self.oauth is not None:
                self.oauth.ensure()
                token = self.oauth.auth.token
            try:
                response, body = self.http.get_json_response(path, params)
                break
            except SourceError as exc:
                if exc.status == 401 and self.oauth is not None and attempt == 1:
                    log.info(
                        "%s: HTTP 401 on %s; refreshing the OAuth token once", self.source, table
                    )
                    self.oauth.refresh(refused=token)
                    continue
                raise self.table_error(exc, table) from exc
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, list):
            raise SourceError(
                self.source,
                f"table {table}: the response holds no 'result' list",
                url=f"{self.base_url}{path}",
                detail=str(body)[:200],
            )
        headers = response.headers if response is not None else {}
        self.server_time = http_date(headers.get("Date")) or self.server_time
        total = headers.get("X-Total-Count")
        if total and total.isdigit():
            return result, int(total)
        links = getattr(response, "links", None) or {}
        if params.get("sysparm_no_count") == "false" and "first" in links and "next" not in links:
            # No count, but the counted page's Link header has no "next": the instance
            # knows no row after this page (its links, like the count, precede ACLs).
            offset = int(params.get("sysparm_offset") or 0)
            return result, offset + min(len(result), int(params.get("sysparm_limit") or 0))
        return result, None

    def table_error(self, exc: SourceError, table: str) -> SourceError:
        """``exc`` with what to check for this table (for the statuses that have a hint)."""
        hint = _TABLE_HINTS.get(exc.status or 0)
        if hint is None:
            return exc
        return SourceError(
            self.source,
            f"reading table {table} was refused",
            url=exc.url,
            status=exc.status,
            detail=exc.detail,
            hint=hint.format(table=table),
        )

    def pages(
        self,
        table: str,
        fields: Sequence[str],
        base: str,
        *,
        keyset: Keyset,
        counted: bool = False,
        page_size: int | None = None,
    ) -> Iterator[Page]:
        """Keyset pages of ``table`` (rows matching ``base``) until the last one (see
        :class:`KeysetPaginator` for when a page asks for a count and when a read ends);
        ``page_size`` overrides the source's (small metadata reads)."""
        size = page_size or self.page_size
        pager = KeysetPaginator(keyset, base, size, counted=counted)
        while True:
            query = pager.query
            params = table_params(fields, query, size, pager.offset)
            if pager.wants_count:
                params["sysparm_no_count"] = "false"
            rows, total = self.get_page(table, params)
            if not rows:
                return
            try:
                page = pager.take(rows)
            except PagingStalled as exc:
                raise SourceError(
                    self.source,
                    f"table {table}: paging did not advance past {exc.key}",
                    url=f"{self.base_url}{TABLE_API}{table}",
                    detail=f"sysparm_query={query}",
                    hint="whether the instance ignores part of the encoded query "
                    "(glide.invalid_query.returns_no_rows)",
                ) from exc
            yield page
            if pager.last_page(total):
                return

    def check_fields(
        self,
        report: MappingReport,
        table: str,
        rows: Sequence[dict[str, Any]],
        fields: Sequence[str],
    ) -> None:
        """Warn (log and ``report``) about each requested field no row of ``table`` holds."""
        for name in missing_fields(rows, fields):
            log.warning(
                "%s: table %s returned no field %s (not on the table or not readable); "
                "it is mapped as not provided",
                self.source,
                table,
                name,
            )
            report.warnings[f"{table}.{name} missing"] += 1
