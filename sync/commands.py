"""CLI commands of the sync package: ``sync``, ``findings``, ``waive`` and ``db``.

``cli.py`` adds every command in :data:`COMMANDS` to the ``ticketlint`` group. Results go
to stdout, progress and errors to stderr. Exit codes: 0 done (findings are data), 2 a
source failed, a source returned records and none of them could be checked (as ``check``),
or a usage / config / database error. A second concurrent ``sync`` exits 0.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

import click

from ticketlint.config import Config, ConfigError, load_config
from ticketlint.escaping import plain_text
from ticketlint.redact import redact
from ticketlint.rules.registry import Pack, Registry, RuleSelectionError
from ticketlint.rules.selection import registry_from_config, waiver_rule_problem
from ticketlint.store import repository as repo
from ticketlint.store.db import StoreError, current_revision, head_revision
from ticketlint.store.findings_view import FORMATS, render_findings, render_show
from ticketlint.store.lifecycle import Diff
from ticketlint.store.waivers import WaiverError, add_waiver, all_waivers, remove_waiver
from ticketlint.sync.cli_support import (
    check_output_path,
    config_of,
    config_path,
    fail,
    store_of,
    write_output,
)
from ticketlint.sync.hooks import RunHooks
from ticketlint.sync.progress import (
    Progress,
    json_logging,
    read_note,
    summary_table,
    unchecked_lines,
    unreadable_lines,
)
from ticketlint.sync.runner import (
    ENGINE_ENV,
    SyncOptions,
    SyncResult,
    SyncRunner,
    default_engine_factory,
)

_RELATIVE = re.compile(r"^(\d+)\s*([dhm])$")


def standard_hooks(options: SyncOptions) -> RunHooks:
    """The product's chat and write-back hooks for a run with these options.

    Imported only when the options ask for them, so a ``--no-notify --no-writeback`` run
    never loads (or breaks on) those packages; a broken install says so here, loudly.
    """
    enqueue = drain = writeback = preview = None
    if options.notify and not options.dry_run:
        from ticketlint import notify

        enqueue, drain = notify.enqueue, notify.drain
    if options.writeback:
        from ticketlint.plugin import writeback as wb

        writeback, preview = wb.after_sync, wb.preview
    return RunHooks(enqueue=enqueue, drain=drain, writeback=writeback, preview=preview)


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """An instant: ISO date or datetime (UTC when no zone is given), or ``7d`` / ``12h`` ago."""
    now = now or datetime.now(timezone.utc)
    m = _RELATIVE.match(text.strip())
    if m:
        amount, unit = int(m.group(1)), m.group(2)
        return now - timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: amount})
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO date/time (2026-03-01, 2026-03-01T09:00Z) "
            "or a relative age (7d, 12h)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class When(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        return value if isinstance(value, datetime) else parse_when(str(value))


# --- sync ----------------------------------------------------------------------------


@click.command("sync")
@click.option("--source", help="Sync only this configured source.")
@click.option(
    "--full",
    is_flag=True,
    help="Reconcile: re-read everything; findings of records no longer read (deleted, or "
    "outside the configured scope) end as gone. Also every sync.reconcile_every runs.",
)
@click.option("--as-of", "as_of", type=When(), help="Evaluate as of this instant (default: now).")
@click.option("--dry-run", is_flag=True, help="Read and evaluate, print the diff, write nothing.")
@click.option("--no-notify", is_flag=True, help="Do not queue or send chat notifications.")
@click.option("--no-writeback", is_flag=True, help="Do not write labels or comments onto tickets.")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Processes that evaluate the stored records after the read (default: one per CPU, "
    "at most 8, for a source of 2,000 stored records or more, else 1).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Every line sync writes as text or as JSON lines (for log collectors): progress, "
    "warnings, failures and the summary on stderr, the results on stdout.",
)
@click.pass_context
def sync(
    ctx: click.Context,
    source: str | None,
    full: bool,
    as_of: datetime | None,
    dry_run: bool,
    no_notify: bool,
    no_writeback: bool,
    jobs: int | None,
    log_format: str,
) -> None:
    """Read changed records, re-evaluate every stored record and record the findings' history."""
    json_lines = log_format == "json"
    root = ctx.find_root().obj
    quiet = getattr(root, "verbosity", 0) < 0
    progress = Progress(fmt=log_format, quiet=quiet)
    with json_logging(json_lines):
        cfg = _config_or_fail(ctx, progress)
        _sync(cfg, progress, source, full, as_of, dry_run, no_notify, no_writeback, jobs)


