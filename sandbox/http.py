"""The sandbox's transport-neutral request and response values and its credentials."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Credentials:
    """What the sandbox accepts. Defaults are what ``ticketlint demo`` configures."""

    jira_email: str = "ticketlint@example.com"
    jira_token: str = "sandbox-jira-token"
    jira_pat: str = "sandbox-jira-pat"
    snow_user: str = "svc_ticketlint"
    snow_password: str = "sandbox-snow-password"
    oauth_client_id: str = "ticketlint"
    oauth_client_secret: str = "sandbox-oauth-secret"


@dataclass
class Request:
    method: str
    target: str  # path + query string as received
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path.rstrip("/") or "/"
        self.query = parse_qs(parts.query, keep_blank_values=True)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        if not self.body:
            return None
        return json.loads(self.body.decode("utf-8"))

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, secret = base64.b64decode(value[6:].strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user, secret

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:].strip() if value.lower().startswith("bearer ") else None


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


def json_response(status: int, body: Any, **headers: str) -> Response:
    return Response(status, body, {"Content-Type": "application/json;charset=UTF-8", **headers})
