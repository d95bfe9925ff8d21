"""Shared HTTP behaviour of every connector: retries, timeouts, TLS and error messages.

One place decides what is retried and how long to wait (tenacity owns the loop):

- 429 with ``Retry-After`` (seconds or an HTTP-date): wait exactly that long, capped by
  ``retry_after_max``; never less, and no jitter below it.
- 429 without it, 5xx, timeouts, connection resets and a 2xx page whose body is not
  valid JSON (when JSON was asked for): exponential backoff with jitter.
- at most ``max_attempts`` attempts; then :class:`~ticketlint.connectors.base.SourceError`.
- connection refused, a host name that does not resolve and a TLS failure are never
  retried (no wait can fix them): one :class:`SourceError` naming the cause and the URL.
- any other 4xx (400, 401, 403, 404, 410, ...) is never retried and never turned into
  "zero records": :class:`SourceError` names the URL (no query string, no credentials),
  the status, the server's own error text and what to check.

Every request carries a timeout; TLS verification is on unless configured off (warned).
Nothing here logs a header, a query string or a body, so secrets never reach the logs.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from ticketlint.connectors.base import SourceError
from ticketlint.safejson import loads_body

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 1.0
"""First exponential backoff step in seconds (doubles per attempt)."""
BACKOFF_MAX = 60.0
"""Upper bound of one exponential backoff wait."""
_RETRYABLE_EXCEPTIONS = (
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,  # a reset while the body streams in
)
_HINTS = {
    400: "the query (JQL / encoded query) and the field names or ids in the configuration",
    401: "the credentials (user / email and API token, personal access token or password)",
    403: "the API user's permissions (browse the projects / read the tables) and any "
    "CAPTCHA or IP allow-list on the account",
    404: "the source URL and its base path (context path), and that the API exists on this version",
    405: "the source URL: the server does not accept this method here",
    410: "a removed endpoint: this API was retired by the vendor; upgrade ticketlint",
}


def connection_failure(exc: BaseException) -> str | None:
    """The cause of a connection error that no retry can fix, in words: ``connection
    refused``, ``host not found``, ``network unreachable`` or ``TLS failure: ...``; None
    for transient ones (a reset, a dropped connection), which are retried."""
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < 20:
        item = todo.pop()
        if item in chain:
            continue
        chain.append(item)
        todo.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            nxt = getattr(item, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    text = " ".join(str(e) for e in chain)
    if any(isinstance(e, (requests.exceptions.SSLError, ssl.SSLError)) for e in chain):
        detail = next((str(e) for e in chain if isinstance(e, ssl.SSLError)), "")
        return "TLS failure" + (f": {detail}" if detail else "")
    names = {type(e).__name__ for e in chain}
    if (
        "NameResolutionError" in names
        or any(isinstance(e, socket.gaierror) for e in chain)
        or "Name or service not known" in text
        or "nodename nor servname" in text
        or "Temporary failure in name resolution" in text
    ):
        return "host not found"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return "connection refused"
    if "Network is unreachable" in text or "No route to host" in text:
        return "network unreachable"
    return None


TLS_HINT = (
    "the source's certificate; for a private or corporate CA set sources[].verify to the "
    "path of its CA bundle (verify: /etc/ssl/corp-ca.pem); verify: false turns checking "
    "off and is for tests only"
)
_TLS_REASONS = (
    (
        "certificate has expired",
        "certificate expired (the server's certificate is past its end date)",
    ),
    ("not yet valid", "certificate not yet valid (check the clocks)"),
    ("hostname mismatch", "hostname mismatch (the certificate is for another name)"),
    ("doesn't match", "hostname mismatch (the certificate is for another name)"),
    ("ip address mismatch", "hostname mismatch (the certificate is for another address)"),
    ("self-signed certificate", "unknown CA (a self-signed certificate)"),
    ("self signed certificate", "unknown CA (a self-signed certificate)"),
    ("unable to get local issuer", "unknown CA (the issuer is not in the trusted bundle)"),
    ("unable to get issuer", "unknown CA (the issuer is not in the trusted bundle)"),
    ("certificate revoked", "certificate revoked"),
    ("wrong version number", "handshake failed: the port does not speak TLS (http:// URL?)"),
    ("unsupported protocol", "handshake failed: no TLS version in common"),
    ("no such file", "the CA bundle named by verify: cannot be read"),
    (
        "could not find a suitable tls ca certificate bundle",
        "the CA bundle named by verify: cannot be read",
    ),
)


def tls_failure(exc: BaseException) -> str:
    """What went wrong in a TLS handshake, in words: unknown CA, hostname mismatch,
    expired certificate, ... (the text of ``ssl`` / urllib3's nested errors)."""
    text = str(exc).lower()
    for needle, reason in _TLS_REASONS:
        if needle in text:
            return reason
    if "certificate verify failed" in text:
        return "certificate verification failed"
    return "handshake failed"


class _Retryable(Exception):
    """One attempt failed in a way worth another try."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.detail = detail


def _whole_object(content: bytes) -> bool:
    """Whether ``content`` opens and closes as one JSON object (ignoring whitespace)."""
    body = content.strip()
    return body[:1] == b"{" and body[-1:] == b"}"


def safe_url(url: str) -> str:
    """``url`` without user info, query string or fragment: safe to log and to show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def retry_after_seconds(response: requests.Response, cap: float) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds, at most ``cap``.

    Accepts delta-seconds and an HTTP-date (measured against the response's own ``Date``
    header when present, so a skewed local clock does not matter). None when the header
    is absent or unreadable; a date in the past gives 0.
    """
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now = datetime.now(timezone.utc)
        server_date = response.headers.get("Date")
        if server_date:
            try:
                parsed_now = parsedate_to_datetime(server_date)
                now = parsed_now if parsed_now.tzinfo else parsed_now.replace(tzinfo=timezone.utc)
            except (TypeError, ValueError, IndexError):
                pass
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def default_error_detail(response: requests.Response) -> str:
    """The server's own error text: Jira ``errorMessages`` / ``errors``, ServiceNow
    ``error.message`` / ``error.detail``, else the start of the body."""
    denied = response.headers.get("X-Authentication-Denied-Reason")
    parts: list[str] = [f"authentication denied: {denied}"] if denied else []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        messages = body.get("errorMessages")
        if isinstance(messages, list):
            parts.extend(str(m) for m in messages if m)
        elif isinstance(messages, str) and messages:
            parts.append(messages)
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts.extend(f"{k}: {v}" for k, v in errors.items())
        error = body.get("error")
        if isinstance(error, dict):
            parts.extend(str(error[k]) for k in ("message", "detail") if error.get(k))
        elif isinstance(error, str) and error:
            parts.append(error)
        for k in ("message", "errorMessage"):
            if isinstance(body.get(k), str) and body[k] and not parts:
                parts.append(body[k])
    if not parts:
        text = (response.text or "").strip()
        if text:
            parts.append(" ".join(text.split())[:300])
    return "; ".join(parts)


class HttpClient:
    """A requests session with the retry, timeout, TLS and error policy above.

    ``request_count`` counts every HTTP attempt sent (retries included).
    """

    def __init__(
        self,
        source: str,
        base_url: str,
        session: requests.Session,
        *,
        timeout: float = 30.0,
        max_attempts: int = 6,
        retry_after_max: float = 120.0,
        verify: bool | str = True,
        sleep: Callable[[float], None] = time.sleep,
        error_detail: Callable[[requests.Response], str] | None = None,
    ) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.retry_after_max = retry_after_max
        self.verify = verify
        self.sleep = sleep
        self.error_detail = error_detail or default_error_detail
        self.request_count = 0
        # A connector's pager may request the next page from its read-ahead thread while
        # the caller's thread requests related rows: the count is kept under a lock.
        self._count_lock = threading.Lock()
        if verify is False:
            log.warning(
                "%s: TLS certificate verification is OFF for %s", source, safe_url(self.base_url)
            )

    # -- public ---------------------------------------------------------------------
    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send with retries; the response of a 2xx/3xx answer, else :class:`SourceError`."""
        response, _ = self._send(
            method,
            path_or_url,
            params=params,
            json=json,
            data=data,
            headers=headers,
            want_json=False,
        )
        return response

    def get_json(self, path_or_url: str, params: Any = None) -> Any:
        """GET and parse JSON; a body that is not JSON is retried like a 5xx."""
        return self._send("GET", path_or_url, params=params, want_json=True)[1]

    def get_json_response(
        self, path_or_url: str, params: Any = None
    ) -> tuple[requests.Response, Any]:
        """Like :meth:`get_json`, with the response too (for headers such as X-Total-Count)."""
        return self._send("GET", path_or_url, params=params, want_json=True)

    def post_json(self, path_or_url: str, json: Any = None, params: Any = None) -> Any:
        """POST a JSON body and parse the JSON answer (retried like :meth:`get_json`)."""
        return self._send("POST", path_or_url, params=params, json=json, want_json=True)[1]

    def post_body(self, path_or_url: str, json: Any = None, params: Any = None) -> bytes:
        """POST a JSON body; the answer's bytes, not parsed. Retried like :meth:`post_json`,
        also when the body is not a whole JSON object from its first byte to its last (an
        error page, a cut-off page); one that looks whole but does not parse is the
        caller's to ask for again."""
        response, _ = self._send(
            "POST", path_or_url, params=params, json=json, want_json=False, whole_object=True
        )
        return response.content

    def close(self) -> None:
        self.session.close()

    # -- internals ------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        want_json: bool,
        whole_object: bool = False,
    ) -> tuple[requests.Response, Any]:
        url = self.url(path_or_url)
        shown = safe_url(url)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=retry_if_exception_type(_Retryable),
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=lambda state: self._log_retry(state, method, shown),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._attempt(
                        method,
                        url,
                        shown,
                        params=params,
                        json=json,
                        data=data,
                        headers=headers,
                        want_json=want_json,
                        whole_object=whole_object,
                    )
        except _Retryable as exc:
            raise SourceError(
                self.source,
                f"{method} failed after {self.max_attempts} attempts ({exc.reason})",
                url=shown,
                status=exc.status,
                detail=exc.detail,
                hint="the source's availability and rate limits; raise max_attempts or "
                "timeout if it is only slow",
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _attempt(
        self,
        method: str,
        url: str,
        shown: str,
        *,
        params: Any,
        json: Any,
        data: Any,
        headers: dict[str, str] | None,
        want_json: bool,
        whole_object: bool = False,
    ) -> tuple[requests.Response, Any]:
        with self._count_lock:
            self.request_count += 1
        try:
            # The base class method on purpose: a session subclass with a retry loop of
            # its own (jira's ResilientSession) must not retry underneath tenacity.
            response = requests.Session.request(
                self.session,
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=self.timeout,
                verify=self.verify,
            )
        except requests.exceptions.Timeout as exc:
            raise _Retryable(f"timed out after {self.timeout:g} s") from exc
        except requests.exceptions.SSLError as exc:
            # A certificate problem does not heal by retrying, and is no rate limit.
            raise SourceError(
                self.source,
                f"{method} failed: TLS failure: {tls_failure(exc)}",
                url=shown,
                hint=TLS_HINT,
            ) from exc
        except _RETRYABLE_EXCEPTIONS as exc:
            cause = connection_failure(exc)
            if cause is not None:
                raise SourceError(
                    self.source,
                    f"{method} failed: connection error: {cause}",
                    url=shown,
                    hint="the source URL (host name and port), that the server is up and "
                    "reachable from here, and its TLS certificate (verify: a CA bundle path)"
                    if cause.startswith("TLS")
                    else "the source URL (host name and port) and that the server is up and "
                    "reachable from here",
                ) from None
            raise _Retryable(f"connection error: {type(exc).__name__}") from exc
        except OSError as exc:  # requests: "Could not find a suitable TLS CA certificate bundle"
            if "certificate bundle" not in str(exc):
                raise
            raise SourceError(
                self.source,
                f"{method} failed: TLS failure: {tls_failure(exc)}",
                url=shown,
                hint=TLS_HINT,
            ) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            wait = (
                retry_after_seconds(response, self.retry_after_max)
                if status in (429, 503)
                else None
            )
            raise _Retryable(
                f"HTTP {status}", status=status, retry_after=wait, detail=self._detail(response)
            )
        if status >= 400:
            raise SourceError(
                self.source,
                f"{method} was refused",
                url=shown,
                status=status,
                detail=self._detail(response) or None,
                hint=_HINTS.get(status, "the request and the source's configuration"),
            )
        if whole_object and not _whole_object(response.content):
            raise _Retryable(f"HTTP {status} with a body that is not valid JSON", status=status)
        if not want_json:
            return response, None
        if status == 204 or not response.content:
            return response, None
        try:
            # A lone surrogate escape ("\udc80") is valid JSON that no database accepts.
            return response, loads_body(response.content)
        except ValueError as exc:
            # A truncated page or a proxy's HTML error page: worth another try.
            raise _Retryable(
                f"HTTP {status} with a body that is not valid JSON", status=status
            ) from exc

    def _detail(self, response: requests.Response) -> str:
        try:
            return self.error_detail(response)
        except Exception:  # noqa: BLE001 - an unreadable error body must not hide the HTTP error itself
            return ""

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after  # exactly what the server asked for (already capped)
        step = min(BACKOFF_MAX, BACKOFF_INITIAL * 2.0 ** (state.attempt_number - 1))
        # "Equal jitter": at least half the step, so bursts spread without collapsing to 0.
        return step / 2 + random.uniform(0, step / 2)

    def _log_retry(self, state: RetryCallState, method: str, shown: str) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: %s %s: %s; attempt %d/%d, retrying in %.1f s",
            self.source,
            method,
            shown,
            getattr(exc, "reason", exc),
            state.attempt_number,
            self.max_attempts,
            wait,
        )
