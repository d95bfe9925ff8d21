"""What a Jira issue's record needs beyond the search: its history and its approvals.

- History: Cloud ``POST /rest/api/3/changelog/bulkfetch`` in batches of up to
  :data:`CHANGELOG_BATCH` issues (the embedded changelog of a Cloud search is truncated,
  so it is never asked for); Data Center's search ``expand=changelog`` is complete and
  needs nothing here.
- Approvals: ``/rest/servicedeskapi/request/{key}/approval``, only for the issues the
  mapper says need it when the search did not return the JSM Approvals field.
"""

from __future__ import annotations

from typing import Any

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.jira.paging import PagingLoop, TokenPaginator

BULK_CHANGELOG = "/rest/api/3/changelog/bulkfetch"
APPROVALS = "/rest/servicedeskapi/request/{key}/approval"
CHANGELOG_BATCH = 1000
"""Issues per bulkfetch call (the API's maximum)."""
CHANGELOG_PAGE = 10000
APPROVAL_PAGE = 100


def bulk_changelogs(http: HttpClient, issue_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Status histories of up to :data:`CHANGELOG_BATCH` issues, by issue id (every id
    present, with an empty list when it has none)."""
    result: dict[str, list[dict[str, Any]]] = {i: [] for i in issue_ids}
    pager = TokenPaginator()
    while True:
        body: dict[str, Any] = {
            "issueIdsOrKeys": issue_ids,
            "fieldIds": ["status"],
            "maxResults": CHANGELOG_PAGE,
        }
        if pager.token:
            body["nextPageToken"] = pager.token
        data = http.post_json(BULK_CHANGELOG, json=body) or {}
        for entry in data.get("issueChangeLogs") or []:
            result.setdefault(str(entry.get("issueId")), []).extend(
                entry.get("changeHistories") or []
            )
        try:
            if not pager.advance(data.get("nextPageToken")):
                return result
        except PagingLoop:
            raise SourceError(
                http.source,
                "changelog bulkfetch repeated its nextPageToken",
                url=http.base_url + BULK_CHANGELOG,
            ) from None


def approvals(http: HttpClient, key: str) -> list[dict[str, Any]]:
    """Every approval of the request ``key`` (JSM), page by page."""
    path = APPROVALS.format(key=key)
    values: list[dict[str, Any]] = []
    start = 0
    while True:
        data = http.get_json(path, params={"start": start, "limit": APPROVAL_PAGE}) or {}
        page = data.get("values") or []
        values.extend(page)
        start += len(page)
        if data.get("isLastPage", True) or not page:
            return values
