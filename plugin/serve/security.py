"""Authenticating inbound webhooks: HMAC signatures, timestamps and replay memory.

Pure functions plus one small thread-safe class, no Flask: the web layer calls them with
the raw request body and headers.

- Jira Cloud (admin webhooks with a secret) sends ``X-Hub-Signature: sha256=<hex>``,
  the HMAC-SHA256 of the raw body keyed with the secret (the WebSub format), and
  ``X-Atlassian-Webhook-Identifier``, unique per delivery and unchanged across Jira's
  retries. The body's ``timestamp`` (epoch milliseconds) is covered by the signature.
- ServiceNow (our business rule) sends ``X-Ticketlint-Timestamp: <epoch seconds>`` and
  ``X-Ticketlint-Signature: sha256=<mac>`` where the MAC is the HMAC-SHA256 of
  ``"<timestamp>.<raw body>"``, hex or base64 (``GlideCertificateEncryption.generateMac``
  returns base64). A plain shared secret in ``X-Ticketlint-Token`` is accepted too, for
  instances where a script cannot compute an HMAC; it protects less (see docs/serve.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

SIGNATURE_PREFIX = "sha256="


def hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def sign_jira(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for ``body`` (used by tests and docs)."""
    return SIGNATURE_PREFIX + hmac_sha256(secret, body).hex()


def sign_servicenow(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Ticketlint-Signature`` value for ``body`` sent at ``timestamp``."""
    return SIGNATURE_PREFIX + hmac_sha256(secret, timestamp.encode("ascii") + b"." + body).hex()


def _decode_mac(text: str) -> bytes | None:
    """A ``sha256=`` value as bytes: 64 hex digits or base64 of 32 bytes; None if neither."""
    if not text.lower().startswith(SIGNATURE_PREFIX):
        return None
    value = text[len(SIGNATURE_PREFIX) :].strip()
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def signature_matches(expected: bytes, header: str | None) -> bool:
    """Constant-time comparison of a computed MAC with a ``sha256=...`` header."""
    if not header:
        return False
    given = _decode_mac(header)
    return given is not None and hmac.compare_digest(expected, given)


def jira_signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    return signature_matches(hmac_sha256(secret, body), header)


def servicenow_signature_ok(secret: str, timestamp: str, body: bytes, header: str | None) -> bool:
    return signature_matches(
        hmac_sha256(secret, timestamp.encode("ascii", "replace") + b"." + body), header
    )


def token_ok(secret: str, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(
        secret.encode("utf-8"), (header or "").encode("utf-8")
    )


def parse_epoch(text: str | float | None, *, millis: bool = False) -> float | None:
    """Epoch seconds from a header or JSON value; None when absent or not a number."""
    if text is None or isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value / 1000.0 if millis else value


def fresh(sent_at: float | None, now: float, window: float) -> bool:
    """A delivery is fresh when it was sent within ``window`` seconds of ``now`` (a small
    clock skew into the future is allowed, as much as into the past)."""
    return sent_at is not None and abs(now - sent_at) <= window


class ReplayGuard:
    """Remembers delivery ids for ``window`` seconds: a second delivery with a seen id is a
    replay (or a retry of a delivery we already accepted).

    In memory, bounded (least recently seen ids are dropped past ``capacity``), per
    process. Several replicas do not share it; that is acceptable because accepting a
    replay costs one idempotent re-read of a ticket (the payload is never data) and the
    timestamp window bounds how old a replayed delivery can be on any replica.
    """

    def __init__(
        self, window: float, *, capacity: int = 50_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.window, self.capacity, self.clock = window, capacity, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery_id: str) -> bool:
        """True (and remembered) the first time ``delivery_id`` is seen within the window."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            if delivery_id in self._seen:
                return False
            self._seen[delivery_id] = now
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True

    def _expire(self, now: float) -> None:
        while self._seen:
            oldest, at = next(iter(self._seen.items()))
            if now - at <= self.window:
                break
            del self._seen[oldest]

    def __len__(self) -> int:
        return len(self._seen)
