"""``ticketlint writeback``: plan write-back from the stored findings, then apply or print it.

Useful after a sync ran with ``--no-writeback``, to retry failed writes without a sync, or
(``--dry-run``) to see what would be written. Exit codes: 0 done, 2 a write failed or a
usage / config / database error. ``cli.py`` registers every command in :data:`COMMANDS`.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from ticketlint.config import ConfigError
from ticketlint.plugin.writeback import WritebackSummary, apply, plan
from ticketlint.plugin.writeback.plan import COMMENT, NOTE
from ticketlint.plugin.writeback.render import plain_text
from ticketlint.sync.cli_support import config_of, fail, store_of


@click.command("writeback")
@click.option("--source", help="Only this configured source.")
@click.option("--dry-run", is_flag=True, help="Print the intended writes; write nothing.")
@click.option(
    "-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.pass_context
def writeback(ctx: click.Context, source: str | None, dry_run: bool, fmt: str) -> None:
    """Write labels, comments and work notes for the stored open findings."""
    cfg = config_of(ctx)
    try:
        names = [cfg.source(source).name] if source else [s.name for s in cfg.sources]
    except ConfigError as exc:
        fail(str(exc))
    store = store_of(cfg)
    if not cfg.writeback.enabled and not dry_run:
        fail(
            "write-back is disabled; set `writeback: {enabled: true}` in the configuration "
            "(or use --dry-run to see what it would write)"
        )
    planned: dict[str, list[Any]] = {}
    total = WritebackSummary()
    for name in names:
        plans, skipped = plan(store, cfg, name)
        planned[name] = plans
        if dry_run:
            continue
        summary = apply(store, cfg, name, plans)
        summary.skipped += [f"{name}/{k}" for k in skipped]
        total.merge(summary)
    if fmt == "json":
        out: dict[str, Any] = {
            "dry_run": dry_run,
            "writes": [p.to_dict() for plans in planned.values() for p in plans],
        }
        if not dry_run:
            out["summary"] = total.to_dict()
        click.echo(json.dumps(out, indent=2))
    else:
        for plans in planned.values():
            for p in plans:
                click.echo(("would " if dry_run else "") + p.describe())
                if dry_run and p.action in (COMMENT, NOTE):
                    for line in comment_preview(p).splitlines():
                        click.echo(f"    | {line}")
        count = sum(len(p) for p in planned.values())
        if dry_run:
            click.echo(
                f"{count} write{'s' if count != 1 else ''} planned (dry run: nothing written)"
                + ("" if cfg.writeback.enabled else "; write-back is disabled in the configuration")
            )
        else:
            click.echo(total.text())
    for err in total.errors[:10]:
        click.echo(f"error: {err}", err=True)
    sys.exit(2 if total.failed else 0)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")


def comment_preview(p: Any) -> str:
    """The text the comment or work note would hold (as on Jira Data Center and
    ServiceNow), with terminal control characters from tickets made visible."""
    text = plain_text(p.key, list(p.findings), int(p.detail.get("rev") or 1), p.digest)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


COMMANDS = [writeback]
