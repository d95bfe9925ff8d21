"""Write-back planning: desired state per ticket vs. what the write-back log says was applied.

Desired state is a pure function of the open findings of one ticket (waived and resolved
ones do not count): the label is present iff there is at least one; the comment / work
note describes exactly that set (identified by :func:`~ticketlint.plugin.writeback.render.digest`).
The applied state is folded from the ``writeback_log`` rows of the ticket: the last
``done`` row of each action. Rows left ``pending`` (a crash between intent and
confirmation) or ``failed`` mark the applied state as unknown, so the write is planned
with ``verify=True``: the executor reads the ticket before writing anything.

Actions and their ``detail`` JSON in the log:

- ``jira.label``: ``{"add": label | null, "remove": [labels]}``
- ``jira.comment``: ``{"op": "add" | "edit", "comment_id": id, "rev": n, "findings": [codes]}``
- ``servicenow.work_note``: ``{"rev": n, "table": t, "sys_id": id, "findings": [codes]}``

The ``fingerprint`` column holds the digest of the finding set the write describes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketlint.config import Config, JiraSource, ServiceNowSource
from ticketlint.mapping.servicenow import DEFAULT_TABLES
from ticketlint.plugin.writeback.render import EMPTY_DIGEST, OpenFinding, digest
from ticketlint.store.models import FindingRow, RecordRow, WritebackRow

LABEL, COMMENT, NOTE = "jira.label", "jira.comment", "servicenow.work_note"
PENDING, DONE, FAILED, SUPERSEDED = "pending", "done", "failed", "superseded"
IN_CHUNK = 500  # keys per IN (...) query: under SQLite's bound-parameter limit


@dataclass(frozen=True, eq=False)
class PlannedWrite:
    """One intended write onto one ticket."""

    source: str
    key: str
    system: str
    """jira | servicenow"""
    action: str
    """jira.label | jira.comment | servicenow.work_note"""
    digest: str
    """Digest of the open-finding set this write brings the ticket to."""
    findings: tuple[OpenFinding, ...]
    target: dict[str, str]
    """Jira: ``{"issue": id-or-key}``; ServiceNow: ``{"table": t, "sys_id": id}``."""
    detail: dict[str, Any] = field(default_factory=dict)
    verify: bool = False
    """An earlier attempt did not confirm: read the ticket's state before writing."""

    def describe(self) -> str:
        codes = ", ".join(f.code for f in self.findings)
        what = f"{len(self.findings)} open: {codes}" if self.findings else "all resolved"
        if self.action == LABEL:
            parts = ([f"add label {self.detail['add']}"] if self.detail.get("add") else []) + [
                f"remove label {name}" for name in self.detail.get("remove", [])
            ]
            text = "; ".join(parts)
        elif self.action == COMMENT:
            text = f"{'edit' if self.detail.get('op') == 'edit' else 'add'} comment ({what})"
        else:
            text = f"add work note ({what})"
        return f"{self.source}/{self.key}: {text}" + (
            " [check the ticket first]" if self.verify else ""
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "key": self.key,
            "action": self.action,
            "digest": self.digest,
            "findings": [f.code for f in self.findings],
            "detail": self.detail,
            "verify": self.verify,
            "text": self.describe(),
        }


@dataclass
class Applied:
    """What the log says is on one ticket, and the unconfirmed attempts after it."""

    label: str | None = None
    comment_id: str | None = None
    comment_digest: str | None = None
    comment_rev: int = 0
    note_digest: str | None = None
    note_rev: int = 0
    unconfirmed: dict[str, list[WritebackRow]] = field(default_factory=lambda: defaultdict(list))

    @property
    def flagged(self) -> bool:
        """True when something of ours may still say "open findings" on the ticket."""
        return (
            self.label is not None
            or self.comment_digest not in (None, EMPTY_DIGEST)
            or self.note_digest not in (None, EMPTY_DIGEST)
            or any(self.unconfirmed.values())
        )


