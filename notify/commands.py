"""``ticketlint notify``: test a destination, preview a payload, see and retry the outbox.

``notify test NAME`` posts a sample digest directly (not through the outbox) and exits 2
with the reason when the platform refuses it. ``notify preview NAME [--run ID]`` prints
the JSON body that destination gets for a run (the queued payload when there is one,
else rebuilt from the store; a sample when the store has no run). ``notify status`` lists
the outbox; ``notify retry ID`` sends one message again (also an ``unconfirmed`` one).
Webhook URLs are never printed.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click
from sqlalchemy import select

from ticketlint.config import Config, NotifyDestination
from ticketlint.notify import outbox
from ticketlint.notify.digest import Digest, build_digest, sample_items
from ticketlint.notify.formatters import format_digest
from ticketlint.notify.transport import DeliveryError, send
from ticketlint.store.models import OutboxRow, RunRow
from ticketlint.sync.cli_support import config_of, fail, store_exists, store_of


def _destination(cfg: Config, name: str) -> NotifyDestination:
    for dest in cfg.notify:
        if dest.name == name:
            return dest
    known = ", ".join(d.name for d in cfg.notify) or "none configured"
    fail(f"no notify destination named {name!r} (known: {known})")


def _now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def sample_digest(dest: NotifyDestination, report_url: str | None = None) -> Digest:
    """The sample digest, shown whatever the destination's filters (it is a test)."""
    open_dest = dest.model_copy(
        update={"min_severity": "info", "processes": [], "sources": [], "groups": [], "rules": []}
    )
    return build_digest(
        open_dest,
        sample_items(),
        run_id=None,
        as_of=_now_iso(),
        kind="sample",
        dedup_id=f"ticketlint:sample:{dest.name}",
        report_url=report_url,
    )


@click.group("notify")
def notify() -> None:
    """Chat notifications: test a destination, preview its payload, see and retry the outbox."""


@notify.command("test")
@click.argument("name")
@click.pass_context
def notify_test(ctx: click.Context, name: str) -> None:
    """Post a sample digest to destination NAME now (not through the outbox)."""
    cfg = config_of(ctx)
    dest = _destination(cfg, name)
    digest = sample_digest(dest, cfg.report_url)
    try:
        status = send(dest, format_digest(dest.type, digest), dedup_id=digest.dedup_id)
    except DeliveryError as exc:
        fail(str(exc))
    click.echo(f"sent a sample digest to {name} ({dest.type}, HTTP {status})")


@notify.command("preview")
@click.argument("name")
@click.option("--run", "run_id", type=int, help="This run (default: the newest).")
@click.pass_context
def notify_preview(ctx: click.Context, name: str, run_id: int | None) -> None:
    """Print the JSON body destination NAME gets for a run (or a sample without runs)."""
    cfg = config_of(ctx)
    dest = _destination(cfg, name)
    if run_id is None and not store_exists(cfg):
        click.echo("no store yet: showing a sample digest", err=True)
        sample = format_digest(dest.type, sample_digest(dest, cfg.report_url))
        click.echo(json.dumps(sample, indent=2, ensure_ascii=False))
        return
    store = store_of(cfg)
    body: dict[str, Any] | None  # None: a queued payload that holds no body
    with store.session() as s:
        if run_id is None:
            run_id = s.scalar(
                select(RunRow.id).where(RunRow.status != "running").order_by(RunRow.id.desc())
            )
        if run_id is None:
            click.echo("no run in the store yet: showing a sample digest", err=True)
            body = format_digest(dest.type, sample_digest(dest, cfg.report_url))
        else:
            row = s.scalar(
                select(OutboxRow).where(OutboxRow.run_id == run_id, OutboxRow.destination == name)
            )
            if row is not None:
                click.echo(f"run {run_id}: the queued message {row.id} ({row.state})", err=True)
                body = (row.payload or {}).get("body")
            else:
                try:
                    items, failed, as_of = outbox.items_of_stored_run(s, run_id)
                except LookupError as exc:
                    fail(str(exc))
                digest = build_digest(
                    dest,
                    items,
                    run_id=run_id,
                    as_of=outbox._iso(as_of or datetime.now(timezone.utc)),
                    failed_sources=failed,
                    report_url=cfg.report_url,
                )
                note = "" if digest.has_news or dest.always else " (nothing new: it was not posted)"
                click.echo(f"run {run_id}: rebuilt from the store{note}", err=True)
                body = format_digest(dest.type, digest)
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


@notify.command("status")
@click.option(
    "--state",
    help="Only rows in this state (pending, sending, sent, failed, gave_up, unconfirmed).",
)
@click.option("--limit", type=int, default=50, show_default=True, help="Newest rows shown.")
@click.pass_context
def notify_status(ctx: click.Context, state: str | None, limit: int) -> None:
    """The outbox: destination, run, state, attempts and last error of each message."""
    store = store_of(config_of(ctx))
    with store.session() as s:
        stmt = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
        if state:
            stmt = stmt.where(OutboxRow.state == state)
        rows = list(s.scalars(stmt))
    if not rows:
        click.echo("the outbox is empty")
        return
    lines = [
        (
            f"{'ID':>5}  {'DESTINATION':<16} {'RUN':>5}  {'STATE':<11} {'TRIES':>5}  {'CREATED':<16}  "
            f"{'SENT':<16}  LAST ERROR"
        )
    ]
    for r in reversed(rows):
        run = str(r.run_id) if r.run_id is not None else "-"
        lines.append(
            f"{r.id:>5}  {r.destination:<16} {run:>5}  {r.state:<11} {r.attempts:>5}  "
            f"{_when(r.created_at):<16}  {_when(r.sent_at):<16}  {r.last_error or ''}"
        )
    click.echo("\n".join(lines))


@notify.command("retry")
@click.argument("row_id", metavar="ID", type=int)
@click.pass_context
def notify_retry(ctx: click.Context, row_id: int) -> None:
    """Send outbox message ID again (failed, gave up or unconfirmed: it may post twice)."""
    cfg = config_of(ctx)
    store = store_of(cfg)
    with store.session() as s:
        row: Any = s.get(OutboxRow, row_id)
    if row is None:
        fail(f"no outbox message {row_id}; `ticketlint notify status` lists them")
    if row.state == outbox.SENT:
        fail(f"message {row_id} was sent on {_when(row.sent_at)}; not sending it twice")
    _destination(cfg, row.destination)
    if not outbox.retry(store, cfg, row_id):
        with store.session() as s:
            after = s.get(OutboxRow, row_id)
        fail(
            after.last_error
            if after is not None and after.last_error
            else f"message {row_id} was not sent"
        )
    click.echo(f"message {row_id} sent to {row.destination}")


COMMANDS = [notify]