def _config_or_fail(ctx: click.Context, progress: Progress) -> Config:
    if progress.fmt != "json":
        return config_of(ctx)
    try:
        return load_config(config_path(ctx))
    except ConfigError as exc:
        _fail(progress, str(exc))


def _fail(progress: Progress, message: str) -> NoReturn:
    """``fail`` (exit 2), as a JSON ``error`` event under ``--log-format json``."""
    if progress.fmt != "json":
        fail(message)
    progress.event("error", redact(message), level="error")
    sys.exit(2)


def _sync(
    cfg: Config,
    progress: Progress,
    source: str | None,
    full: bool,
    as_of: datetime | None,
    dry_run: bool,
    no_notify: bool,
    no_writeback: bool,
    jobs: int | None = None,
) -> None:
    options = SyncOptions(
        source=source,
        full=full,
        as_of=as_of,
        dry_run=dry_run,
        notify=not no_notify,
        writeback=not no_writeback,
        jobs=jobs,
    )
    try:
        with _sigterm_as_interrupt():
            result = SyncRunner(
                cfg, options, progress=progress, hooks=standard_hooks(options)
            ).run()
    except (ConfigError, StoreError) as exc:
        _fail(progress, str(exc))
    except (ImportError, ValueError) as exc:  # rule selection errors are ValueErrors
        _fail(progress, f"{type(exc).__name__}: {exc}")
    if result.interrupted is not None:
        done = [s.name for s in result.sources if s.status == "ok"]
        saved = (
            f"{', '.join(done)} committed (records, findings and watermarks saved)"
            if done
            else "nothing committed"
        )
        message = (
            f"interrupted: {saved}; {', '.join(result.pending)} not finished (findings and "
            "watermarks unchanged: the next sync reads from the previous watermark); "
            f"run {result.run_id or '(dry run)'} marked interrupted"
        )
        if progress.fmt == "json":
            progress.event(
                "interrupted", message, level="error", run_id=result.run_id, pending=result.pending
            )
        else:
            click.echo(message, err=True)
        sys.exit(result.exit_code)
    if result.busy:
        progress.event("busy", f"{result.busy}; nothing done")
        sys.exit(0)
    if progress.fmt == "json":
        _results_json(result, dry_run)
    else:
        _results_text(result, dry_run)
    _source_events(result, progress)
    progress.event(
        "summary",
        f"run {result.run_id or '(dry run)'} finished with exit code {result.exit_code}",
        run_id=result.run_id,
        sources={s.name: s.to_dict(not_checked_limit=None) for s in result.sources},
    )
    sys.exit(result.exit_code)


def _results_text(result: SyncResult, dry_run: bool) -> None:
    if dry_run:
        click.echo(render_diff(result), nl=False)
    click.echo(summary_table([s.summary() for s in result.sources]))
    for s in result.sources:
        if s.status == "ok":  # indented: a line starting with the source name is the demo's
            click.echo("  " + s.reads_text())
        note = read_note(s.name, s.report) if s.status == "ok" else None
        if note:
            click.echo(note)
        for line in unchecked_lines(s.name, s.not_checked) + unreadable_lines(
            s.name, s.report.unreadable
        ):
            click.echo(line)


def _source_events(result: SyncResult, progress: Progress) -> None:
    """Per source on stderr, after the results: a failure, or records not checked."""
    for s in result.sources:
        if s.error:
            # The runner logged the failure as it happened (a ``source_failed`` event);
            # the text format repeats it under the table, where a person looks last.
            if progress.fmt != "json":
                click.echo(redact(f"{s.name}: FAILED: {s.error}"), err=True)
        elif s.none_checked:
            progress.event(
                "none_checked",
                f"{s.name}: none of the {s.report.rows or len(s.not_checked)} records read "
                "could be checked (listed above); fix the mapping, then `ticketlint sync "
                "--full` reads them again",
                level="error",
                source=s.name,
                not_checked=len(s.not_checked),
            )
        elif s.not_checked:
            progress.event(
                "not_checked",
                f"{s.name}: {len(s.not_checked)} records not checked (listed above)",
                level="warning",
                source=s.name,
                not_checked=len(s.not_checked),
            )


