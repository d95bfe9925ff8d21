"""HTTP delivery of one payload to one destination: signing, retries, 429, secret URLs.

Webhook URLs are secrets (whoever has one can post into the channel), so no message built
here contains one: errors name the destination, the HTTP status and the server's short
reason, and urllib3's debug lines that would show the URL path are redacted.

Within one delivery: 5xx, timeouts and connection errors are retried a few times with
exponential backoff (tenacity); a 429 waits exactly ``Retry-After`` when that is at most
:attr:`Policy.max_retry_after`, otherwise the delivery fails now and the outbox retries it
on the next run. Other 4xx answers are not retried (the payload or URL is wrong).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from ticketlint.config import NotifyDestination

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Ticketlint-Timestamp"
SIGNATURE_HEADER = "X-Ticketlint-Signature"
DELIVERY_HEADER = "X-Ticketlint-Delivery"
USER_AGENT = "ticketlint-notify/1"


@dataclass(frozen=True)
class Policy:
    tries: int = 3
    wait_base: float = 1.0
    wait_max: float = 8.0
    max_retry_after: float = 60.0
    timeout: tuple[float, float] = (5.0, 20.0)


POLICY = Policy()
"""The default policy (tests replace it with a faster one)."""


class DeliveryError(Exception):
    """A payload could not be delivered; the message names the destination, never its URL."""

    def __init__(self, destination: str, reason: str) -> None:
        super().__init__(f"notify destination {destination!r}: {reason}")
        self.destination = destination
        self.reason = reason


class _Transient(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# --- signing ------------------------------------------------------------------------------


def encode(payload: Any) -> bytes:
    """The exact bytes that are sent (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "timestamp.body">`` with the destination's secret."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = 300.0,
) -> bool:
    """What a receiver does: constant-time compare, and reject stale timestamps (replays)."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def headers_for(
    dest: NotifyDestination, body: bytes, dedup_id: str | None, *, now: float | None = None
) -> dict[str, str]:
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
    if dest.type == "webhook":
        ts = str(int(time.time() if now is None else now))
        headers[TIMESTAMP_HEADER] = ts
        if dedup_id:
            headers[DELIVERY_HEADER] = dedup_id
        if dest.secret is not None:
            headers[SIGNATURE_HEADER] = sign(dest.secret.get_secret_value(), ts, body)
    return headers


# --- secret URLs out of logs -------------------------------------------------------------


class _RedactUrls(logging.Filter):
    """Replace webhook URL paths in urllib3's log lines (``POST /hooks/SECRET``)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(s in text for s in self.secrets):
                for s in self.secrets:
                    text = text.replace(s, "<redacted>")
                record.msg, record.args = text, ()
        return True


_REDACT = _RedactUrls()
logging.getLogger("urllib3.connectionpool").addFilter(_REDACT)


def _secret_parts(url: str) -> set[str]:
    parts = urlsplit(url)
    out = {url}
    if parts.path and parts.path != "/":
        out.add(parts.path)
    if parts.query:
        out.add(parts.query)
    return out


def redact(text: str, url: str) -> str:
    for part in sorted(_secret_parts(url), key=len, reverse=True):
        text = text.replace(part, "<redacted>")
    return text


# --- sending ------------------------------------------------------------------------------


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def send(
    dest: NotifyDestination,
    payload: Any,
    *,
    dedup_id: str | None = None,
    policy: Policy | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """POST ``payload`` to ``dest``; returns the HTTP status. Raises :class:`DeliveryError`."""
    policy = policy or POLICY
    sleep = sleep or time.sleep  # looked up now, so tests can replace it
    dest.require_env()  # its URL's or secret's ${VAR} is read now, when it is contacted
    url = dest.url.get_secret_value()
    _REDACT.secrets |= _secret_parts(url)
    body = encode(payload)
    http = session or requests.Session()

    def attempt() -> int:
        headers = headers_for(dest, body, dedup_id)
        try:
            resp = http.post(url, data=body, headers=headers, timeout=policy.timeout)
        except requests.Timeout:
            raise _Transient("timed out") from None
        except requests.ConnectionError:
            raise _Transient("connection failed") from None
        except requests.RequestException as exc:  # invalid URL and the like: not retried
            raise DeliveryError(dest.name, f"request failed ({type(exc).__name__})") from None
        if 200 <= resp.status_code < 300:
            return resp.status_code
        reason = f"HTTP {resp.status_code}"
        text = redact((resp.text or "").strip().replace("\n", " ")[:200], url)
        if text:
            reason += f": {text}"
        if resp.status_code == 429:
            wait = retry_after_seconds(resp.headers.get("Retry-After"))
            if wait is not None and wait > policy.max_retry_after:
                raise DeliveryError(
                    dest.name,
                    f"rate limited (HTTP 429, Retry-After {wait:.0f}s is longer "
                    f"than {policy.max_retry_after:.0f}s); left for the next run",
                )
            raise _Transient(reason, wait)
        if resp.status_code >= 500:
            raise _Transient(reason)
        raise DeliveryError(dest.name, reason)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return exc.retry_after  # exactly what the server asked for
        return float(min(policy.wait_max, policy.wait_base * 2 ** (state.attempt_number - 1)))

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.info(
            "notify %s: %s; retrying (try %d of %d)",
            dest.name,
            exc,
            state.attempt_number + 1,
            policy.tries,
        )

    try:
        try:
            for try_ in Retrying(
                stop=stop_after_attempt(policy.tries),
                wait=wait,
                sleep=sleep,
                retry=retry_if_exception_type(_Transient),
                reraise=True,
                before_sleep=before_sleep,
            ):
                with try_:
                    status = attempt()
            return status
        except _Transient as exc:
            tail = "; left for the next run" if exc.reason.startswith("HTTP 429") else ""
            raise DeliveryError(
                dest.name, f"{exc.reason} after {policy.tries} tries{tail}"
            ) from None
    finally:
        if session is None:
            http.close()
