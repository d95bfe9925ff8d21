"""Reading a Jira issue stream: search pages into mapped batches, with their history,
approvals and the records their reviews complete.

- De-duplication by issue id (the same version twice, from overlapping pages, is dropped).
- Cloud history costs one bulkfetch call per :data:`.history.CHANGELOG_BATCH` issues, so
  issues are held in an :class:`IssueBuffer` across search pages until a full batch is
  due (at most :data:`BUFFER_LIMIT` issues; memory stays flat); every other page is
  mapped at once.
- Approvals: the JSM Approvals field when the search returns it, otherwise one request
  per issue the mapper says needs them (:func:`.history.approvals`).
- Reviews (settled reading 10): the incident and change streams also search the review
  issue types. When a review issue of the read links records the read did not return
  (only the review changed: moved to Done, or reopened), those records are re-read by key
  after the search, with the review issues linking them, :data:`REVIEW_TARGETS_PER_QUERY`
  targets a query (about ceil(targets / 100) extra searches, plus their history and
  approvals as usual; none when no review changed or every target was read anyway, and
  never when the caller gave ``keys``). The watermark stays the main search's. A target
  whose link names another stream's issue type is left to that stream.
- Issue types: the JQL names the configured types as the site spells them (its
  ``/rest/api/2/issuetype`` list: "[System] Incident" for "Incident" on a JSM Cloud site,
  settled reading 20); a type the site lacks is left out, and a stream with none is not
  searched (a warning in its batch) instead of failing with HTTP 400.
- Comments (settled reading 6): a search truncates an issue's comment list; the list is
  read (``GET /issue/{key}/comment``, newest first, normally one request) only for the
  issues whose notes decide a rule (``JiraMapper.needs_comments``).
- Shared review search: when the run is planned (:meth:`IssueReader.plan`, as ``sync``
  and ``check`` do) and the incident or change stream reads in full, the review issues
  are searched once for both streams and merged into each stream's pages (its own
  window only) in ``updated`` order and at the server's page size, as the combined
  search would have returned them: each batch maps with the same reviews as before. The
  second stream searches again for reviews changed since, once half the lookback has
  passed. An incremental run keeps one search per stream: its few reviews usually share
  the stream's single page, where a search of their own would cost a request more.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ticketlint.config import JiraSource
from ticketlint.connectors.base import SourceError, StreamBatch
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.jira.history import (
    CHANGELOG_BATCH,
    approvals,
    bulk_changelogs,
    last_comments,
)
from ticketlint.connectors.jira.jql import (
    build_jql,
    clause_start,
    incremental_clause,
    key_chunks,
)
from ticketlint.connectors.jira.packed import Order, PackedReviews
from ticketlint.connectors.jira.search import SEARCH_PAGE, search_pages
from ticketlint.connectors.jira.site import Instance
from ticketlint.connectors.readahead import PAGES_AHEAD, prefetched
from ticketlint.mapping.common import MappingReport, parse_jira_time
from ticketlint.mapping.jira import type_key
from ticketlint.packing import pack

log = logging.getLogger(__name__)

BUFFER_LIMIT = 5000
"""Issues held while waiting for a full changelog batch; keeps memory flat."""
ALWAYS_FIELDS = ("updated", "issuetype", "status")
"""The connector itself reads these (watermark, stream membership), whatever is mapped."""
REVIEWED_PROCESSES = ("incident", "change")
"""Streams whose search also returns review issues, so the mapper can complete reviews."""
REVIEW_TARGETS_PER_QUERY = 100
"""Targets per ``key in (...)`` re-read of review targets (plus the review keys linking
them, so usually at most 200 keys): a short JQL in a POST body, one page each."""

Issue = dict[str, Any]
Taken = list[tuple[str, Issue, bool]]


class IssueBuffer:
    """Issues read but not yet mapped, in read order (ascending ``updated``)."""

    def __init__(self, requests_mark: int) -> None:
        self.issues: dict[str, Issue] = {}
        self.history: set[str] = set()
        self.watermark: datetime | None = None
        """Newest ``updated`` among the issues already handed out (safe to store)."""
        self.requests_mark = requests_mark

    def add(self, issue_id: str, issue: Issue, *, needs_history: bool) -> None:
        # A newer version of a buffered issue replaces it and moves to the end, where
        # its new `updated` sorts.
        self.issues.pop(issue_id, None)
        self.issues[issue_id] = issue
        if needs_history:
            self.history.add(issue_id)
        else:
            self.history.discard(issue_id)

    def take(self, history_limit: int | None) -> Taken:
        """The oldest issues, up to and including the ``history_limit``-th one needing
        history (everything when None or when fewer are pending)."""
        taken: Taken = []
        count = 0
        for issue_id in list(self.issues):
            needs = issue_id in self.history
            taken.append((issue_id, self.issues.pop(issue_id), needs))
            self.history.discard(issue_id)
            count += needs
            if history_limit is not None and count >= history_limit:
                break
        return taken


@dataclass
class SharedReviews:
    """The review issues of a planned run, searched once for every reviewed stream."""

    pending: set[str]
    """Reviewed streams not read yet; the issues are dropped after the last one."""
    query: str | None = None
    issues: dict[str, tuple[Order, bytes]] | None = None
    """Issue id -> its latest version read (its search order, packed: :mod:`.packed`);
    None until the first reviewed stream reads."""
    read_at: datetime | None = None
    """When the last search for them began (the next stream asks for changes since)."""
    cap: int | None = None
    """The server's search page size, when the review search filled a page."""