def _results_json(result: SyncResult, dry_run: bool) -> None:
    """stdout under ``--log-format json``: the dry run's changes and the summary table's
    rows as JSON lines (the lists of records not checked and of values not read are in
    the ``summary`` event on stderr, every one with key and reason)."""
    out = Progress(sys.stdout, fmt="json")
    if dry_run:
        for change in diff_changes(result):
            out.event("diff", change.pop("line"), **change)
    for s in result.sources:
        out.row(
            s.summary(),
            reads=s.reads_text() if s.status == "ok" else None,
            note=read_note(s.name, s.report) if s.status == "ok" else None,
        )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (systemd stop, kill) stops a sync like Ctrl-C: the current source rolls
    back, the run is marked interrupted, exit code 130 (143 would say less)."""

    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def diff_changes(result: SyncResult) -> list[dict[str, str]]:
    """The run's changes a dry run shows (open and still-waived findings left out), each
    with its text ``line``."""
    out = []
    for s in result.sources:
        diff: Diff = s.diff
        for c in diff.changes:
            if c.kind in ("open", "still_waived"):
                continue
            f = c.finding
            if f is not None:
                rule, key, why = f.code, f.key, f.message
            else:
                # no finding this run: a resolution, which always carries the stored one
                assert c.previous is not None
                rule, key, why = c.previous.rule, c.previous.key, c.resolution or ""
            out.append(
                {
                    # a terminal line: the ticket's key and text made inert (escapes shown)
                    "line": f"{c.kind:<9} {rule:<7} {s.name}/{plain_text(key)}: {plain_text(why)}",
                    "kind": c.kind,
                    "rule": rule,
                    "source": s.name,
                    "key": key,
                    "why": why,
                }
            )
    return out


def render_diff(result: SyncResult) -> str:
    lines = [change["line"] for change in diff_changes(result)]
    return "\n".join(lines) + ("\n\n" if lines else "")


# --- findings ------------------------------------------------------------------------


@click.group("findings", invoke_without_command=True)
@click.option(
    "--state",
    type=click.Choice(["open", "resolved", "waived", "gone", "all"]),
    default="open",
    show_default=True,
)
@click.option("--rule", help="Only this rule code.")
@click.option("--source", help="Only this source.")
@click.option("--assignee", help="Only findings assigned to this person (as shown).")
@click.option("--group", "group_", help="Only this assignment group.")
@click.option(
    "--since", type=When(), help="Only findings with history at or after this time (or 7d)."
)
@click.option(
    "-f", "--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.pass_context
def findings(
    ctx: click.Context,
    state: str,
    rule: str | None,
    source: str | None,
    assignee: str | None,
    group_: str | None,
    since: datetime | None,
    fmt: str,
    output: Path | None,
) -> None:
    """List stored findings (``findings show ID`` shows one with its history)."""
    if ctx.invoked_subcommand is not None:
        return
    if output is not None:
        check_output_path(output)
    store = store_of(config_of(ctx))
    with store.session() as s:
        rows = repo.query_findings(
            s, state=state, rule=rule, source=source, assignee=assignee, group=group_, since=since
        )
        text = render_findings(rows, fmt)
    if output is not None:
        write_output(output, text)
    else:
        click.echo(text, nl=False)


@findings.command("show")
@click.argument("ref", metavar="ID")
@click.pass_context
def findings_show(ctx: click.Context, ref: str) -> None:
    """One finding by id or fingerprint prefix: rule, record, evidence and history."""
    store = store_of(config_of(ctx))
    with store.session() as s:
        try:
            row = repo.find_finding(s, ref)
        except repo.AmbiguousReference as exc:
            fail(str(exc))
        if row is None:
            fail(f"no finding {ref!r}; `ticketlint findings --state all` lists them")
        click.echo(
            render_show(
                row, repo.finding_events(s, row.id), repo.get_record(s, row.source, row.key)
            ),
            nl=False,
        )


# --- waive ---------------------------------------------------------------------------


@click.group("waive")
def waive() -> None:
    """Accept a rule's findings for a key or key glob, with a reason, an owner and an expiry."""