def fold(rows: Iterable[WritebackRow]) -> dict[str, Applied]:
    """Applied state per key from log rows in id order."""
    out: dict[str, Applied] = defaultdict(Applied)
    for row in rows:
        a = out[row.key]
        if row.state == DONE:
            a.unconfirmed[row.action] = []
            d = row.detail or {}
            if row.action == LABEL:
                a.label = d.get("add") or None
            elif row.action == COMMENT:
                if "comment_id" in d:
                    a.comment_id = str(d["comment_id"]) if d["comment_id"] else None
                a.comment_digest, a.comment_rev = (
                    row.fingerprint,
                    int(d.get("rev") or a.comment_rev),
                )
            elif row.action == NOTE:
                a.note_digest, a.note_rev = row.fingerprint, int(d.get("rev") or a.note_rev)
        elif row.state in (PENDING, FAILED):
            a.unconfirmed[row.action].append(row)
    return out


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


def log_rows(
    session: Session, source: str, keys: Sequence[str] | None = None
) -> list[WritebackRow]:
    if keys is None:
        return list(
            session.scalars(
                select(WritebackRow).where(WritebackRow.source == source).order_by(WritebackRow.id)
            )
        )
    rows: list[WritebackRow] = []
    for chunk in _chunks(list(keys)):
        rows += session.scalars(
            select(WritebackRow).where(WritebackRow.source == source, WritebackRow.key.in_(chunk))
        )
    return sorted(rows, key=lambda r: r.id)


def stored_open(
    session: Session, source: str, keys: Sequence[str] | None = None
) -> dict[str, list[OpenFinding]]:
    """Open findings per key from the store (waived and resolved ones are not open)."""
    stmt = select(
        FindingRow.fingerprint,
        FindingRow.key,
        FindingRow.rule,
        FindingRow.severity,
        FindingRow.message,
        FindingRow.detail,
    ).where(FindingRow.source == source, FindingRow.state == "open")
    out: dict[str, list[OpenFinding]] = defaultdict(list)
    chunks: Iterable[Sequence[str] | None] = [None] if keys is None else _chunks(list(keys))
    for chunk in chunks:
        q = stmt if chunk is None else stmt.where(FindingRow.key.in_(chunk))
        for fp, key, rule, severity, message, detail in session.execute(q):
            out[key].append(
                OpenFinding.from_detail(
                    fp, detail or {}, code=rule, severity=severity, message=message
                )
            )
    return dict(out)


