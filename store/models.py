"""SQLAlchemy models of the store: records, findings and their history, runs, sync state.

The Alembic migrations in ``store/migrations/versions`` create exactly these tables; a
test compares the two so they cannot drift. Times are stored as UTC (naive in the
database, aware in Python) so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime in Python, a naive UTC timestamp in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    pass


class RecordRow(Base):
    """The newest normalised version of one source record (and its raw source JSON)."""

    __tablename__ = "records"
    __table_args__ = (
        UniqueConstraint("source", "key", name="uq_records_source_key"),
        Index("ix_records_source_deleted", "source", "deleted"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    process: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class FindingRow(Base):
    """One finding by fingerprint, with its lifecycle state (open / resolved / waived / gone)."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_source_state", "source", "state"),
        Index("ix_findings_rule", "rule"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    rule: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    process: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """When it ended (resolved or gone)."""
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why it ended: "no longer fails", "rule not selected" (resolved) or "record gone: ..." (gone)."""
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    assignee: Mapped[str | None] = mapped_column(String(200), nullable=True)
    group: Mapped[str | None] = mapped_column("group_name", String(200), nullable=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    waiver: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """Which waiver holds it while waived: ``W<id>`` (table) or ``config[<n>]``."""
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The engine's full finding (name, title, clause, remediation, ...) as last seen."""


class FindingEventRow(Base):
    """The history of a finding: opened, resolved, reopened, waived, unwaived."""

    __tablename__ = "finding_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    finding_id: Mapped[int] = mapped_column(
        ForeignKey("findings.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class RunRow(Base):
    """One sync run: per-source status, counts and errors (``sources`` JSON)."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    """running | ok | failed (some source failed) | interrupted (found unfinished later)."""
    as_of: Mapped[datetime] = mapped_column(UTCDateTime)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    sources: Mapped[dict[str, Any]] = mapped_column(JSON)


class WatermarkRow(Base):
    """The newest ``updated`` value committed per source and stream."""

    __tablename__ = "watermarks"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    stream: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[datetime] = mapped_column(UTCDateTime)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class WaiverRow(Base):
    """A waiver added with ``ticketlint waive add`` (config waivers are not stored)."""

    __tablename__ = "waivers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(200))
    """A record key or a shell glob (``OPS-1*``)."""
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    expires: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxRow(Base):
    """A notification to deliver: one digest per run per destination (never twice)."""

    __tablename__ = "notification_outbox"
    __table_args__ = (UniqueConstraint("run_id", "destination", name="uq_outbox_run_destination"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    destination: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    """pending | sent | failed"""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WritebackRow(Base):
    """What was written onto a ticket (label, comment, work note) and whether it stuck."""

    __tablename__ = "writeback_log"
    __table_args__ = (Index("ix_writeback_source_key", "source", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), nullable=True)
    source: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookDeliveryRow(Base):
    """A webhook delivery ``serve`` accepted (by the SHA-256 of its identity: body digest
    or delivery id): a replay within the window is refused by every replica that shares
    the store, not only by the one that saw it first."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_seen_at", "seen_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RereadRow(Base):
    """When ``serve`` last re-read a ticket from its source: replicas sharing the store
    re-read one ticket at most once per ``serve.reread_interval``."""

    __tablename__ = "serve_rereads"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
