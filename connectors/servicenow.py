"""ServiceNow Table API connector: keyset-paged reads of incident, change_request, problem,
sc_req_item and cmdb_ci, with approvals and CI links read as bulk streams beside them.

Paging. Never offset paging over a changing table: a row updated mid-read moves to the end
of an ``ORDERBYsys_updated_on`` result and shifts every later offset, so one row is skipped
and another read twice. We page on the key ``(sys_updated_on, sys_id)`` instead::

    first:  <scope>^sys_updated_on>=<since - lookback>^ORDERBYsys_updated_on^ORDERBYsys_id
    next:   <scope>^sys_updated_on>T^NQ<scope>^sys_updated_on=T^sys_id>ID^ORDERBY...

``^NQ`` starts a new OR'ed query, so the scope is repeated in both parts (a scope may not
itself hold ``^NQ`` or ``ORDERBY``: it is rejected with a clear error). We stop on an
*empty* page, never a short one: ACLs filter rows after paging, so a page may be short or
hold ``{}`` rows. ``{}`` rows are counted (``MappingReport.rows`` / ``skipped_empty``) and
skipped.

``{}`` rows have no key, so the keyset advances from the last row that has
``sys_updated_on`` and ``sys_id``. Decision for a page with *no* such row (every row
inaccessible): we cannot advance the key, and ending the read there could drop readable
rows behind it, so the next request repeats the same keyset query with
``sysparm_offset`` = rows seen since that key. The offset only ever counts rows after a
fixed key, so the skip risk is confined to those inaccessible rows changing between two
requests; each such page is counted in ``report.warnings``. The offset grows by the page
length each time, so this ends (at the first empty page). A key that does not move
forward (a server ignoring the query) raises :class:`SourceError` instead of looping.

Related rows: one bulk stream per related table, joined in memory. ``sysapproval_approver``
(change, service_request) and ``task_ci`` (incident, change, problem) are read *before*
the parent stream that needs them, as one keyset-paged stream (``ORDERBYsys_id``, the
page size of the parents) filtered by dot-walked conditions on the parent::

    sysapproval.sys_class_nameINSTANCEOFchange_request^sysapproval.sys_updated_on>=S[^sysapproval.<scope>]
    ^NQsysapproval.sys_class_nameINSTANCEOFsc_req_item^sysapproval.sys_updated_on>=S'...^ORDERBYsys_id

Encoded queries dot-walk reference fields (``task.sys_class_name=incident`` on
``task_sla`` / ``task_ci`` is the usual example), ``INSTANCEOF`` keeps records of tables
that extend the configured one, and ``sysparm_fields`` dot-walks too: each related row
also brings ``<ref>.sys_updated_on``, the parent's update time *as the related read saw
it*. One stream serves every process that uses the table (``^NQ`` per class, each with
its own window and its scope dot-walked by :func:`walk_query`), so the approvals of
changes and requests cost ``ceil(A / page)`` pages, not one partial page per process,
and never one request per parent page. Windows: a process's own ``since - lookback``;
the windows of processes not read yet come from :meth:`ServiceNowConnector.plan` (the
runner knows every stream's watermark) or else from the current one minus
:data:`RELATED_SLACK`; a later stream whose window the prefetch does not cover reads its
own. The index is dropped once every process that uses it has been read.

Memory: related rows are kept as tuples of the requested columns with repeated strings
(parent ids, approvers, states, names) shared: about 0.2 KB per approval, 20 MB per
100k approvals (measured with tracemalloc in ``tests/connectors/test_servicenow_connector.py``),
held only while the processes that need them are read.

Races (a parent or its related rows changing between the two reads). A parent row is
joined with the prefetched rows only when it is certainly unchanged since they were read:
every prefetched row of it recorded the same ``<ref>.sys_updated_on`` the parent stream
now shows, or it has no prefetched rows and its update time is before ``R`` = the
server's ``Date`` at the start of the related read minus the lookback (commit delays and
clock skew, as for watermarks). Any other parent ("late": changed during or after the
related read, or a row the window did not hold then) is held back and has its related
rows read by id (``<ref>IN...``, :data:`RELATED_CHUNK` ids a request): once per related
table for the late parents of every stream, after the last stream that uses related rows
(:meth:`ServiceNowConnector.plan` says which will be read; without it, after each stream).
They are few, since keyset order puts recently changed parents at the end, and their
records come out in a batch of their own (``watermark`` None: their stream's batches
already counted their update times; the runner commits watermarks only with the source's
findings, after every batch is stored). A related row added *without* its parent
changing is seen when the parent next changes (as with per-page reads). ``{}`` related
rows are counted as warnings; related rows of parents never read (deleted, out of scope)
are dropped with the index.

Fallback. If the instance refuses the dot-walked query (HTTP 400 / 403: query ACLs on
``task`` fields, a proxy), the connector switches to the ``...IN`` id lists per page of
parents for the rest of its life, and says so (``related_path``, ``doctor``). An instance
with ``glide.invalid_query.returns_no_rows=true`` that cannot evaluate the dot-walk answers
with *no rows* instead: an empty bulk answer is believed only once the server has shown it
resolves dot-walks (a row with ``<ref>.sys_updated_on``, or one probe row matching
``<ref>.sys_idISNOTEMPTY``) or the table is empty (one plain probe row); else the id lists. ``--key``
and ``--query`` reads, and processes whose scope cannot be dot-walked, always use ids.

Ending a stream. Counting a large table on every page is costly, so pages ask
``sysparm_no_count=true`` except the first and the one expected to be the last (from the
previous count); X-Total-Count is counted before ACLs, so a counted page whose
``offset + limit`` reaches the count is the last and the closing empty request is saved.
Without the header, a counted page whose ``Link`` header (first / prev / next / last, also
computed before ACLs) has no ``next`` is the last one; with neither (a proxy stripping them),
the read ends on the empty page. Uncounted pages' links are never trusted.

pysnow. Basic auth takes its session from ``pysnow.Client(host=..., use_ssl=...)`` (the
session carries HTTP basic auth and JSON headers). We do *not* use ``pysnow.OAuthClient``:
it is built on requests-oauthlib, which refuses plain ``http://`` URLs (oauthlib's
InsecureTransportError, only lifted by a process-wide environment variable) and fetches
and refreshes tokens outside our retry layer, so ``/oauth_token.do`` is called here through
:class:`ticketlint.connectors.http.HttpClient` like every other request. pysnow's ``Resource`` paging
is offset-based, so paging is ours too.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pysnow
import requests

from ticketlint.config import BasicAuth, ServiceNowSource
from ticketlint.connectors.base import DoctorCheck, DoctorReport, SourceError, StreamBatch
from ticketlint.connectors.http import HttpClient
from ticketlint.mapping.common import MappingReport, parse_servicenow_time
from ticketlint.mapping.servicenow import (
    APPROVAL_FIELDS,
    APPROVAL_TABLE,
    DEFAULT_TABLES,
    TASK_CI_FIELDS,
    TASK_CI_TABLE,
    ServiceNowMapper,
)

log = logging.getLogger(__name__)

TABLE_API = "/api/now/table/"
TOKEN_PATH = "/oauth_token.do"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DEFAULT_PAGE_SIZE = 1000
RELATED_CHUNK = 300
"""Default ids per ``...IN`` query. 300 sys_ids make a ~10 KB URL, under Tomcat's header
limit that long ServiceNow filters are known to hit (~16 KB), and the instance's Link
header, which repeats that URL up to four times, stays under the 64 KB line limit of
HTTP clients (Python's http.client among them). More ids per query would save requests
but fail on real instances."""

RELATED_SLACK = timedelta(hours=2)
"""Without :meth:`ServiceNowConnector.plan`, the related prefetch reaches this much further
back for the processes not read yet than for the current one: their watermarks are
unknown, and on a busy instance they lie close together."""
BULK_REFUSED = (400, 403)

ORDER_BY_KEY = "ORDERBYsys_updated_on^ORDERBYsys_id"
ORDER_BY_ID = "ORDERBYsys_id"
STREAM_ORDER = ("ci", "incident", "change", "problem", "service_request", "release")
"""ci first: the CI names it collects resolve references of the task streams."""
APPROVAL_PROCESSES = frozenset({"change", "service_request"})
TASK_CI_PROCESSES = frozenset({"change", "incident", "problem"})
KEY_FIELD = {"ci": "name"}
STATE_FIELD = {"ci": "install_status"}
TOKEN_MARGIN_SECONDS = 60.0


# --------------------------------------------------------------------------- queries


def format_time(value: datetime) -> str:
    """An instant as the Table API's UTC ``yyyy-MM-dd HH:mm:ss`` (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime(TIME_FORMAT)


def join_query(*parts: str | None) -> str:
    """AND the non-empty parts of an encoded query."""
    return "^".join(p.strip("^") for p in parts if p and p.strip("^"))


def check_scope(text: str | None, what: str) -> str:
    """A scope or extra query is repeated in each ``^NQ`` part: it may not hold its own
    ``^NQ`` (it would change precedence) or ``ORDERBY`` (paging owns the order)."""
    if not text:
        return ""
    upper = text.upper()
    if "^NQ" in upper or "ORDERBY" in upper:
        raise ValueError(f"{what} {text!r} may not contain ^NQ or ORDERBY (paging adds its own)")
    return text.strip().strip("^")


def first_page_query(base: str, since_clause: str = "") -> str:
    return join_query(base, since_clause, ORDER_BY_KEY)


def next_page_query(base: str, last_updated: str, last_id: str) -> str:
    """Rows after ``(last_updated, last_id)``: later update time, or the same time and a
    larger sys_id. The scope is repeated in each OR'ed part."""
    after = join_query(base, f"sys_updated_on>{last_updated}")
    same = join_query(base, f"sys_updated_on={last_updated}", f"sys_id>{last_id}")
    return f"{after}^NQ{same}^{ORDER_BY_KEY}"


_CONDITION = re.compile(
    r"^[a-z0-9_][a-z0-9_.]*(?:ISNOTEMPTY|ISEMPTY|INSTANCEOF|NOTIN|IN|STARTSWITH"
    r"|ENDSWITH|NOT LIKE|LIKE|!=|>=|<=|=|>|<|BETWEEN|ON|NOTON|DATEPART|RELATIVE\w*|"
    r"SAMEAS|NSAMEAS|ANYTHING|EMPTYSTRING|VALCHANGES|CHANGESFROM|CHANGESTO)"
)


def walk_query(text: str, ref: str) -> str | None:
    """``text`` (a scope on the parent table) as conditions on a related table that points
    at the parent through ``ref``: every field gets the ``ref.`` prefix (``active=true^ORpriority=1``
    -> ``task.active=true^ORtask.priority=1``). None when a term is not a plain condition
    (``RLQUERY``, ``^EQ`` sub-queries, an escaped ``^^``): the caller then reads by id."""
    if not text:
        return ""
    if "^^" in text:
        return None
    out = []
    for token in text.split("^"):
        if not token or token == "EQ":
            continue
        head = ""
        if token.startswith("OR") and _CONDITION.match(token[2:]):
            head, token = "OR", token[2:]
        if not _CONDITION.match(token):
            return None
        out.append(f"{head}{ref}.{token}")
    return "^".join(out)


def keys_clause(process: str, keys: Sequence[str] | None) -> str:
    if not keys:
        return ""
    return f"{KEY_FIELD.get(process, 'number')}IN{','.join(k.strip() for k in keys)}"


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


# --------------------------------------------------------------------------- keyset paging


@dataclass(frozen=True)
class _Keyset:
    """How one kind of read orders and resumes: the key fields and the two query forms."""

    fields: tuple[str, ...]
    first: Callable[[str], str]
    after: Callable[[str, tuple[str, ...]], str]


def _related_first(base: str) -> str:
    return join_query(base, ORDER_BY_ID)


def _related_after(base: str, key: tuple[str, ...]) -> str:
    return join_query(base, f"sys_id>{key[0]}", ORDER_BY_ID)


BY_ID = _Keyset(("sys_id",), _related_first, _related_after)


@dataclass
class Page:
    rows: list[dict[str, Any]]
    """Readable rows of this page not handed out before."""
    inaccessible: int = 0
    """``{}`` rows first seen on this page."""
    offset_fallback: bool = False


@dataclass
class _PagerState:
    key: tuple[str, ...] | None = None
    offset: int = 0
    seen_after_key: int = 0
    """Positions after ``key`` already handled (their ``{}`` rows counted)."""
    ids_after_key: set[str] = field(default_factory=set)
    """Readable rows after ``key`` that could not move it (already handed out)."""


def _row_key(row: dict[str, Any], keyset: _Keyset) -> tuple[str, ...] | None:
    values = tuple(row.get(f) for f in keyset.fields)
    if all(isinstance(v, str) and v for v in values):
        return values  # type: ignore[return-value]
    return None


@dataclass(frozen=True)
class _RelatedSpec:
    """A related table: its columns, the reference to the parent task, who uses it."""

    table: str
    fields: tuple[str, ...]
    ref: str
    processes: frozenset[str]

    @property
    def parent_time(self) -> str:
        return f"{self.ref}.sys_updated_on"


RELATED = (
    _RelatedSpec(APPROVAL_TABLE, tuple(APPROVAL_FIELDS), "sysapproval", APPROVAL_PROCESSES),
    _RelatedSpec(TASK_CI_TABLE, tuple(TASK_CI_FIELDS), "task", TASK_CI_PROCESSES),
)
_SPECS = {spec.table: spec for spec in RELATED}
_SILENT_EMPTY = "matched no row although the table has rows"
_ABSENT = object()
_MIXED = "\x00mixed"


def _ref_value(row: dict[str, Any], ref: str) -> str:
    """The parent sys_id a related row points at (a reference link object, if sent)."""
    value = row.get(ref)
    if isinstance(value, dict):
        value = value.get("value")
    return value if isinstance(value, str) else ""


def _by_parent(rows: Sequence[dict[str, Any]], ref: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(_ref_value(row, ref), []).append(row)
    return out


@dataclass
class _Late:
    """A parent row held back because its prefetched related rows may be out of date."""

    row: dict[str, Any]
    known: dict[str, list[dict[str, Any]]]
    """Related rows that are current (tables where the parent was fresh, or read by id)."""
    stale: tuple[str, ...]
    """Related tables to read by id before the parent can be mapped."""


class _RelatedIndex:
    """Prefetched related rows of one table, keyed by parent sys_id (module docstring).

    Rows are tuples of the requested columns (``_ABSENT`` where the row lacks one, so
    the mapper still tells absent from empty); repeated strings are shared."""

    def __init__(
        self, spec: _RelatedSpec, windows: dict[str, datetime | None], ready: datetime
    ) -> None:
        self.spec = spec
        self.columns = tuple(f for f in spec.fields if f != spec.ref)
        self.windows = windows
        """process -> the start of the window read (None: all time)."""
        self.ready = ready
        """R: parents updated before this and without related rows have none."""
        self.by_parent: dict[str, list[tuple[Any, ...]]] = {}
        self.parent_seen: dict[str, str] = {}
        """parent sys_id -> its sys_updated_on as the related rows showed it (_MIXED if they
        disagree, "" if the server did not return the dot-walked column)."""
        self.rows = 0
        self._strings: dict[str, str] = {}

    def covers(self, process: str, start: datetime | None) -> bool:
        if process not in self.windows:
            return False
        have = self.windows[process]
        return have is None or (start is not None and have <= start)

    def add(self, row: dict[str, Any]) -> None:
        parent = _ref_value(row, self.spec.ref)
        if not parent:
            return
        share = self._strings.setdefault
        parent = share(parent, parent)
        values = tuple(
            share(v, v) if isinstance(v, str) else v
            for v in (row.get(c, _ABSENT) for c in self.columns)
        )
        self.by_parent.setdefault(parent, []).append(values)
        self.rows += 1
        seen = row.get(self.spec.parent_time)
        seen = share(seen, seen) if isinstance(seen, str) else ""
        before = self.parent_seen.setdefault(parent, seen)
        if before != seen:
            self.parent_seen[parent] = _MIXED

    def fresh(self, row: dict[str, Any]) -> bool:
        """True when the prefetched rows of this parent row are certainly current."""
        updated = row.get("sys_updated_on")
        seen = self.parent_seen.get(row["sys_id"])
        if seen == _MIXED:
            return False  # the parent changed while its related rows were being read
        if seen:
            return seen == updated
        try:
            when = parse_servicenow_time(updated)
        except ValueError:
            return False
        return isinstance(when, datetime) and when < self.ready

    def rows_for(self, parent: str) -> list[dict[str, Any]]:
        ref = self.spec.ref
        return [
            {
                ref: parent,
                **{c: v for c, v in zip(self.columns, values, strict=False) if v is not _ABSENT},
            }
            for values in self.by_parent.get(parent, ())
        ]


# --------------------------------------------------------------------------- OAuth


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self) -> None:
        self.token = ""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class _OAuthTokens:
    """Password grant against ``/oauth_token.do``, refreshed before expiry and on a 401."""

    def __init__(
        self,
        http: HttpClient,
        auth: _BearerAuth,
        *,
        client_id: str,
        client_secret: str,
        user: str,
        password: str,
        clock: Callable[[], float],
    ) -> None:
        self.http, self.auth, self.clock = http, auth, clock
        self._client = {"client_id": client_id, "client_secret": client_secret}
        self._user, self._password = user, password
        self.refresh_token = ""
        self.expires_at = 0.0
        self.grants: list[str] = []  # grant types used, for tests and doctor

    def ensure(self) -> None:
        if not self.auth.token:
            self._grant(
                {"grant_type": "password", "username": self._user, "password": self._password}
            )
        elif self.clock() >= self.expires_at:
            self.refresh()

    def refresh(self) -> None:
        if self.refresh_token:
            try:
                self._grant({"grant_type": "refresh_token", "refresh_token": self.refresh_token})
                return
            except SourceError as exc:
                if exc.status not in (400, 401):
                    raise
                log.info(
                    "%s: refresh token refused (HTTP %s); requesting a new token",
                    self.http.source,
                    exc.status,
                )
        self._grant({"grant_type": "password", "username": self._user, "password": self._password})

    def _grant(self, form: dict[str, str]) -> None:
        self.grants.append(form["grant_type"])
        try:
            body = self.http.request(
                "POST",
                TOKEN_PATH,
                data={**form, **self._client},
                headers={"Accept": "application/json"},
            ).json()
        except SourceError as exc:
            if exc.status is None or exc.status >= 500:
                raise
            raise SourceError(
                self.http.source,
                f"the OAuth {form['grant_type']} grant was refused",
                url=exc.url,
                status=exc.status,
                detail=exc.detail,
                hint="oauth.client_id / client_secret, the user and password, and that the "
                "OAuth application (System OAuth > Application Registry) is active",
            ) from exc
        except ValueError as exc:
            raise SourceError(
                self.http.source,
                "the OAuth token endpoint did not answer JSON",
                url=self.http.base_url + TOKEN_PATH,
            ) from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise SourceError(
                self.http.source,
                "the OAuth token endpoint gave no access_token",
                url=self.http.base_url + TOKEN_PATH,
                hint="the OAuth application (client_id) and its grant types",
            )
        self.auth.token = token
        self.refresh_token = body.get("refresh_token") or self.refresh_token
        expires_in = float(body.get("expires_in") or 1800)
        self.expires_at = self.clock() + expires_in - min(TOKEN_MARGIN_SECONDS, expires_in / 2)


# --------------------------------------------------------------------------- connector

_TABLE_HINTS = {
    400: "the encoded query (sources[].query, --query) and the field names in sources[].fields",
    401: "the user name and password (or OAuth client) of this source",
    403: "the API user's roles and read ACLs on table {table} (e.g. itil, "
    "snc_platform_rest_api_access) and any IP access control",
    404: "the table name {table} (sources[].tables) and the instance URL and its base path",
}


class ServiceNowConnector:
    """Reads the ServiceNow streams of one configured source (see the module docstring)."""

    def __init__(
        self,
        source_cfg: ServiceNowSource,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        bulk_related: bool = True,
    ) -> None:
        self.cfg = source_cfg
        self.name = source_cfg.name
        self.base_url = source_cfg.url.rstrip("/")
        self.page_size = source_cfg.page_size or DEFAULT_PAGE_SIZE
        self.related_chunk = source_cfg.related_chunk or min(self.page_size, RELATED_CHUNK)
        self.mapper = ServiceNowMapper(source_cfg.mapping_options())
        self.streams: tuple[str, ...] = tuple(p for p in STREAM_ORDER if p in DEFAULT_TABLES)
        self.ci_names: dict[str, str] = {}
        """sys_id -> name of every CI read by this connector (resolves task references)."""
        self.server_time: datetime | None = None
        """The instance's clock (``Date`` of the latest response)."""
        self.related_path = "bulk" if bulk_related else "in-list (configured)"
        """How related rows are read: "bulk" (dot-walked streams) or "in-list (why)"."""
        self._bulk_ok = bulk_related
        self._dotwalk_proven = False
        """The server has answered a dot-walked column or condition (see _dotwalk_answers)."""
        self._planned: dict[str, datetime | None] | None = None
        self._related: dict[str, _RelatedIndex] = {}
        self._late: dict[str, list[_Late]] = {}
        """process -> parents held until their related rows are read by id (_read_late)."""
        self._read_done: set[str] = set()
        self._sleep = sleep
        self._oauth: _OAuthTokens | None = None
        self._http = self._client(self._session(clock))

    # -- setup
    def _client(self, session: requests.Session) -> HttpClient:
        c = self.cfg
        return HttpClient(
            self.name,
            self.base_url,
            session,
            timeout=c.timeout,
            max_attempts=c.max_attempts,
            retry_after_max=c.retry_after_max,
            verify=c.verify,
            sleep=self._sleep,
            error_detail=servicenow_error_detail,
        )

    def _session(self, clock: Callable[[], float]) -> requests.Session:
        auth = self.cfg.auth
        if isinstance(auth, BasicAuth):
            # pysnow builds the basic-auth session (and its JSON headers); the base URL,
            # including any path prefix, stays ours (pysnow only knows host + use_ssl).
            parts = urlsplit(self.base_url)
            client = pysnow.Client(
                host=parts.netloc,
                user=auth.user,
                password=auth.password.get_secret_value(),
                use_ssl=parts.scheme == "https",
            )
            session: requests.Session = client.session
            session.headers["User-Agent"] = "ticketlint"
            return session
        oauth = auth.oauth
        bearer = _BearerAuth()
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": "ticketlint"})
        session.auth = bearer
        token_session = requests.Session()  # no bearer header on the token endpoint
        token_session.headers["User-Agent"] = "ticketlint"
        self._oauth = _OAuthTokens(
            self._client(token_session),
            bearer,
            client_id=oauth.client_id,
            client_secret=oauth.client_secret.get_secret_value(),
            user=oauth.user,
            password=oauth.password.get_secret_value(),
            clock=clock,
        )
        return session

    @property
    def request_count(self) -> int:
        """HTTP attempts sent so far (retries and token requests included)."""
        return self._http.request_count + (self._oauth.http.request_count if self._oauth else 0)

    def close(self) -> None:
        self._http.close()
        if self._oauth is not None:
            self._oauth.http.close()

    # -- requests
    def _get_result(self, table: str, params: dict[str, Any]) -> list[Any]:
        """One Table API page: its ``result`` list."""
        return self._get_page(table, params)[0]

    def _get_page(self, table: str, params: dict[str, Any]) -> tuple[list[Any], int | None]:
        """One Table API page: its ``result`` list and X-Total-Count (when the request
        asked for a count). With OAuth, a 401 refreshes the token once; every other
        failure is a :class:`SourceError` (never an empty list)."""
        path = TABLE_API + table
        body: Any = None
        response: Any = None
        for attempt in (1, 2):
            if self._oauth is not None:
                self._oauth.ensure()
            try:
                response, body = self._http.get_json_response(path, params)
                break
            except SourceError as exc:
                if exc.status == 401 and self._oauth is not None and attempt == 1:
                    log.info(
                        "%s: HTTP 401 on %s; refreshing the OAuth token once", self.name, table
                    )
                    self._oauth.refresh()
                    continue
                raise self._table_error(exc, table) from exc
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, list):
            raise SourceError(
                self.name,
                f"table {table}: the response holds no 'result' list",
                url=f"{self.base_url}{path}",
                detail=str(body)[:200],
            )
        headers = response.headers if response is not None else {}
        self.server_time = _http_date(headers.get("Date")) or self.server_time
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

    def _table_error(self, exc: SourceError, table: str) -> SourceError:
        hint = _TABLE_HINTS.get(exc.status or 0)
        if hint is None:
            return exc
        return SourceError(
            self.name,
            f"reading table {table} was refused",
            url=exc.url,
            status=exc.status,
            detail=exc.detail,
            hint=hint.format(table=table),
        )

    @staticmethod
    def _params(fields: Sequence[str], query: str, limit: int, offset: int = 0) -> dict[str, str]:
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

    def pages(
        self,
        table: str,
        fields: Sequence[str],
        base: str,
        *,
        since_clause: str = "",
        keyset: _Keyset | None = None,
        counted: bool = False,
    ) -> Iterator[Page]:
        """Keyset pages of ``table`` (rows matching ``base``) until the last one.

        X-Total-Count is computed before ACLs filter rows, so a counted page whose
        ``offset + limit`` reaches the count is the last one: that saves the closing
        empty request. ``counted`` (small ``...IN`` reads) counts every page; other reads
        count the first page and then only the page the last count says may be the last
        (``sysparm_no_count=true`` in between: counting a large table is costly). A read
        whose responses carry no count ends on the first empty page."""
        ks = keyset or _Keyset(
            ("sys_updated_on", "sys_id"),
            lambda b: first_page_query(b, since_clause),
            lambda b, k: next_page_query(b, k[0], k[1]),
        )
        st = _PagerState()
        expected: int | None = None  # rows left after this position, from the last count
        while True:
            query = ks.first(base) if st.key is None else ks.after(base, st.key)
            asked_offset = st.offset
            params = self._params(fields, query, self.page_size, asked_offset)
            if counted or expected is None or expected <= self.page_size:
                params["sysparm_no_count"] = "false"
            rows, total = self._get_page(table, params)
            if not rows:
                return
            page = Page(rows=[])
            last_keyed: int | None = None
            for i, row in enumerate(rows):
                if not isinstance(row, dict) or not row.get("sys_id"):
                    if st.offset + i >= st.seen_after_key:  # not counted on an earlier page
                        page.inaccessible += 1
                    continue
                if _row_key(row, ks) is not None:
                    last_keyed = i
                if row["sys_id"] not in st.ids_after_key:
                    page.rows.append(row)
            if last_keyed is not None:
                new_key = _row_key(rows[last_keyed], ks)
                assert new_key is not None
                if st.key is not None and new_key <= st.key:
                    raise SourceError(
                        self.name,
                        f"table {table}: paging did not advance past {st.key}",
                        url=f"{self.base_url}{TABLE_API}{table}",
                        detail=f"sysparm_query={query}",
                        hint="whether the instance ignores part of the encoded query "
                        "(glide.invalid_query.returns_no_rows)",
                    )
                tail = rows[last_keyed + 1 :]
                st = _PagerState(
                    key=new_key,
                    seen_after_key=len(tail),
                    ids_after_key={
                        r["sys_id"] for r in tail if isinstance(r, dict) and r.get("sys_id")
                    },
                )
            else:
                # Nothing on this page can carry the key forward: page on by offset after
                # the same key (see the module docstring for why and what it risks).
                st.offset += len(rows)
                st.seen_after_key = max(st.seen_after_key, st.offset)
                st.ids_after_key |= {r["sys_id"] for r in page.rows}
                page.offset_fallback = True
            yield page
            if total is not None:
                if asked_offset + self.page_size >= total:
                    return  # every row that matched this query (ACL-hidden ones too) was on this page
                expected = total - asked_offset - len(rows)
            elif expected is not None:
                expected -= len(rows)

    # -- streams
    def table(self, process: str) -> str:
        return self.mapper.table(process)

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        """Mapped batches, one per page, of ``stream`` changed since ``since`` minus the
        lookback (``query`` is ANDed with the configured scope; ``keys`` picks records)."""
        if stream not in self.streams:
            raise SourceError(
                self.name, f"unknown stream {stream!r} (streams: {', '.join(self.streams)})"
            )
        process = stream
        table = self.table(process)
        fields = self.mapper.fields_for(process)
        try:
            base = join_query(
                check_scope(self.cfg.query.get(process), f"sources[].query.{process}"),
                check_scope(query, "query"),
                keys_clause(process, keys),
            )
        except ValueError as exc:
            raise SourceError(self.name, str(exc)) from exc
        since_clause = ""
        start: datetime | None = None
        if since is not None:
            start = since - timedelta(minutes=self.cfg.lookback_minutes)
            since_clause = f"sys_updated_on>={format_time(start)}"
        watermark: datetime | None = None
        checked: set[str] = set()  # tables whose first rows were checked against the fields
        before = self.request_count
        pending = MappingReport()  # warnings of the related prefetch, handed out with page 1
        indexes: dict[str, _RelatedIndex | None] = {}
        for spec in RELATED:
            if process in spec.processes:
                bulk = (
                    self._bulk_ok
                    and not query
                    and not keys
                    and self._walked_scope(spec, process) is not None
                )
                indexes[spec.table] = (
                    self._prefetch(spec, process, start, pending) if bulk else None
                )
        try:
            for page in self.pages(table, fields, base, since_clause=since_clause):
                report, pending = pending, MappingReport()
                if page.rows and table not in checked:
                    checked.add(table)
                    self._check_fields(report, table, page.rows, fields)
                if page.offset_fallback:
                    report.warnings[
                        f"{table}: a page held only inaccessible rows; paged by offset"
                    ] += 1
                if process == "ci":
                    for row in page.rows:
                        if isinstance(row.get("name"), str) and row["name"]:
                            self.ci_names[row["sys_id"]] = row["name"]
                ready, joined = self._join(process, indexes, page.rows, report, checked)
                records, mapped = self.mapper.map_rows(
                    process,
                    ready,
                    approvals=joined.get(APPROVAL_TABLE),
                    task_ci=joined.get(TASK_CI_TABLE),
                    ci_names=self.ci_names,
                )
                report.merge(mapped)
                report.skipped_empty += page.inaccessible  # the mapper's own count for `{}` rows
                watermark = _newest(page.rows, watermark)  # held rows too: see _Late
                now = self.request_count
                yield StreamBatch(
                    stream=stream,
                    records=records,
                    report=report,
                    watermark=watermark,
                    requests=now - before,
                )
                before = now
        finally:
            self._finish(process, query=query, keys=keys)
        if pending.warnings:  # a stream with no rows still reports its prefetch's warnings
            yield StreamBatch(
                stream=stream,
                records=[],
                report=pending,
                watermark=watermark,
                requests=self.request_count - before,
            )
        if self._late and self._last_related_reader(process):
            yield from self._read_late()

    # -- related rows
    def plan(self, since: Mapping[str, datetime | None]) -> None:
        """Tell the connector which streams will be read, in :attr:`streams` order, and
        each one's ``since`` (optional): the related prefetch then covers each process's
        exact window in one stream, and the late parents of all of them are read by id
        once, after the last stream that uses related rows (without a plan: per stream)."""
        self._planned = dict(since)

    def _walked_scope(self, spec: _RelatedSpec, process: str) -> str | None:
        try:
            scope = check_scope(self.cfg.query.get(process), f"sources[].query.{process}")
        except ValueError:
            return None
        return walk_query(scope, spec.ref)

    def _window(self, process: str, current: str, start: datetime | None) -> datetime | None:
        """The start of the related window for ``process`` when ``current`` is being read."""
        if process == current:
            return start
        if self._planned is not None and process in self._planned:
            since = self._planned[process]
            return None if since is None else since - timedelta(minutes=self.cfg.lookback_minutes)
        return None if start is None else start - RELATED_SLACK

    def _prefetch(
        self, spec: _RelatedSpec, process: str, start: datetime | None, report: MappingReport
    ) -> _RelatedIndex | None:
        """The bulk related stream covering ``process`` from ``start`` (reused when an
        earlier prefetch covers it); None when the instance refuses it (use id lists)."""
        index = self._related.get(spec.table)
        if index is not None and index.covers(process, start):
            return index
        windows: dict[str, datetime | None] = {}
        groups: list[str] = []
        for p in self.streams:
            if p not in spec.processes or (p != process and p in self._read_done):
                continue
            scope = self._walked_scope(spec, p)
            if scope is None:
                continue
            windows[p] = self._window(p, process, start)
            since = windows[p]
            groups.append(
                join_query(
                    f"{spec.ref}.sys_class_nameINSTANCEOF{self.table(p)}",
                    None if since is None else f"{spec.parent_time}>={format_time(since)}",
                    scope,
                )
            )
        self._related.pop(spec.table, None)  # one index per table: free the old one first
        fields = [*spec.fields, spec.parent_time]

        def first(_: str) -> str:
            return f"{'^NQ'.join(groups)}^{ORDER_BY_ID}"

        def after(_: str, key: tuple[str, ...]) -> str:
            return "^NQ".join(join_query(g, f"sys_id>{key[0]}") for g in groups) + f"^{ORDER_BY_ID}"

        self.server_time = None
        index: _RelatedIndex | None = None
        try:
            for page in self.pages(
                spec.table, fields, "", keyset=_Keyset(("sys_id",), first, after)
            ):
                if index is None:
                    # R: the instance's clock when the read began, minus the lookback
                    began = self.server_time or datetime.now(timezone.utc)
                    index = _RelatedIndex(
                        spec, windows, began - timedelta(minutes=self.cfg.lookback_minutes)
                    )
                    if page.rows:
                        self._check_fields(report, spec.table, page.rows, spec.fields)
                if page.inaccessible:
                    report.warnings[f"{spec.table}: inaccessible rows skipped"] += page.inaccessible
                for row in page.rows:
                    index.add(row)
        except SourceError as exc:
            if exc.status not in BULK_REFUSED:
                raise
            self._use_id_lists(
                f"the dot-walked query on {spec.table} was refused: HTTP {exc.status}"
            )
            report.warnings[
                f"{spec.table}: dot-walked query refused (HTTP {exc.status}); read by id"
            ] += 1
            return None
        if index is None:  # no related row at all: every parent read before now has none
            began = self.server_time or datetime.now(timezone.utc)
            index = _RelatedIndex(
                spec, windows, began - timedelta(minutes=self.cfg.lookback_minutes)
            )
        if any(index.parent_seen.values()):
            self._dotwalk_proven = True  # the server resolved the dot-walked column
        elif not index.rows and not self._dotwalk_proven and not self._dotwalk_answers(spec):
            self._use_id_lists(f"the dot-walked query on {spec.table} {_SILENT_EMPTY}")
            report.warnings[
                f"{spec.table}: dot-walked query answered with no rows; read by id"
            ] += 1
            return None
        self._related[spec.table] = index
        return index

    def _use_id_lists(self, why: str) -> None:
        """Read related rows by id lists per page of parents from now on, and say why."""
        self._bulk_ok = False
        self._related.clear()
        self.related_path = f"in-list ({why})"
        log.warning(
            "%s: %s; reading related rows by id lists per page", self.name, self.related_path
        )

    def _dotwalk_answers(self, spec: _RelatedSpec) -> bool:
        """Whether an empty bulk answer can be believed. An instance with
        ``glide.invalid_query.returns_no_rows=true`` that cannot evaluate the dot-walked
        terms (query ACLs on the parent's fields) answers *no rows* instead of an error,
        which would map every approval and CI link as absent. One probe row with a
        dot-walked condition that any linked row meets; if none, one plain probe row:
        rows there mean the dot-walk is what failed."""
        walked = self._get_result(
            spec.table, self._params([spec.ref], f"{spec.ref}.sys_idISNOTEMPTY^{ORDER_BY_ID}", 1)
        )
        if any(isinstance(r, dict) and r for r in walked):
            self._dotwalk_proven = True
            return True
        plain = self._get_result(spec.table, self._params([spec.ref], ORDER_BY_ID, 1))
        return not plain  # an empty table: nothing to miss

    def _join(
        self,
        process: str,
        indexes: Mapping[str, _RelatedIndex | None],
        rows: Sequence[dict[str, Any]],
        report: MappingReport,
        checked: set[str],
    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Split a page of parents: those whose prefetched related rows are certainly current
        (returned with them) and the late ones (held in ``self._late`` for :meth:`_read_late`).
        Tables read by id lists (no index) are read for the whole page here."""
        ids = [r["sys_id"] for r in rows]
        joined: dict[str, list[dict[str, Any]]] = {
            t: []
            if index is not None
            else self.related(t, _SPECS[t].fields, _SPECS[t].ref, ids, report, checked)
            for t, index in indexes.items()
        }  # the mapper joins by parent id
        by_id = {
            t: _by_parent(joined[t], _SPECS[t].ref) for t, index in indexes.items() if index is None
        }
        ready: list[dict[str, Any]] = []
        for row in rows:
            stale = tuple(
                t for t, index in indexes.items() if index is not None and not index.fresh(row)
            )
            if not stale:
                ready.append(row)
                for t, index in indexes.items():
                    if index is not None:
                        joined[t].extend(index.rows_for(row["sys_id"]))
                continue
            known = {
                t: index.rows_for(row["sys_id"])
                for t, index in indexes.items()
                if index is not None and t not in stale
            }
            known.update((t, grouped.get(row["sys_id"], [])) for t, grouped in by_id.items())
            self._late.setdefault(process, []).append(_Late(row, known, stale))
        return ready, joined

    def _last_related_reader(self, process: str) -> bool:
        """Whether no stream after ``process`` that the consumer will read (``plan``) uses
        related rows: the late parents are then read now. Without a plan, after each stream."""
        if self._planned is None or process not in self.streams:
            return True
        later = self.streams[self.streams.index(process) + 1 :]
        return not any(
            p in self._planned and p in spec.processes for p in later for spec in RELATED
        )

    def _read_late(self) -> Iterator[StreamBatch]:
        """The held late parents of every stream read so far, with their related rows read
        by id: one ``...IN`` read per related table for all of them (module docstring)."""
        late, self._late = self._late, {}
        before = self.request_count
        report = MappingReport()
        fetched: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for spec in RELATED:
            ids = list(
                dict.fromkeys(
                    h.row["sys_id"] for held in late.values() for h in held if spec.table in h.stale
                )
            )
            if not ids:
                continue
            report.warnings[
                f"{spec.table}: related rows re-read for parents changed since the bulk read"
            ] += len(ids)
            fetched[spec.table] = _by_parent(
                self.related(spec.table, spec.fields, spec.ref, ids, report, set()), spec.ref
            )
        for process, held in late.items():
            related: dict[str, list[dict[str, Any]]] = {}
            for spec in RELATED:
                if process in spec.processes:
                    per_parent: dict[str, list[dict[str, Any]]] = {}  # a parent held twice: once
                    for h in held:
                        per_parent[h.row["sys_id"]] = (
                            fetched.get(spec.table, {}).get(h.row["sys_id"], [])
                            if spec.table in h.stale
                            else h.known.get(spec.table, [])
                        )
                    related[spec.table] = [x for rows in per_parent.values() for x in rows]
            records, mapped = self.mapper.map_rows(
                process,
                [h.row for h in held],
                approvals=related.get(APPROVAL_TABLE),
                task_ci=related.get(TASK_CI_TABLE),
                ci_names=self.ci_names,
            )
            report.merge(mapped)
            now = self.request_count
            # watermark None: the parents' own stream already counted their update times
            yield StreamBatch(
                stream=process,
                records=records,
                report=report,
                watermark=None,
                requests=now - before,
            )
            report, before = MappingReport(), now

    def _finish(self, process: str, *, query: str | None, keys: Sequence[str] | None) -> None:
        """After a stream: drop related indexes no process still to be read needs."""
        if query or keys:
            return
        self._read_done.add(process)
        for table, index in list(self._related.items()):
            if all(p in self._read_done for p in index.windows):
                del self._related[table]

    def related(
        self,
        table: str,
        fields: Sequence[str],
        ref_field: str,
        ids: Sequence[str],
        report: MappingReport,
        checked: set[str],
    ) -> list[dict[str, Any]]:
        """Rows of ``table`` whose ``ref_field`` is one of ``ids``: bulk, keyset-paged on
        sys_id, never one request per record."""
        out: list[dict[str, Any]] = []
        size = self.related_chunk
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            for page in self.pages(
                table, fields, f"{ref_field}IN{','.join(chunk)}", keyset=BY_ID, counted=True
            ):
                if page.rows and table not in checked:
                    checked.add(table)
                    self._check_fields(report, table, page.rows, fields)
                if page.inaccessible:
                    report.warnings[f"{table}: inaccessible rows skipped"] += page.inaccessible
                out.extend(page.rows)
        return out

    @staticmethod
    def missing_fields(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[str]:
        """Requested fields that no returned row holds: the Table API silently drops unknown
        (or unreadable) fields, so absence means the table lacks what the mapping names."""
        present: set[str] = set()
        for row in rows:
            present.update(row)
        return [f for f in fields if f not in present]

    def _check_fields(
        self,
        report: MappingReport,
        table: str,
        rows: Sequence[dict[str, Any]],
        fields: Sequence[str],
    ) -> None:
        for name in self.missing_fields(rows, fields):
            log.warning(
                "%s: table %s returned no field %s (not on the table or not readable); "
                "it is mapped as not provided",
                self.name,
                table,
                name,
            )
            report.warnings[f"{table}.{name} missing"] += 1

    # -- doctor
    def doctor(self) -> DoctorReport:
        """Reachability, auth, readable tables, mapped fields, uncovered state values and
        the rules that cannot be evaluated here (on a sample record per table)."""
        rep = DoctorReport(
            source=self.name,
            info={
                "url": self.base_url,
                "auth": "oauth" if self._oauth else "basic",
                "page_size": self.page_size,
                "tables": {p: self.table(p) for p in self.streams},
            },
        )
        samples: dict[str, list[dict[str, Any]]] = {}
        unreadable: dict[str, str] = {}
        connected = False
        for process in self.streams:
            table = self.table(process)
            fields = self.mapper.fields_for(process)
            try:
                rows = self._get_result(table, self._params(fields, "ORDERBYDESCsys_updated_on", 1))
            except SourceError as exc:
                if exc.status is None or exc.status == 401:
                    name = "reachable" if exc.status is None else "authentication"
                    rep.checks.append(DoctorCheck(name, False, str(exc)))
                    why = (
                        "the source cannot be read"
                        if exc.status is None
                        else "authentication failed"
                    )
                    rep.not_evaluated.update(
                        self._doctor_rules(rep, {}, dict.fromkeys(self.streams, why))
                    )
                    return rep
                unreadable[process] = f"table {table} is not readable (HTTP {exc.status})"
                rep.checks.append(DoctorCheck(f"table {table} readable", False, str(exc)))
                continue
            if not connected:
                connected = True
                rep.checks.append(DoctorCheck("reachable", True, self.base_url, level="info"))
                rep.checks.append(
                    DoctorCheck("authentication", True, rep.info["auth"], level="info")
                )
            rep.checks.append(DoctorCheck(f"table {table} readable", True, level="info"))
            samples[process] = [r for r in rows if isinstance(r, dict) and r.get("sys_id")]
            self._doctor_fields(rep, table, samples[process], fields)
            self._doctor_choices(rep, process, table)
        related: dict[str, list[dict[str, Any]]] = {}
        for table, fields, needed_by in (
            (APPROVAL_TABLE, APPROVAL_FIELDS, APPROVAL_PROCESSES),
            (TASK_CI_TABLE, TASK_CI_FIELDS, TASK_CI_PROCESSES),
        ):
            try:
                rows = self._get_result(table, self._params(fields, "ORDERBYDESCsys_updated_on", 1))
            except SourceError as exc:
                rep.checks.append(DoctorCheck(f"table {table} readable", False, str(exc)))
                for process in needed_by:
                    unreadable.setdefault(
                        process, f"table {table} is not readable (HTTP {exc.status})"
                    )
                continue
            rep.checks.append(DoctorCheck(f"table {table} readable", True, level="info"))
            related[table] = [r for r in rows if isinstance(r, dict) and r.get("sys_id")]
            self._doctor_fields(rep, table, related[table], fields)
        self._doctor_related_path(rep, related)
        rep.not_evaluated.update(self._doctor_rules(rep, samples, unreadable))
        rep.info["requests"] = self.request_count
        return rep

    def _doctor_related_path(
        self, rep: DoctorReport, readable: dict[str, list[dict[str, Any]]]
    ) -> None:
        """Whether the instance takes the dot-walked bulk queries (one probe row each)."""
        if self._bulk_ok:
            for spec in RELATED:
                user = next((p for p in self.streams if p in spec.processes), None)
                if spec.table not in readable or user is None:
                    continue
                query = f"{spec.ref}.sys_class_nameINSTANCEOF{self.table(user)}^{ORDER_BY_ID}"
                try:
                    rows = self._get_result(
                        spec.table, self._params([*spec.fields, spec.parent_time], query, 1)
                    )
                except SourceError as exc:
                    if exc.status not in BULK_REFUSED:
                        raise
                    self._use_id_lists(
                        f"the dot-walked query on {spec.table} was refused: HTTP {exc.status}"
                    )
                    break
                if not rows and not self._dotwalk_answers(spec):
                    self._use_id_lists(f"the dot-walked query on {spec.table} {_SILENT_EMPTY}")
                    break
        rep.info["related_path"] = self.related_path
        rep.checks.append(
            DoctorCheck(
                "related rows",
                self._bulk_ok,
                "one dot-walked bulk stream per related table"
                if self._bulk_ok
                else f"{self.related_path}: approvals and CI links are read by id lists per page of "
                "records (more requests); grant query access to task.sys_class_name and "
                "task.sys_updated_on to read them in bulk",
                level="info" if self._bulk_ok else "warning",
            )
        )

    def _doctor_fields(
        self, rep: DoctorReport, table: str, rows: list[dict[str, Any]], fields: Sequence[str]
    ) -> None:
        if not rows:
            rep.checks.append(
                DoctorCheck(
                    f"table {table} fields",
                    False,
                    "no readable row to check the mapped fields against",
                    level="warning",
                )
            )
            return
        missing = self.missing_fields(rows, fields)
        rep.checks.append(
            DoctorCheck(
                f"table {table} fields",
                not missing,
                f"missing (not on the table or not readable): {', '.join(missing)}; map them in "
                f"sources[].fields or grant read access"
                if missing
                else f"{len(fields)} mapped fields present",
            )
        )

    def _doctor_choices(self, rep: DoctorReport, process: str, table: str) -> None:
        """State values the instance defines (sys_choice) that the status map misses."""
        column = self.cfg.fields.get(f"{process}.state", STATE_FIELD.get(process, "state"))
        try:
            rows = self._get_result(
                "sys_choice",
                {
                    "sysparm_query": f"nameIN{table},task^element={column}^inactive=false",
                    "sysparm_fields": "name,value,label",
                    "sysparm_limit": "1000",
                    "sysparm_exclude_reference_link": "true",
                },
            )
        except SourceError as exc:
            rep.checks.append(
                DoctorCheck(
                    f"table {table} state values",
                    False,
                    f"cannot read sys_choice: {exc}",
                    level="warning",
                )
            )
            return
        own = [r for r in rows if isinstance(r, dict) and r.get("name") == table]
        choices = own or [r for r in rows if isinstance(r, dict)]  # inherited from task
        labels: dict[str, str] = {}
        for r in choices:
            value = str(r.get("value", "")).strip()
            if value:
                labels.setdefault(value, str(r.get("label", "")))
        key = KEY_FIELD.get(process, "number")
        probe = [{"sys_id": f"doctor{i}", key: "DOCTOR", column: v} for i, v in enumerate(labels)]
        _, report = self.mapper.map_rows(process, probe)
        uncovered = sorted({raw for (_, raw) in report.unknown_statuses if raw in labels})
        rep.checks.append(
            DoctorCheck(
                f"table {table} state values",
                not uncovered,
                (
                    "not in the status map (records in them are NOT_EVALUATED): "
                    + ", ".join(f"{v} ({labels[v]})" for v in uncovered)
                    + f"; add them to status_map.{process}"
                )
                if uncovered
                else f"{len(labels)} values, all mapped",
                level="warning",
            )
        )

    def _doctor_rules(
        self,
        rep: DoctorReport,
        samples: dict[str, list[dict[str, Any]]],
        unreadable: dict[str, str],
    ) -> dict[str, str]:
        """rule code -> why it cannot be evaluated here: its processes have no table or an
        unreadable one, or it answered NOT_EVALUATED on the sample records (mapped with
        their related rows)."""
        # Imported here: only doctor needs the rules; reading data never does.
        from ticketlint.rules.engine import Engine
        from ticketlint.rules.registry import load_registry

        try:
            rules = load_registry().select()
        except Exception as exc:  # noqa: BLE001 - doctor reports every failure as a check line
            rep.checks.append(
                DoctorCheck("rules", False, f"cannot load the rules: {exc}", level="warning")
            )
            return {}
        out: dict[str, str] = {}
        records = []
        for process, rows in samples.items():
            if process in unreadable or not rows:
                continue
            ids = [r["sys_id"] for r in rows]
            scratch = MappingReport()
            try:
                approvals = (
                    self.related(
                        APPROVAL_TABLE, APPROVAL_FIELDS, "sysapproval", ids, scratch, set()
                    )
                    if process in APPROVAL_PROCESSES
                    else None
                )
                task_ci = (
                    self.related(TASK_CI_TABLE, TASK_CI_FIELDS, "task", ids, scratch, set())
                    if process in TASK_CI_PROCESSES
                    else None
                )
            except SourceError:
                approvals = task_ci = None  # already reported by the related-table checks
            mapped, _ = self.mapper.map_rows(
                process, rows, approvals=approvals, task_ci=task_ci, ci_names=self.ci_names
            )
            records.extend(mapped)
        evaluation = Engine(rules).evaluate(records, as_of=datetime.now(timezone.utc))
        for code, reasons in evaluation.not_evaluated.items():
            out[code] = "; ".join(sorted(reasons)) + " (on a sample record)"
        for r in rules:
            mine = [p for p in r.applies_to if p in self.streams]
            if not mine:
                out[r.code] = f"ServiceNow has no table for {', '.join(r.applies_to)}"
                continue
            blocked = [unreadable[p] for p in mine if p in unreadable]
            if blocked:
                partly = "" if len(blocked) == len(mine) else " (its other processes are evaluated)"
                out[r.code] = "; ".join(dict.fromkeys(blocked)) + partly
        return out


def _http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _newest(rows: Sequence[dict[str, Any]], current: datetime | None) -> datetime | None:
    """The watermark: the largest ``sys_updated_on`` read (bad values are the mapper's to
    report; they cannot move the watermark)."""
    for row in rows:
        try:
            updated = parse_servicenow_time(row.get("sys_updated_on"))
        except ValueError:
            continue
        if updated is not None and (current is None or updated > current):
            current = updated
    return current