@waive.command("add")
@click.argument("rule")
@click.argument("key")
@click.option("--reason", help="Why this is accepted (required).")
@click.option("--owner", help="Who answers for it (required).")
@click.option("--expires", type=click.DateTime(formats=["%Y-%m-%d"]), help="YYYY-MM-DD (required).")
@click.option("--source", help="Only findings of this source.")
@click.pass_context
def waive_add(
    ctx: click.Context,
    rule: str,
    key: str,
    reason: str | None,
    owner: str | None,
    expires: datetime | None,
    source: str | None,
) -> None:
    """Waive RULE for KEY (a record key or a glob such as 'OPS-1*')."""
    cfg = config_of(ctx)
    if source and cfg.sources and source not in {s.name for s in cfg.sources}:
        fail(f"--source {source!r} is not a configured source")
    problem = waiver_rule_problem(rule, _known_rules(cfg))
    if problem:
        fail(f"{problem}; nothing was added")
    store = store_of(cfg)
    now = datetime.now(timezone.utc)
    try:
        with store.session() as s, s.begin():
            w = add_waiver(
                s,
                rule=rule,
                key=key,
                reason=reason,
                owner=owner,
                expires=expires.date() if expires else None,
                source=source,
                today=now.date(),
            )
            count = repo.waive_matching(s, w, today=now.date(), now=now)
    except WaiverError as exc:
        fail(str(exc))
    click.echo(
        f"added waiver {w.id}: {w.rule} {w.key} until {w.expires.isoformat()} "
        f"({count} open finding{'s' if count != 1 else ''} now waived)"
    )


def _known_rules(cfg: Any) -> Registry:
    """The rules a waiver may name: the registry a sync evaluates with (the runner's
    engine test hook stands in for it when set)."""
    try:
        if os.environ.get(ENGINE_ENV):
            engine = default_engine_factory(cfg)
            return Registry([Pack("hook", tuple(engine.rules))])
        return registry_from_config(cfg)
    except (RuleSelectionError, ImportError, ValueError) as exc:
        fail(str(exc))


@waive.command("list")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def waive_list(ctx: click.Context, fmt: str) -> None:
    """Waivers from the config file and from ``waive add``; expired ones are marked."""
    cfg = config_of(ctx)
    store = store_of(cfg)
    with store.session() as s:
        waivers = all_waivers(s, cfg)
    today = date.today()
    if fmt == "json":
        import json

        click.echo(
            json.dumps(
                [
                    {
                        "id": w.id,
                        "rule": w.rule,
                        "key": w.key,
                        "source": w.source,
                        "reason": w.reason,
                        "owner": w.owner,
                        "expires": w.expires.isoformat(),
                        "expired": not w.active(today),
                    }
                    for w in waivers
                ],
                indent=2,
            )
        )
        return
    if not waivers:
        click.echo("No waivers.")
    for w in waivers:
        flag = "  EXPIRED" if not w.active(today) else ""
        click.echo(
            f"{w.id:<10} {w.rule:<7} {w.key:<16} {w.source or '*':<12} until "
            f"{w.expires.isoformat()}  {w.owner}: {w.reason}{flag}"
        )


@waive.command("remove")
@click.argument("waiver_id", metavar="ID")
@click.pass_context
def waive_remove(ctx: click.Context, waiver_id: str) -> None:
    """Remove a waiver added with ``waive add`` (its findings reopen)."""
    cfg = config_of(ctx)
    store = store_of(cfg)
    try:
        with store.session() as s, s.begin():
            w = remove_waiver(s, waiver_id)
            count = repo.unwaive(s, w.id, now=datetime.now(timezone.utc))
    except WaiverError as exc:
        fail(str(exc))
    click.echo(f"removed waiver {w.id} ({count} finding{'s' if count != 1 else ''} reopened)")


# --- db ------------------------------------------------------------------------------


@click.group("db")
def db() -> None:
    """The store's schema (SQLite or PostgreSQL)."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the database to the newest schema (sync does this by itself too)."""
    cfg = config_of(ctx)
    store = store_of(cfg, create=True)  # opening migrates
    click.echo(f"database at revision {current_revision(store.engine)} (head {head_revision()})")


COMMANDS = [sync, findings, waive, db]