def record_targets(session: Session, source: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per key: process, native id and deleted flag of the stored record."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(keys)):
        for key, process, data, deleted in session.execute(
            select(RecordRow.key, RecordRow.process, RecordRow.data, RecordRow.deleted).where(
                RecordRow.source == source, RecordRow.key.in_(chunk)
            )
        ):
            out[key] = {
                "process": process,
                "native_id": (data or {}).get("native_id"),
                "deleted": deleted,
            }
    return out


def servicenow_table(source_cfg: ServiceNowSource, process: str) -> str | None:
    return {**DEFAULT_TABLES, **source_cfg.tables}.get(process)


def plan_source(
    session: Session,
    cfg: Config,
    source_cfg: JiraSource | ServiceNowSource,
    *,
    keys: Sequence[str] | None = None,
    desired: Mapping[str, Sequence[OpenFinding]] | None = None,
) -> tuple[list[PlannedWrite], list[str]]:
    """The writes that bring the tickets of one source to their desired state.

    ``desired`` (open findings per key) defaults to the store's; ``keys`` limits the plan
    to those tickets. Returns the writes and the keys skipped (record deleted or unknown).
    """
    opts = cfg.writeback
    wanted = dict(desired) if desired is not None else stored_open(session, source_cfg.name, keys)
    if keys is not None:
        keyset = set(keys)
        wanted = {k: v for k, v in wanted.items() if k in keyset}
    applied = fold(log_rows(session, source_cfg.name, keys))
    candidates = sorted(
        {k for k, v in wanted.items() if v} | {k for k, a in applied.items() if a.flagged}
    )
    if keys is not None:
        candidates = [k for k in candidates if k in set(keys)]
    targets = record_targets(session, source_cfg.name, candidates)
    plans: list[PlannedWrite] = []
    skipped: list[str] = []
    for key in candidates:
        rec = targets.get(key)
        if rec is None or rec["deleted"]:
            skipped.append(key)  # nothing to write onto: the record is gone at the source
            continue
        findings = tuple(wanted.get(key, ()))
        a = applied.get(key) or Applied()
        d = digest(f.fingerprint for f in findings)
        if isinstance(source_cfg, JiraSource):
            if rec["process"] == "ci":
                # A Jira CI is an Assets object, not an issue: it has no labels or comments,
                # and its object id must never be sent to the issue API (it may be an issue's).
                skipped.append(key)
                continue
            target = {"issue": str(rec["native_id"] or key)}
            plans += _plan_jira(
                source_cfg.name, key, findings, d, a, target, opts.label, opts.comment
            )
        else:
            table = servicenow_table(source_cfg, rec["process"])
            if table is None or not rec["native_id"]:
                skipped.append(key)
                continue
            target = {"table": table, "sys_id": str(rec["native_id"])}
            plans += _plan_servicenow(source_cfg.name, key, findings, d, a, target)
    return plans, skipped


def _plan_jira(
    source: str,
    key: str,
    findings: tuple[OpenFinding, ...],
    d: str,
    a: Applied,
    target: dict[str, str],
    label: str,
    comment: bool,
) -> list[PlannedWrite]:
    out: list[PlannedWrite] = []
    want = label if findings else None
    unconfirmed_label = a.unconfirmed[LABEL]
    tried = {str(r.detail.get("add")) for r in unconfirmed_label if (r.detail or {}).get("add")}
    remove = sorted((({a.label} if a.label else set()) | tried) - {want})
    if (want is not None and (a.label != want or unconfirmed_label)) or remove:
        out.append(
            PlannedWrite(
                source,
                key,
                "jira",
                LABEL,
                d,
                findings,
                target,
                {"add": want, "remove": remove},
                verify=bool(unconfirmed_label),
            )
        )
    if comment:
        unconfirmed = a.unconfirmed[COMMENT]
        if findings:
            needed = a.comment_digest != d
        else:  # say "resolved" only where a comment of ours says otherwise
            needed = a.comment_id is not None and a.comment_digest != EMPTY_DIGEST
        if needed or unconfirmed:
            rev = (
                max([a.comment_rev, *[int((r.detail or {}).get("rev") or 0) for r in unconfirmed]])
                + 1
            )
            out.append(
                PlannedWrite(
                    source,
                    key,
                    "jira",
                    COMMENT,
                    d,
                    findings,
                    target,
                    {
                        "op": "edit" if a.comment_id else "add",
                        "comment_id": a.comment_id,
                        "rev": rev,
                        "findings": [f.code for f in findings],
                    },
                    verify=bool(unconfirmed),
                )
            )
    return out


def _plan_servicenow(
    source: str,
    key: str,
    findings: tuple[OpenFinding, ...],
    d: str,
    a: Applied,
    target: dict[str, str],
) -> list[PlannedWrite]:
    unconfirmed = a.unconfirmed[NOTE]
    needed = a.note_digest != d if findings else a.note_digest not in (None, EMPTY_DIGEST)
    if not (needed or unconfirmed):
        return []
    rev = max([a.note_rev, *[int((r.detail or {}).get("rev") or 0) for r in unconfirmed]]) + 1
    return [
        PlannedWrite(
            source,
            key,
            "servicenow",
            NOTE,
            d,
            findings,
            target,
            {
                "rev": rev,
                **target,
                "findings": [f.code for f in findings],
                "previous": a.note_digest,
            },
            verify=bool(unconfirmed),
        )
    ]
