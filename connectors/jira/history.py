"""What a Jira issue's record needs beyond the search: its history and its approvals.

- History: Cloud ``POST /rest/api/3/changelog/bulkfetch`` in batches of up to
  :data:`CHANGELOG_BATCH` issues (the embedded changelog of a Cloud search is truncated,
  so it is never asked for); Data Center's search ``expand=changelog`` is complete and
  needs nothing here.
- Approvals: ``/rest/servicedeskapi/request/{key}/approval``, only for the issues the
  mapper says need it when the search did not return the JSM Approvals field.
- Comments (settled reading 6): ``GET /rest/api/{3|2}/issue/{key}/comment`` newest first,
  only for the issues the mapper says need them (:func:`last_comments`).
- The history of a closed issue without ``resolutiondate`` (its closing time, settled
  reading 4) comes in the same bulkfetch batches as the changes' (the mapper's
  ``needs_history`` names both).
"""

from __future__ import annotations

from typing import Any

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.jira.paging import PagingLoop, TokenPaginator
from ticketlint.mapping.common import WRITEBACK_MARKER
from ticketlint.mapping.jira_fields import text_of

BULK_CHANGELOG = "/rest/api/3/changelog/bulkfetch"
APPROVALS = "/rest/servicedeskapi/request/{key}/approval"
CHANGELOG_BATCH = 1000
"""Issues per bulkfetch call (the API's maximum)."""
CHANGELOG_PAGE = 10000
APPROVAL_PAGE = 100
COMMENTS = "/rest/api/{v}/issue/{key}/comment"
COMMENT_PAGE = 50


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


def last_comments(http: HttpClient, cloud: bool, key: str) -> list[dict[str, Any]]:
    """The issue's newest comments, oldest first, enough to hold the last one ticketlint
    did not write itself (settled reading 6): one page, newest first, is nearly always
    enough; further pages only while every comment read is our own."""
    path = COMMENTS.format(v=3 if cloud else 2, key=key)
    newest_first: list[dict[str, Any]] = []
    start = 0
    while True:
        params = {"startAt": start, "maxResults": COMMENT_PAGE, "orderBy": "-created"}
        data = http.get_json(path, params=params) or {}
        page = [c for c in data.get("comments") or [] if isinstance(c, dict)]
        newest_first.extend(page)
        start += len(page)
        total = data.get("total")
        done = not page or (isinstance(total, int) and start >= total)
        if done or any(WRITEBACK_MARKER not in text_of(c.get("body")) for c in page):
            return newest_first[::-1]
