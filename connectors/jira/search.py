"""Jira issue search pages: Cloud by ``nextPageToken``, Data Center by ``startAt``.

Cloud pages ``POST /rest/api/3/search/jql`` by ``nextPageToken`` (never the removed
``/rest/api/3/search``); Data Center pages ``POST /rest/api/2/search`` by ``startAt``,
advancing by the number of issues actually received, with ``expand=changelog`` (the
history is complete there). An explicit field list, the largest page the server gives
(``maxResults`` :data:`SEARCH_PAGE`; the real page size is whatever comes back).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.jira.paging import PagingLoop, StartAtPaginator, TokenPaginator

CLOUD_SEARCH = "/rest/api/3/search/jql"
DC_SEARCH = "/rest/api/2/search"
SEARCH_PAGE = 5000
"""Asked for on every search; servers cap it (Cloud by field count, DC at 1000 by default)."""

Issue = dict[str, Any]


def search_pages(
    http: HttpClient, *, cloud: bool, jql: str, fields: list[str], size: int
) -> Iterator[list[Issue]]:
    """Every page of issues the search ``jql`` finds, in order (never an empty page on
    Data Center; Cloud hands out whatever each page holds)."""
    if cloud:
        yield from _cloud_pages(http, jql, fields, size)
    else:
        yield from _dc_pages(http, jql, fields, size)


def _cloud_pages(http: HttpClient, jql: str, fields: list[str], size: int) -> Iterator[list[Issue]]:
    pager = TokenPaginator()
    while True:
        body: dict[str, Any] = {"jql": jql, "fields": fields, "maxResults": size}
        if pager.token:
            body["nextPageToken"] = pager.token
        data = http.post_json(CLOUD_SEARCH, json=body)
        issues = issues_of(data, http.source, CLOUD_SEARCH)
        yield issues
        try:
            more = pager.advance(data.get("nextPageToken"), last=data.get("isLast") is True)
        except PagingLoop:
            raise SourceError(
                http.source,
                "search returned the same nextPageToken twice (a paging loop)",
                url=http.base_url + CLOUD_SEARCH,
            ) from None
        if not more:
            return


def _dc_pages(http: HttpClient, jql: str, fields: list[str], size: int) -> Iterator[list[Issue]]:
    pager = StartAtPaginator()
    while True:
        body = {
            "jql": jql,
            "fields": fields,
            "maxResults": size,
            "startAt": pager.start,
            "expand": ["changelog"],
        }
        data = http.post_json(DC_SEARCH, json=body)
        issues = issues_of(data, http.source, DC_SEARCH)
        try:
            pager.check(data.get("startAt"))
        except PagingLoop:
            # A proxy or plugin that ignores startAt would loop forever otherwise.
            raise SourceError(
                http.source,
                f"search answered startAt={data['startAt']} when asked for {pager.start}",
                url=http.base_url + DC_SEARCH,
                hint="proxies or plugins rewriting the search",
            ) from None
        if issues:
            yield issues
        if not pager.advance(len(issues), data.get("total")):
            return


def issues_of(data: Any, source: str, path: str) -> list[Issue]:
    """The ``issues`` list of a search answer (else the URL is not Jira's search)."""
    if not isinstance(data, dict) or not isinstance(data.get("issues"), list):
        raise SourceError(
            source,
            "search answered without an `issues` list",
            url=path,
            hint="that the URL points at Jira (not a proxy or login page)",
        )
    issues: list[Issue] = data["issues"]
    return issues