class IssueReader:
    """Reads the issue streams of one Jira source (module docstring)."""

    def __init__(
        self, http: HttpClient, cfg: JiraSource, issue_types: Mapping[str, Sequence[str]]
    ) -> None:
        self.http = http
        self.cfg = cfg
        self.name = cfg.name
        self.issue_types = issue_types
        self._reviews: SharedReviews | None = None

    def plan(self, since_by_stream: Mapping[str, datetime | None], streams: Sequence[str]) -> None:
        """The streams this run will read, each from its watermark: when both reviewed
        streams are among them and one reads in full, their review issues are searched
        once (lazily, at the first of them) instead of once per stream."""
        reviewed = [s for s in REVIEWED_PROCESSES if s in since_by_stream and s in streams]
        self._reviews = None
        if len(reviewed) < 2 or not self.issue_types.get("review"):
            return
        if all(since_by_stream[s] is not None for s in reviewed):
            return
        self._reviews = SharedReviews(pending=set(reviewed))

    def stream_types(self, stream: str, site: Sequence[str] | None = None) -> list[str]:
        """The issue types the search of ``stream`` asks for (with reviews, if reviewed),
        as the site spells them when its list (``site``) is known: "[System] Incident"
        for a configured "Incident". Types the site does not list are left out."""
        types = list(self.issue_types.get(stream, []))
        if stream in REVIEWED_PROCESSES:
            types += [t for t in self.issue_types.get("review", []) if t not in types]
        if site is None:
            return types
        by_key: dict[str, list[str]] = {}
        for name in site:
            by_key.setdefault(type_key(name), []).append(name)
        out: list[str] = []
        for name in types:
            for spelled in by_key.get(type_key(name), []):
                if spelled not in out:
                    out.append(spelled)
        return out

    def _pages(self, inst: Instance, jql: str, fields: list[str]) -> Iterator[list[Issue]]:
        size = self.cfg.page_size or SEARCH_PAGE
        return search_pages(
            self.http,
            cloud=inst.cloud,
            jql=jql,
            fields=fields,
            size=size,
            time_zone=None if inst.cloud else inst.time_zone,  # Cloud pages by token
        )

    def read(
        self,
        inst: Instance,
        stream: str,
        *,
        since: datetime | None,
        query: str | None,
        keys: Sequence[str] | None,
    ) -> Iterator[StreamBatch]:
        """Mapped batches of ``stream``, oldest first, then the review targets' re-read."""
        clause = (
            incremental_clause(since, inst.time_zone, self.cfg.lookback_minutes) if since else None
        )
        stream_types = self.stream_types(stream, inst.issue_types)
        if not stream_types:
            configured = ", ".join(self.issue_types.get(stream, []))
            log.warning(
                "%s: the site lists none of the %s issue types (%s): stream not searched",
                self.name,
                stream,
                configured,
            )
            report = MappingReport()
            report.warnings[
                f"{stream}: the site has none of the issue types {configured}; not searched"
            ] += 1
            yield StreamBatch(stream=stream, records=[], report=report, watermark=None, requests=0)
            return
        buf = IssueBuffer(requests_mark=self.http.request_count)
        own_types = {type_key(t) for t in self.issue_types.get(stream, [])}
        fields = list(dict.fromkeys([*inst.mapper.search_fields(), *ALWAYS_FIELDS]))
        review_types = self.stream_types("review", inst.issue_types)
        own_only = [t for t in stream_types if t not in review_types]
        planned = (
            self._planned_reviews(inst, stream, since, query, keys, fields, review_types)
            if own_only and review_types
            else None
        )
        if planned is not None:  # the review types come from the shared search instead
            stream_types = own_only
        try:
            jql = build_jql(
                scope=self.cfg.jql,
                issue_types=stream_types,
                since_clause=clause,
                query=query,
                keys=keys,
            )
        except ValueError as exc:
            raise SourceError(self.name, str(exc), hint="the source's `jql` and --jql") from None
        approval_fields = inst.approval_field_ids()
        seen: dict[str, str] = {}
        read_keys: set[str] = set()
        # target key -> keys of the review issues of this read that link it
        targets: dict[str, list[str]] = {}
        review_targets = (
            getattr(inst.mapper, "review_targets", None)
            if keys is None and stream in REVIEWED_PROCESSES
            else None
        )
        # The next search page is requested while this one's histories are read and mapped.
        pages: Iterator[list[Issue]] = prefetched(self._pages(inst, jql, fields), PAGES_AHEAD)
        if planned is not None:
            pages = merged_pages(pages, *planned)
        for page in pages:
            for issue in page:
                issue_id = str(issue.get("id") or issue.get("key"))
                updated = (issue.get("fields") or {}).get("updated") or ""
                if seen.get(issue_id) == updated:
                    continue  # the same version twice (page overlap): drop it
                seen[issue_id] = updated
                if isinstance(issue.get("key"), str):
                    read_keys.add(issue["key"])
                    for target in (
                        own_targets(issue, review_targets(issue), own_types)
                        if review_targets is not None
                        else ()
                    ):
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

    def _planned_reviews(
        self,
        inst: Instance,
        stream: str,
        since: datetime | None,
        query: str | None,
        keys: Sequence[str] | None,
        fields: list[str],
        review_types: list[str],
    ) -> tuple[PackedReviews, int | None] | None:
        """This stream's review issues from the run's shared search, oldest first, as its
        own search for the review types would have returned them, and the server's page
        size when known; None when the read is not the planned one (then the stream
        searches the review types itself)."""
        shared = self._reviews
        if shared is None or keys is not None or stream not in shared.pending:
            return None
        if shared.issues is not None and shared.query != query:
            return None
        lookback = self.cfg.lookback_minutes
        now = datetime.now(timezone.utc)
        search = True
        if shared.issues is None:
            shared.query, shared.issues, start = query, {}, None  # every review
        else:
            # Reviews changed since the last search. Within half the lookback of it they
            # need no search: this stream's next read starts before that search began.
            start = shared.read_at
            search = start is None or now - start >= timedelta(minutes=lookback) / 2
        try:
            if search:
                shared.read_at = now
                cap = self._search_reviews(inst, shared.issues, start, query, fields, review_types)
                shared.cap = shared.cap or cap
        except BaseException:
            self._reviews = None  # half read: every later stream searches its reviews itself
            raise
        shared.pending.discard(stream)
        entries = list(shared.issues.values())
        if not shared.pending:
            self._reviews = None  # the last reviewed stream: nothing else needs them
        if since is not None:
            cutoff = clause_start(since, inst.time_zone, lookback)
            entries = [e for e in entries if e[0][0] >= cutoff]
        entries.sort(key=lambda entry: entry[0])
        return PackedReviews(entries), shared.cap

    def _search_reviews(
        self,
        inst: Instance,
        held: dict[str, tuple[Order, bytes]],
        start: datetime | None,
        query: str | None,
        fields: list[str],
        review_types: list[str],
    ) -> int | None:
        """Search the review types from ``start`` (None: all); keep each issue's latest.
        Returns the server's page size when a full page was followed by another."""
        lookback = self.cfg.lookback_minutes
        clause = incremental_clause(start, inst.time_zone, lookback) if start else None
        jql = build_jql(
            scope=self.cfg.jql,
            issue_types=review_types,
            since_clause=clause,
            query=query,
            keys=None,
        )
        sizes: list[int] = []
        for page in self._pages(inst, jql, fields):
            sizes.append(len(page))
            for issue in page:
                issue_id = str(issue.get("id") or issue.get("key"))
                known = held.get(issue_id)
                order = updated_order(issue)
                if known is None or known[0] <= order:
                    held.pop(issue_id, None)
                    held[issue_id] = (order, pack(issue))
        return sizes[0] if len(sizes) > 1 and sizes[0] else None

    def _read_review_targets(
        self,
        inst: Instance,
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
        types = self.stream_types(stream, inst.issue_types)
        for chunk in key_chunks(targets, REVIEW_TARGETS_PER_QUERY):
            jql = build_jql(
                scope=self.cfg.jql, issue_types=types, since_clause=None, query=query, keys=chunk
            )
            buf = IssueBuffer(requests_mark=self.http.request_count)
            buf.watermark = watermark
            for page in self._pages(inst, jql, fields):
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
        inst: Instance,
        stream: str,
        buf: IssueBuffer,
        taken: Taken,
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
                changelogs.update(bulk_changelogs(self.http, ids[start : start + CHANGELOG_BATCH]))
        # Data Center: the search's expand=changelog is complete there; the mapper reads it
        # (and checks `total` against the histories it holds before trusting it).
        found: dict[str, list[dict[str, Any]]] = {}
        for issue in issues:
            present = approval_fields & set((issue.get("fields") or {}).keys())
            if not present and inst.mapper.needs_approvals(issue):
                found[issue["key"]] = approvals(self.http, issue["key"])
        comments: dict[str, list[dict[str, Any]]] = {}
        needs_comments = getattr(inst.mapper, "needs_comments", None)
        if needs_comments is not None:
            for issue in issues:
                if isinstance(issue.get("key"), str) and needs_comments(issue):
                    comments[issue["key"]] = last_comments(self.http, inst.cloud, issue["key"])
        if comments:
            records, report = inst.mapper.map_issues(
                issues, changelogs=changelogs, approvals=found, comments=comments
            )
        else:
            records, report = inst.mapper.map_issues(issues, changelogs=changelogs, approvals=found)
        for issue in issues if advance else ():
            buf.watermark = later(buf.watermark, (issue.get("fields") or {}).get("updated") or "")
        used = self.http.request_count - buf.requests_mark
        buf.requests_mark = self.http.request_count
        return StreamBatch(
            stream=stream,
            records=list(records),
            report=report,
            watermark=buf.watermark,
            requests=used,
        )


_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def updated_order(issue: Issue) -> tuple[datetime, str, int]:
    """The search's ``ORDER BY updated ASC, key ASC`` for one issue (project, then number)."""
    try:
        updated = parse_jira_time((issue.get("fields") or {}).get("updated")) or _NEVER
    except ValueError:
        updated = _NEVER
    key = issue.get("key")
    project, _, number = key.rpartition("-") if isinstance(key, str) else ("", "", "")
    return updated, project, int(number) if number.isdigit() else 0


def own_targets(review: Issue, targets: list[str], own_types: set[str]) -> list[str]:
    """The ``targets`` of a review issue that this stream can return: those whose link
    names one of the stream's issue types, or no type. A change linked by a review is the
    change stream's to re-read; searching for it from the incident stream finds nothing."""
    named: dict[str, str] = {}
    links = (review.get("fields") or {}).get("issuelinks")
    for link in links if isinstance(links, list) else ():
        linked = (
            (link.get("outwardIssue") or link.get("inwardIssue"))
            if isinstance(link, dict)
            else None
        )
        if not isinstance(linked, dict) or not isinstance(linked.get("key"), str):
            continue
        itype = (linked.get("fields") or {}).get("issuetype")
        name = itype.get("name") if isinstance(itype, dict) else None
        if isinstance(name, str) and name.strip():
            named.setdefault(linked["key"], type_key(name))
    return [t for t in targets if t not in named or named[t] in own_types]


def merged_pages(
    pages: Iterator[list[Issue]], reviews: Sequence[Issue], cap: int | None
) -> Iterator[list[Issue]]:
    """The pages one search for the stream's types and the review types would have given:
    the stream's issues with ``reviews`` (sorted) slotted in by ``updated`` then key, cut
    into pages of the server's page size. That size is ``cap`` (learnt from the review
    search) or the first page's length when more pages follow it; when neither search
    filled a page, one page. Page edges matter: each batch is mapped with the reviews in
    it, so the reviews' places must be those of the combined search."""
    first = next(pages, None)
    second = next(pages, None) if first is not None else None
    if cap is None and second is not None and first:
        cap = len(first)
    ahead = [page for page in (first, second) if page is not None]
    # Packed reviews know their order without being unpacked; each is unpacked once.
    orders = (
        reviews.orders
        if isinstance(reviews, PackedReviews)
        else [updated_order(review) for review in reviews]
    )

    def issues() -> Iterator[Issue]:
        at = 0
        for page in itertools.chain(ahead, pages):
            for issue in page:
                order = updated_order(issue)
                while at < len(reviews) and orders[at] <= order:
                    yield reviews[at]
                    at += 1
                yield issue
        for rest in range(at, len(reviews)):
            yield reviews[rest]

    merged: list[Issue] = []
    for issue in issues():
        merged.append(issue)
        if cap and len(merged) >= cap:
            yield merged
            merged = []
    if merged or (first is not None and not cap):
        yield merged


def later(current: datetime | None, value: str) -> datetime | None:
    """The later of ``current`` and the Jira time ``value`` (unreadable: ``current``)."""
    try:
        parsed = parse_jira_time(value)
    except ValueError:
        return current
    if parsed is None:
        return current
    return parsed if current is None or parsed > current else current
