"""One redaction function for every text that may hold a secret on its way to a person.

``config show``, ``config validate``, the log lines and the tracebacks on stderr all pass
through :func:`redact`, which replaces with ``***``:

- the password of a URL's user info (``postgresql://tl:***@db/tl``, ``https://u:***@host``);
  user info without a password is a token too (``https://***@host``);
- the value of a query parameter whose name says secret (``token``, ``api_key``,
  ``access_token``, ``sig``, ``password``, ``client_secret``, ...);
- ``password=...`` in a libpq key/value DSN or a connection string, and the value of an
  ``Authorization:`` header.

It is pure text substitution with no imports from the rest of ticketlint, so every
layer may use it; it never raises.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
SECRET_NAMES = (
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "sig",
    "signature",
    "auth",
    "code",
    "session",
    "sessionid",
    "jsessionid",
    "x-amz-signature",
    "x-amz-credential",
    "sp",
    "sv",
)
_NAMES = "|".join(re.escape(n) for n in sorted(SECRET_NAMES, key=len, reverse=True))
# scheme://user:password@host  and  scheme://token@host
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<info>[^\s/@?#'\"<>]+)@")
# ?token=...&  ;  also inside JSON-ish or log text
_QUERY = re.compile(
    rf"(?P<lead>[?&;](?:{_NAMES}|[A-Za-z0-9_.\-]*(?:token|secret|password|apikey|api_key)[A-Za-z0-9_.\-]*)=)"
    r"(?P<value>[^&#\s'\"<>]*)",
    re.IGNORECASE,
)
# password=xxx in a libpq DSN ("host=db password=xxx") or a connection string
_KEYVALUE = re.compile(
    r"(?P<lead>\b(?:password|passwd|pwd|client_secret|secret|token)\s*=\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s;,'\"&}]+)",
    re.IGNORECASE,
)
_AUTH_HEADER = re.compile(
    r"(?P<lead>\bAuthorization['\"]?\s*[:=]\s*['\"]?)(?P<value>[^'\"\n]+)", re.IGNORECASE
)


def _userinfo(m: re.Match[str]) -> str:
    info = m.group("info")
    user, sep, _password = info.partition(":")
    return f"{m.group('scheme')}{user}:{MASK}@" if sep else f"{m.group('scheme')}{MASK}@"


def _mask(value: str) -> str:
    """``***``, or the value itself when it is already a mask (``**********``)."""
    return value if value and set(value) <= {"*"} else MASK


def redact(text: Any) -> str:
    """``text`` with every URL password, secret query value, DSN password and
    Authorization header value replaced by ``***``."""
    if text is None:
        return ""
    out = str(text)
    if not out:
        return out
    out = _USERINFO.sub(_userinfo, out)
    out = _QUERY.sub(lambda m: m.group("lead") + _mask(m.group("value")), out)
    out = _AUTH_HEADER.sub(lambda m: m.group("lead") + MASK, out)
    out = _KEYVALUE.sub(lambda m: m.group("lead") + _mask(m.group("value")), out)
    return out


def redact_data(value: Any) -> Any:
    """Every string in a JSON-like structure through :func:`redact` (keys kept)."""
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_data(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


class RedactingFormatter(logging.Formatter):
    """A log formatter whose whole output (message, arguments and traceback) is redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
