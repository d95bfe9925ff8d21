"""ServiceNow authentication: a basic-auth session from pysnow, or OAuth bearer tokens.

pysnow. Basic auth takes its session from ``pysnow.Client(host=..., use_ssl=...)`` (the
session carries HTTP basic auth and JSON headers). We do *not* use ``pysnow.OAuthClient``:
it is built on requests-oauthlib, which refuses plain ``http://`` URLs (oauthlib's
InsecureTransportError, only lifted by a process-wide environment variable) and fetches
and refreshes tokens outside our retry layer, so ``/oauth_token.do`` is called here through
:class:`ticketlint.connectors.http.HttpClient` like every other request (password grant,
refreshed before expiry and on a 401). The write-back remote (``plugin/writeback``) uses
the same :class:`OAuthTokens`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import pysnow
import requests

from ticketlint.config import BasicAuth, OAuthPassword
from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth_token.do"
TOKEN_MARGIN_SECONDS = 60.0


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` with the token :class:`OAuthTokens` holds."""

    def __init__(self) -> None:
        self.token = ""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class OAuthTokens:
    """Password grant against ``/oauth_token.do``, refreshed before expiry and on a 401."""

    def __init__(
        self,
        http: HttpClient,
        auth: BearerAuth,
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
        # The pager's read-ahead thread and the caller's thread share the tokens: one
        # grant at a time, and a 401 seen by both refreshes once.
        self._lock = threading.RLock()

    def ensure(self) -> None:
        with self._lock:
            if not self.auth.token:
                self._grant(
                    {"grant_type": "password", "username": self._user, "password": self._password}
                )
            elif self.clock() >= self.expires_at:
                self._refresh()

    def refresh(self, refused: str | None = None) -> None:
        """A new token; with ``refused`` (the token a 401 answered), only when no other
        thread has replaced that token already."""
        with self._lock:
            if refused is not None and refused != self.auth.token:
                return
            self._refresh()

    def _refresh(self) -> None:
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
        self.auth.token = str(token)
        self.refresh_token = str(body.get("refresh_token") or self.refresh_token)
        expires_in = float(body.get("expires_in") or 1800)
        self.expires_at = self.clock() + expires_in - min(TOKEN_MARGIN_SECONDS, expires_in / 2)


def basic_session(base_url: str, auth: BasicAuth) -> requests.Session:
    """pysnow builds the basic-auth session (and its JSON headers); the base URL,
    including any path prefix, stays ours (pysnow only knows host + use_ssl)."""
    parts = urlsplit(base_url)
    client = pysnow.Client(
        host=parts.netloc,
        user=auth.user,
        password=auth.password.get_secret_value(),
        use_ssl=parts.scheme == "https",
    )
    session: requests.Session = client.session
    session.headers["User-Agent"] = "ticketlint"
    return session


def oauth_session(
    oauth: OAuthPassword,
    token_client: Callable[[requests.Session], HttpClient],
    clock: Callable[[], float],
) -> tuple[requests.Session, OAuthTokens]:
    """A session that sends the bearer token, and the tokens it sends (their own client,
    made by ``token_client``, has no bearer header: the token endpoint takes a form)."""
    bearer = BearerAuth()
    session = requests.Session()
    session.headers.update({"Accept": "application/json", "User-Agent": "ticketlint"})
    session.auth = bearer
    token_session = requests.Session()  # no bearer header on the token endpoint
    token_session.headers["User-Agent"] = "ticketlint"
    tokens = OAuthTokens(
        token_client(token_session),
        bearer,
        client_id=oauth.client_id,
        client_secret=oauth.client_secret.get_secret_value(),
        user=oauth.user,
        password=oauth.password.get_secret_value(),
        clock=clock,
    )
    return session, tokens
