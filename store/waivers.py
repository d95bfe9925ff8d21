"""Waivers: accepted exceptions to a rule for a record key or key glob, with an expiry.

Waivers come from two places, the config file (``waivers:``) and the ``waivers`` table
(``ticketlint waive add``). Both become :class:`WaiverRule` values that the lifecycle
diff matches against findings. A waiver is active up to and including its ``expires``
date; after that its findings reopen and the history says which waiver expired.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketlint.config import Config
from ticketlint.store.models import WaiverRow


class WaiverError(ValueError):
    """A waiver lacks its reason, owner or expiry, or names nothing sensible. Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class WaiverRule:
    id: str
    """``W<n>`` for a stored waiver, ``config[<i>]`` for one from the config file."""
    rule: str
    key: str
    reason: str
    owner: str
    expires: date
    source: str | None = None

    def matches(self, rule: str, source: str, key: str) -> bool:
        return (
            fnmatch.fnmatchcase(rule.upper(), self.rule.upper())
            and (self.source is None or self.source == source)
            and fnmatch.fnmatchcase(key, self.key)
        )

    def active(self, on: date) -> bool:
        return on <= self.expires

    def describe(self) -> str:
        return f"{self.id} ({self.rule} {self.key}, owner {self.owner}, until {self.expires.isoformat()})"


def validate(
    rule: str, key: str, reason: str | None, owner: str | None, expires: date | None
) -> None:
    problems = []
    if not rule or not rule.strip():
        problems.append("a rule code is required")
    if not key or not key.strip():
        problems.append("a record key or glob is required")
    if not reason or not reason.strip():
        problems.append("--reason is required: say why this is accepted")
    if not owner or not owner.strip():
        problems.append("--owner is required: who answers for it")
    if expires is None:
        problems.append("--expires is required (YYYY-MM-DD): waivers are never permanent")
    if problems:
        raise WaiverError("; ".join(problems))


def config_waivers(cfg: Config) -> list[WaiverRule]:
    return [
        WaiverRule(
            id=f"config[{i}]",
            rule=w.rule,
            key=w.key,
            reason=w.reason,
            owner=w.owner,
            expires=w.expires,
            source=w.source,
        )
        for i, w in enumerate(cfg.waivers)
    ]


def stored_waivers(session: Session) -> list[WaiverRule]:
    rows = session.scalars(select(WaiverRow).order_by(WaiverRow.id))
    return [_rule(row) for row in rows]


def _rule(row: WaiverRow) -> WaiverRule:
    return WaiverRule(
        id=f"W{row.id}",
        rule=row.rule,
        key=row.key,
        reason=row.reason,
        owner=row.owner,
        expires=row.expires,
        source=row.source,
    )


def all_waivers(session: Session, cfg: Config) -> list[WaiverRule]:
    return [*config_waivers(cfg), *stored_waivers(session)]


def find_waiver(
    waivers: Sequence[WaiverRule], rule: str, source: str, key: str, on: date
) -> tuple[WaiverRule | None, WaiverRule | None]:
    """(the active waiver covering the finding, else None; an expired one that would have)."""
    expired = None
    for w in waivers:
        if w.matches(rule, source, key):
            if w.active(on):
                return w, None
            expired = expired or w
    return None, expired


def add_waiver(
    session: Session,
    *,
    rule: str,
    key: str,
    reason: str | None,
    owner: str | None,
    expires: date | None,
    source: str | None = None,
    today: date | None = None,
) -> WaiverRule:
    validate(rule, key, reason, owner, expires)
    assert expires is not None and reason is not None and owner is not None
    today = today or datetime.now(timezone.utc).date()
    if expires < today:
        raise WaiverError(f"--expires {expires.isoformat()} is in the past")
    row = WaiverRow(
        rule=rule.strip().upper(),
        key=key.strip(),
        source=source or None,
        reason=reason.strip(),
        owner=owner.strip(),
        expires=expires,
        created_at=datetime.now(timezone.utc),
    )
    session.add(row)
    session.flush()
    return _rule(row)


def remove_waiver(session: Session, waiver_id: str) -> WaiverRule:
    """Remove a stored waiver by ``W3`` or ``3``; config waivers are edited in the file."""
    text = waiver_id.strip()
    if text.lower().startswith("config"):
        raise WaiverError(f"{text} comes from the config file: remove it there")
    number = text[1:] if text[:1] in "Ww" else text
    if not number.isdigit():
        raise WaiverError(
            f"{waiver_id!r} is not a waiver id (like W3); `ticketlint waive list` shows them"
        )
    row = session.get(WaiverRow, int(number))
    if row is None:
        raise WaiverError(f"no waiver {waiver_id}; `ticketlint waive list` shows them")
    rule = _rule(row)
    session.delete(row)
    return rule


def covering(waivers: Iterable[WaiverRule], rule: str, source: str, key: str) -> list[WaiverRule]:
    return [w for w in waivers if w.matches(rule, source, key)]
