"""Keyset paging of one Table API read: where the next page starts, and when to stop.

A :class:`KeysetPaginator` is the position of one read. It names the query of the next
page (:attr:`~KeysetPaginator.query`, :attr:`~KeysetPaginator.offset`), takes each answered
page (:meth:`~KeysetPaginator.take`: the rows not handed out before, the ``{}`` rows first
seen there) and says whether that page was the last (:meth:`~KeysetPaginator.last_page`).
It detects loops: a key that does not move forward (a server ignoring the query) raises
:class:`PagingStalled` instead of reading the same page forever.

We stop on an *empty* page, never a short one: ACLs filter rows after paging, so a page
may be short or hold ``{}`` rows. ``{}`` rows have no key, so the keyset advances from
the last row that has every key field. Decision for a page with *no* such row (every row
inaccessible): we cannot advance the key, and ending the read there could drop readable
rows behind it, so the next request repeats the same keyset query with
``sysparm_offset`` = rows seen since that key. The offset only ever counts rows after a
fixed key, so the skip risk is confined to those inaccessible rows changing between two
requests (the page says ``offset_fallback``, counted in ``report.warnings``). The offset
grows by the page length each time, so this ends (at the first empty page).

Counting a large table on every page is costly, so pages ask ``sysparm_no_count=true``
except the first and the one expected to be the last (from the previous count);
X-Total-Count is counted before ACLs, so a counted page whose ``offset + limit`` reaches
the count is the last and the closing empty request is saved. ``counted`` reads (small
``...IN`` reads) count every page.

No HTTP here: :meth:`ticketlint.connectors.servicenow.client.TableAPI.pages` sends the
requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ticketlint.connectors.servicenow.query import (
    UPDATE_KEY,
    first_id_query,
    first_page_query,
    next_id_query,
    next_page_query,
)


@dataclass(frozen=True)
class Keyset:
    """How one kind of read orders and resumes: the key fields and the two query forms."""

    fields: tuple[str, ...]
    first: Callable[[str], str]
    after: Callable[[str, tuple[str, ...]], str]

    def key_of(self, row: dict[str, Any]) -> tuple[str, ...] | None:
        """The row's key, or None when a key field is missing or empty."""
        values = tuple(v for v in (row.get(f) for f in self.fields) if isinstance(v, str) and v)
        return values if len(values) == len(self.fields) else None


def by_update(since_clause: str = "", key: tuple[str, str] = UPDATE_KEY) -> Keyset:
    """Parents: ``key`` = (replication key, primary key) from ``since_clause`` on."""
    return Keyset(
        key,
        lambda base: first_page_query(base, since_clause, key=key),
        lambda base, last: next_page_query(base, last[0], last[1], key=key),
    )


BY_ID = Keyset(("sys_id",), first_id_query, lambda base, key: next_id_query(base, key[0]))
"""Related rows: ``sys_id`` order (their parents' update time is the window, not theirs)."""


@dataclass
class Page:
    rows: list[dict[str, Any]]
    """Readable rows of this page not handed out before."""
    inaccessible: int = 0
    """``{}`` rows first seen on this page."""
    offset_fallback: bool = False


class PagingStalled(Exception):
    """The key of a page did not move past the previous one (the query was ignored)."""

    def __init__(self, key: tuple[str, ...]) -> None:
        super().__init__(f"paging did not advance past {key}")
        self.key = key


@dataclass
class _Position:
    key: tuple[str, ...] | None = None
    offset: int = 0
    seen_after_key: int = 0
    """Positions after ``key`` already handled (their ``{}`` rows counted)."""
    ids_after_key: set[str] = field(default_factory=set)
    """Readable rows after ``key`` that could not move it (already handed out)."""


class KeysetPaginator:
    """The position of one keyset read of rows matching ``base`` (module docstring)."""

    def __init__(self, keyset: Keyset, base: str, page_size: int, *, counted: bool = False):
        self.keyset = keyset
        self.base = base
        self.page_size = page_size
        self.counted = counted
        self._at = _Position()
        self._expected: int | None = None
        """Rows left after the current position, from the last count."""
        self._asked_offset = 0
        self._received = 0

    @property
    def query(self) -> str:
        """The encoded query of the next page."""
        ks, at = self.keyset, self._at
        return ks.first(self.base) if at.key is None else ks.after(self.base, at.key)

    @property
    def offset(self) -> int:
        """``sysparm_offset`` of the next page (0 unless a page held only ``{}`` rows)."""
        return self._at.offset

    @property
    def wants_count(self) -> bool:
        """Whether the next page should ask for X-Total-Count."""
        return self.counted or self._expected is None or self._expected <= self.page_size

    def take(self, rows: list[Any]) -> Page:
        """The answer to :attr:`query` (non-empty): what it holds that is new, and the
        position after it. Raises :class:`PagingStalled` when the key did not advance."""
        at, ks = self._at, self.keyset
        self._asked_offset, self._received = at.offset, len(rows)
        page = Page(rows=[])
        last_keyed: int | None = None
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or not row.get("sys_id"):
                if at.offset + i >= at.seen_after_key:  # not counted on an earlier page
                    page.inaccessible += 1
                continue
            if ks.key_of(row) is not None:
                last_keyed = i
            if row["sys_id"] not in at.ids_after_key:
                page.rows.append(row)
        if last_keyed is not None:
            new_key = ks.key_of(rows[last_keyed])
            assert new_key is not None
            if at.key is not None and new_key <= at.key:
                raise PagingStalled(at.key)
            tail = rows[last_keyed + 1 :]
            self._at = _Position(
                key=new_key,
                seen_after_key=len(tail),
                ids_after_key={
                    r["sys_id"] for r in tail if isinstance(r, dict) and r.get("sys_id")
                },
            )
        else:
            # Nothing on this page can carry the key forward: page on by offset after
            # the same key (see the module docstring for why and what it risks).
            at.offset += len(rows)
            at.seen_after_key = max(at.seen_after_key, at.offset)
            at.ids_after_key |= {r["sys_id"] for r in page.rows}
            page.offset_fallback = True
        return page

    def last_page(self, total: int | None) -> bool:
        """After :meth:`take`: whether the page just taken was the last one, given its
        X-Total-Count (None when the response carried none)."""
        if total is not None:
            if self._asked_offset + self.page_size >= total:
                return True  # every row that matched (ACL-hidden ones too) was on this page
            self._expected = total - self._asked_offset - self._received
        elif self._expected is not None:
            self._expected -= self._received
        return False
