"""The HTTP side of write-back: read and change labels, comments and work notes.

Every request goes through :class:`ticketlint.connectors.http.HttpClient` (timeouts, TLS, 429 with
``Retry-After``, backoff, errors that name URL and status but never a secret). Writes
that are idempotent (a label update, a comment edit) are retried as usual. Writes that
are not (posting a comment, adding a work note) must never be sent twice blindly: after
an ambiguous failure (5xx, timeout, reset: the server may have done it) the ticket is read
back and the write is repeated only when our marker is not there. A 429 is never
ambiguous (nothing was done) and is retried after the wait the server asks for.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from ticketlint.config import BasicAuth, JiraCloudAuth, JiraPatAuth, JiraSource, ServiceNowSource
from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import BACKOFF_INITIAL, BACKOFF_MAX, HttpClient, _Retryable
from ticketlint.mapping.adf import adf_to_text, is_adf
from ticketlint.mapping.common import parse_jira_time, parse_servicenow_time
from ticketlint.plugin.writeback.render import MARKER_PREFIX, read_marker

log = logging.getLogger(__name__)
T = TypeVar("T")
COMMENT_PAGE = 100
"""Comments per page when looking for ours (Jira Cloud's default and usual cap)."""
JOURNAL_TABLE = "sys_journal_field"


class AmbiguousWrite(Exception):
    """A write whose outcome is unknown: the server may or may not have applied it."""

    def __init__(self, reason: str, status: int | None) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class _WriteOnceClient(HttpClient):
    """An :class:`HttpClient` that retries a request only when it surely did nothing (429)."""

    def _attempt(self, method: str, url: str, shown: str, **kwargs: Any) -> Any:
        try:
            return super()._attempt(method, url, shown, **kwargs)
        except _Retryable as exc:
            if exc.status == 429:
                raise
            raise AmbiguousWrite(exc.reason, exc.status) from exc


class _Remote:
    """Shared: the two clients of one source and the verify-before-repeat loop."""

    def __init__(
        self,
        name: str,
        base_url: str,
        session: requests.Session,
        cfg: Any,
        *,
        sleep: Callable[[float], None] | None,
        error_detail: Any = None,
    ) -> None:
        sleep = sleep or (lambda seconds: time.sleep(seconds))  # looked up late: tests patch it
        kwargs = {
            "timeout": cfg.timeout,
            "max_attempts": cfg.max_attempts,
            "retry_after_max": cfg.retry_after_max,
            "verify": cfg.verify,
            "sleep": sleep,
            "error_detail": error_detail,
        }
        self.name, self.sleep, self.max_attempts = name, sleep, cfg.max_attempts
        self.http = HttpClient(name, base_url, session, **kwargs)
        self.once = _WriteOnceClient(name, base_url, session, **kwargs)

    @property
    def request_count(self) -> int:
        return self.http.request_count + self.once.request_count

    def close(self) -> None:
        self.http.close()

    def send_once(self, send: Callable[[], T], confirm: Callable[[], T | None], what: str) -> T:
        """``send()`` a non-idempotent write; after an ambiguous failure, ``confirm()`` reads
        the ticket (our write's result, or None when it is not there) before sending again."""
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return send()
            except AmbiguousWrite as exc:
                reason = exc.reason
                found = confirm()
                if found is not None:
                    log.info(
                        "%s: %s: %s, but the write is there; not repeated",
                        self.name,
                        what,
                        exc.reason,
                    )
                    return found
                if attempt < self.max_attempts:
                    step = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (attempt - 1))
                    self.sleep(step / 2 + random.uniform(0, step / 2))
        raise SourceError(
            self.name,
            f"{what} failed after {self.max_attempts} attempts ({reason})",
            hint="the source's availability; the write is retried next run",
        )


