"""Paginators of the Jira APIs: objects that know where the next page starts and detect
loops, so a server (or a proxy) that ignores the paging parameters fails the read instead
of repeating it forever.

- :class:`TokenPaginator`: ``nextPageToken`` paging (Cloud search, changelog bulkfetch);
  a token seen twice is a loop.
- :class:`StartAtPaginator`: ``startAt`` paging (Data Center search), advancing by the
  number of items actually received, never by what was asked; an answer for another
  ``startAt`` than the one asked is a loop.

No HTTP here: the callers send the requests and turn :class:`PagingLoop` into a
:class:`~ticketlint.connectors.base.SourceError` in their own words.
"""

from __future__ import annotations

from typing import Any


class PagingLoop(Exception):
    """The server answered a position it had already given, or another than was asked."""


class TokenPaginator:
    """``nextPageToken`` paging: :attr:`token` is what the next request sends."""

    def __init__(self) -> None:
        self.token: str | None = None
        self._seen: set[str] = set()

    def advance(self, token: Any, *, last: bool = False) -> bool:
        """Take the token of the page just read; False when that page was the last
        (no token, or ``last``). Raises :class:`PagingLoop` on a token seen before."""
        self.token = token
        if not token or last:
            return False
        if token in self._seen:
            raise PagingLoop(f"nextPageToken {token!r} repeated")
        self._seen.add(token)
        return True


class StartAtPaginator:
    """``startAt`` paging: :attr:`start` is what the next request asks for."""

    def __init__(self) -> None:
        self.start = 0

    def check(self, answered: Any) -> None:
        """Raise :class:`PagingLoop` when the server answered another ``startAt``."""
        if isinstance(answered, int) and answered != self.start:
            raise PagingLoop(f"answered startAt={answered} when asked for {self.start}")

    def advance(self, received: int, total: Any) -> bool:
        """Move past the ``received`` items of the page just read; False when it was the
        last (empty, or the position reached ``total``)."""
        self.start += received  # what the server gave, never what was asked
        return bool(received) and not (isinstance(total, int) and self.start >= total)