class JiraRemote(_Remote):
    """Labels and comments of Jira issues (Cloud: REST v3 with ADF; Data Center: v2)."""

    def __init__(self, cfg: JiraSource, *, sleep: Callable[[float], None] | None = None) -> None:
        cfg.require_env()  # its token's ${VAR} is read now, when Jira is contacted
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": "ticketlint"})
        auth = cfg.auth
        if isinstance(auth, JiraCloudAuth):
            session.auth = (auth.email, auth.token.get_secret_value())
        elif isinstance(auth, BasicAuth):
            session.auth = (auth.user, auth.password.get_secret_value())
        elif isinstance(auth, JiraPatAuth):
            session.headers["Authorization"] = f"Bearer {auth.pat.get_secret_value()}"
        super().__init__(cfg.name, cfg.url.rstrip("/"), session, cfg, sleep=sleep)
        self._version: str | None = None

    @property
    def cloud(self) -> bool:
        return self.version == "3"

    @property
    def version(self) -> str:
        """REST API version to write with: 3 on Cloud (ADF bodies), 2 elsewhere."""
        if self._version is None:
            info = self.http.get_json("/rest/api/2/serverInfo") or {}
            self._version = "3" if info.get("deploymentType") == "Cloud" else "2"
        return self._version

    def _issue(self, issue: str) -> str:
        return f"/rest/api/{self.version}/issue/{quote(issue, safe='')}"

    def updated(self, issue: str) -> datetime | None:
        """The issue's ``updated`` time as Jira reports it now (one GET), in UTC."""
        body = self.http.get_json(self._issue(issue), params={"fields": "updated"}) or {}
        return parse_jira_time((body.get("fields") or {}).get("updated"))

    # -- labels
    def labels(self, issue: str) -> list[str]:
        body = self.http.get_json(self._issue(issue), params={"fields": "labels"}) or {}
        return [str(x) for x in (body.get("fields") or {}).get("labels") or []]

    def update_labels(self, issue: str, add: str | None, remove: list[str]) -> None:
        ops: list[dict[str, str]] = [{"remove": name} for name in remove]
        if add:
            ops.append({"add": add})
        self.http.request("PUT", self._issue(issue), json={"update": {"labels": ops}})

    # -- comments
    def body_text(self, body: Any) -> str:
        return adf_to_text(body) if is_adf(body) else str(body or "")

    def find_ours(self, issue: str, prefer_id: str | None = None) -> dict[str, Any] | None:
        """Our comment on an issue: the one with ``prefer_id`` (the id in the log) when it
        still holds our marker, else the oldest comment holding the marker, else None."""
        first: dict[str, Any] | None = None
        start = 0
        while True:
            page = (
                self.http.get_json(
                    f"{self._issue(issue)}/comment",
                    params={"startAt": start, "maxResults": COMMENT_PAGE},
                )
                or {}
            )
            comments: list[dict[str, Any]] = page.get("comments") or []
            for c in comments:
                if read_marker(self.body_text(c.get("body"))) is None:
                    continue
                if prefer_id is None or str(c.get("id")) == str(prefer_id):
                    return c
                first = first or c
            start += len(comments)
            total = page.get("total")
            if not comments or (isinstance(total, int) and start >= total):
                return first

    def add_comment(self, issue: str, body: Any) -> str:
        """Post a comment (never twice: after an ambiguous failure ours is looked for first)."""

        def send() -> str:
            response = self.once.request(
                "POST", f"{self._issue(issue)}/comment", json={"body": body}
            )
            return str(response.json()["id"])

        def confirm() -> str | None:
            found = self.find_ours(issue)
            return str(found["id"]) if found else None

        return self.send_once(send, confirm, f"adding a comment to {issue}")

    def edit_comment(self, issue: str, comment_id: str, body: Any) -> bool:
        """Replace a comment's body; False when the comment no longer exists."""
        try:
            self.http.request(
                "PUT",
                f"{self._issue(issue)}/comment/{quote(comment_id, safe='')}",
                json={"body": body},
            )
        except SourceError as exc:
            if exc.status == 404:
                return False
            raise
        return True


class ServiceNowRemote(_Remote):
    """Work notes on ServiceNow task records (Table API PATCH; read back from the journal)."""

    def __init__(
        self,
        cfg: ServiceNowSource,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from ticketlint.connectors.servicenow.auth import BearerAuth as _BearerAuth
        from ticketlint.connectors.servicenow.auth import OAuthTokens as _OAuthTokens
        from ticketlint.connectors.servicenow.client import servicenow_error_detail

        cfg.require_env()  # its password's ${VAR} is read now, when ServiceNow is contacted
        session = requests.Session()
        session.headers.update({"Accept": "application/json", "User-Agent": "ticketlint"})
        auth = cfg.auth
        self._oauth: Any = None
        if isinstance(auth, BasicAuth):
            session.auth = (auth.user, auth.password.get_secret_value())
        else:
            bearer = _BearerAuth()
            session.auth = bearer
            token_session = requests.Session()
            token_session.headers["User-Agent"] = "ticketlint"
            o = auth.oauth
            self._oauth = _OAuthTokens(
                HttpClient(
                    cfg.name,
                    cfg.url.rstrip("/"),
                    token_session,
                    timeout=cfg.timeout,
                    max_attempts=cfg.max_attempts,
                    retry_after_max=cfg.retry_after_max,
                    verify=cfg.verify,
                    sleep=sleep or (lambda seconds: time.sleep(seconds)),
                ),
                bearer,
                client_id=o.client_id,
                client_secret=o.client_secret.get_secret_value(),
                user=o.user,
                password=o.password.get_secret_value(),
                clock=clock,
            )
        super().__init__(
            cfg.name,
            cfg.url.rstrip("/"),
            session,
            cfg,
            sleep=sleep,
            error_detail=servicenow_error_detail,
        )

    def _auth(self) -> None:
        if self._oauth is not None:
            self._oauth.ensure()

    def latest_note(self, sys_id: str) -> tuple[int, str] | None:
        """(rev, digest12) of the newest work note of ours on a record, or None."""
        self._auth()
        query = f"element_id={sys_id}^element=work_notes^valueLIKE{MARKER_PREFIX}"
        body = (
            self.http.get_json(
                f"/api/now/table/{JOURNAL_TABLE}",
                params={
                    "sysparm_query": query + "^ORDERBYDESCsys_created_on",
                    "sysparm_fields": "sys_id,value,sys_created_on",
                    "sysparm_limit": 50,
                    "sysparm_no_count": "true",
                },
            )
            or {}
        )
        marks = [
            m
            for m in (read_marker(str(r.get("value") or "")) for r in body.get("result") or [])
            if m
        ]
        return max(marks) if marks else None

    def add_note(
        self, table: str, sys_id: str, text: str, rev: int, digest12: str
    ) -> datetime | None:
        """PATCH the record's ``work_notes`` (never twice: the journal is read after an
        ambiguous failure). Returns the record's ``sys_updated_on`` after the note: the
        PATCH response carries it (raw UTC value, as the connector reads it with
        ``sysparm_display_value=false``); only when the note was confirmed from the journal
        instead is the record read for it."""

        def send() -> tuple[datetime | None]:
            self._auth()
            response = self.once.request(
                "PATCH",
                f"/api/now/table/{table}/{sys_id}",
                params={
                    "sysparm_fields": "sys_id,sys_updated_on",
                    "sysparm_display_value": "false",
                },
                json={"work_notes": text},
            )
            return (_updated_on(_result(response)),)

        def confirm() -> tuple[datetime | None] | None:
            return (None,) if self.latest_note(sys_id) == (rev, digest12) else None

        (updated,) = self.send_once(send, confirm, f"adding a work note to {table}/{sys_id}")
        if updated is not None:
            return updated
        try:  # the note is written: failing to read the time never makes the write fail
            return self.updated_on(table, sys_id)
        except SourceError as exc:
            log.warning(
                "%s: update time of %s/%s after a work note not read: %s",
                self.name,
                table,
                sys_id,
                exc,
            )
            return None

    def updated_on(self, table: str, sys_id: str) -> datetime | None:
        """The record's ``sys_updated_on`` now (one GET), in UTC."""
        self._auth()
        body = (
            self.http.get_json(
                f"/api/now/table/{table}/{sys_id}",
                params={"sysparm_fields": "sys_updated_on", "sysparm_display_value": "false"},
            )
            or {}
        )
        return _updated_on(body.get("result"))

    def close(self) -> None:
        super().close()
        if self._oauth is not None:
            self._oauth.http.close()


def _result(response: Any) -> Any:
    try:
        return (response.json() or {}).get("result")
    except ValueError:  # an empty or non-JSON body: the note is written, the time unknown
        return None


def _updated_on(result: Any) -> datetime | None:
    """``sys_updated_on`` of a Table API result (raw ``yyyy-MM-dd HH:mm:ss`` UTC), or None."""
    if not isinstance(result, dict):
        return None
    value = result.get("sys_updated_on")
    if isinstance(value, dict):  # sysparm_display_value=all shape, should an instance force it
        value = value.get("value")
    try:
        return parse_servicenow_time(value)
    except ValueError:
        log.warning("unreadable sys_updated_on %r in a work-note response", value)
        return None
