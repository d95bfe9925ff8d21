"""``ticketlint sandbox`` (serve the imitation APIs) and ``ticketlint demo`` (run the
product end to end against them). ``cli.py`` registers every command in :data:`COMMANDS`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from ticketlint.sandbox.faults import FaultPlan, FaultSpecError
from ticketlint.sandbox.server import SandboxServer

DEMO_MARKER = ".ticketlint-demo"
"""Written into a demo directory: only a directory holding it is reused (and cleaned)."""
DEMO_OUTPUTS = (
    "ticketlint.yaml",
    "ticketlint.db",
    "ticketlint.db-wal",
    "ticketlint.db-shm",
    "ticketlint.db.lock",
    "findings.json",
    "report.html",
    "evidence-8.5.1",
)
"""What a demo writes into its directory: the only names it removes when it runs again."""
DEMO_JIRA_ENV = "TICKETLINT_DEMO_JIRA_TOKEN"
DEMO_SNOW_ENV = "TICKETLINT_DEMO_SNOW_PASSWORD"


def config_yaml(server: SandboxServer, database: str) -> str:
    """A ticketlint config with one source per imitated system (secrets from env vars)."""
    c = server.credentials
    return (
        f"database: {database}\n"
        "sources:\n"
        "  - name: jira-sandbox\n"
        "    type: jira\n"
        f"    url: {server.url}\n"
        "    auth:\n"
        f"      email: {c.jira_email}\n"
        f"      token: ${{{DEMO_JIRA_ENV}}}\n"
        "    jql: project in (OPS, CHG)\n"
        "  - name: snow-sandbox\n"
        "    type: servicenow\n"
        f"    url: {server.url}\n"
        "    auth:\n"
        f"      user: {c.snow_user}\n"
        f"      password: ${{{DEMO_SNOW_ENV}}}\n"
    )


def _parse_faults(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        FaultPlan.parse(value)
    except FaultSpecError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command("sandbox")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it local)."
)
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 = any free port.",
)
@click.option(
    "--seed", default=1, show_default=True, type=int, help="Same seed, same data and faults."
)
@click.option(
    "--size",
    default=600,
    show_default=True,
    type=click.IntRange(20, 2_000_000),
    help="Approximate number of records across both systems.",
)
@click.option(
    "--faults",
    callback=_parse_faults,
    metavar="SPEC",
    help="e.g. 429=0.05,500=0.03,reset=0.01,slow=0.02,retry_after=1,mutate=0.01",
)
@click.option(
    "--hidden-share",
    default=0.01,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of ServiceNow rows an ACL hides (returned as {}).",
)
@click.option(
    "--real-shapes",
    is_flag=True,
    help='Shapes of real sites: JSM "[System]" issue types, searches that truncate comment '
    "lists, closed incidents without a resolution date, date-only cab_date.",
)
def sandbox(
    host: str,
    port: int,
    seed: int,
    size: int,
    faults: str | None,
    hidden_share: float,
    real_shapes: bool,
) -> None:
    """Serve an imitation Jira Cloud and ServiceNow instance with seeded ITSM data."""
    click.echo(f"generating {size} records (seed {seed})...", err=True)
    server = SandboxServer(
        host,
        port,
        seed=seed,
        size=size,
        faults=faults,
        hidden_share=hidden_share,
        real_shapes=real_shapes,
    )
    c = server.credentials
    click.echo(f"sandbox listening on {server.url}  (Ctrl-C stops it)", err=True)
    click.echo(
        f"  Jira Cloud:  {server.url}/rest/api/3/...   basic {c.jira_email}:{c.jira_token}  or bearer {c.jira_pat}",
        err=True,
    )
    click.echo(
        f"  ServiceNow:  {server.url}/api/now/table/... basic {c.snow_user}:{c.snow_password}; "
        f"OAuth client {c.oauth_client_id}:{c.oauth_client_secret}",
        err=True,
    )
    click.echo(
        f"  admin:       {server.url}/_sandbox/info, /_sandbox/stats, POST /_sandbox/mutate",
        err=True,
    )
    click.echo("  a config for it (export the two variables first):", err=True)
    click.echo(
        f"    export {DEMO_JIRA_ENV}={c.jira_token} {DEMO_SNOW_ENV}={c.snow_password}", err=True
    )
    click.echo(config_yaml(server, "sqlite:///.ticketlint/sandbox.db"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        server.httpd.server_close()


def _invoke(args: list[str]) -> int:
    """Run a ``ticketlint`` command in this process; its exit code."""
    import ticketlint.cli as cli_mod

    try:
        cli_mod.cli.main(args, prog_name="ticketlint", standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


@click.command("demo")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--size", default=600, show_default=True, type=click.IntRange(20, 50_000))
@click.option(
    "--dir",
    "workdir",
    default=".ticketlint/demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the config, store, report and evidence pack go. An existing directory is "
    "used only if it is empty or a previous demo's (only the demo's own files are replaced).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Use a non-empty --dir that is not a previous demo's (its other files are kept; "
    "the demo's own file names are overwritten).",
)
@click.option(
    "--fix",
    default=3,
    show_default=True,
    type=click.IntRange(0, 50),
    help="At most this many changes per source (Jira, ServiceNow) whose missing backout plan "
    "is filled in "
    "between the two syncs.",
)
@click.option(
    "--top", default=8, show_default=True, type=click.IntRange(1, 100), help="Findings to show."
)
def demo(seed: int, size: int, workdir: Path, force: bool, fix: int, top: int) -> None:
    """Start the sandbox, sync both imitated systems, fix a few tickets, sync again, and
    write the HTML report and an evidence pack: the nightly job, end to end, on local data."""
    prepare_demo_dir(workdir, force=force)
    click.echo(f"ticketlint demo: generating {size} sandbox records (seed {seed})...", err=True)
    server = SandboxServer("127.0.0.1", 0, seed=seed, size=size).start()
    try:
        code = _run_demo(server, workdir, fix, top)
    finally:
        server.stop()
    sys.exit(code)


class DemoDirRefused(click.ClickException):
    """``demo --dir`` names a directory the demo must not write into (exit 2)."""

    exit_code = 2


def prepare_demo_dir(workdir: Path, *, force: bool) -> None:
    """Make ``workdir`` ready for a demo without deleting anything the demo did not create.

    A missing or empty directory is used as it is; a previous demo's directory (it holds
    :data:`DEMO_MARKER`) loses only the demo's own outputs (:data:`DEMO_OUTPUTS`); any
    other non-empty directory is refused (exit 2) unless ``force``, and even then only
    the demo's own file names are replaced."""
    if workdir.exists() and not workdir.is_dir():
        raise DemoDirRefused(f"--dir {workdir} is a file, not a directory")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / DEMO_MARKER).is_file() and not force:
            raise DemoDirRefused(
                f"--dir {workdir} is not empty and is not a previous demo directory "
                f"(no {DEMO_MARKER} file): nothing was changed; choose an empty or new "
                "directory, or add --force to write the demo's files beside what is there"
            )
        for name in DEMO_OUTPUTS:
            target = workdir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / DEMO_MARKER).write_text(
        "A `ticketlint demo` directory: a later demo replaces only its own files here.\n",
        encoding="utf-8",
    )


def _run_demo(server: SandboxServer, workdir: Path, fix: int, top: int) -> int:
    c = server.credentials
    os.environ[DEMO_JIRA_ENV] = c.jira_token
    os.environ[DEMO_SNOW_ENV] = c.snow_password
    config = workdir / "ticketlint.yaml"
    config.write_text(
        config_yaml(server, f"sqlite:///{(workdir / 'ticketlint.db').resolve()}"), encoding="utf-8"
    )
    base = ["--config", str(config)]
    click.echo(f"sandbox at {server.url}; config written to {config}", err=True)

    click.echo(
        "\n== night 1: ticketlint sync (both sources, into a fresh SQLite store) ==", err=True
    )
    if (code := _invoke([*base, "sync", "--no-notify", "--no-writeback"])) != 0:
        click.echo(f"demo: sync exited with {code}", err=True)
        return code
    findings = _open_findings(base, workdir)
    if findings is None:
        return 2
    fixed = _fix_backout_plans(server, findings, fix)
    if fixed:
        click.echo(
            f"\n== process owners add the missing backout plan to {len(fixed)} changes: "
            f"{', '.join(fixed)} ==",
            err=True,
        )
    click.echo(
        "\n== night 2: ticketlint sync (incremental: only what changed is read) ==", err=True
    )
    if (code := _invoke([*base, "sync", "--no-notify", "--no-writeback"])) != 0:
        click.echo(f"demo: second sync exited with {code}", err=True)
        return code
    findings = _open_findings(base, workdir)
    if findings is None:
        return 2
    _print_summary(findings, top)

    report = workdir / "report.html"
    evidence = workdir / "evidence-8.5.1"
    today = datetime.now(timezone.utc).date()
    period = f"{today - timedelta(days=91)}..{today}"
    code = _invoke([*base, "-q", "report", "-o", str(report)])
    code = code or _invoke(
        [
            *base,
            "-q",
            "evidence",
            "--clause",
            "8.5.1",
            "--period",
            period,
            "--seed",
            "1",
            "-o",
            str(evidence),
        ]
    )
    if code != 0:
        click.echo(f"demo: report or evidence failed (exit {code})", err=True)
        return code
    click.echo(f"\nHTML report:   {report}")
    click.echo(f"Evidence pack: {evidence}/ (clause 8.5.1, {period}; manifest.json holds SHA-256s)")
    tl = self_command()
    click.echo("\nTry next (the sandbox stops with the demo; the store stays):")
    click.echo(f"  export {DEMO_JIRA_ENV}={c.jira_token} {DEMO_SNOW_ENV}={c.snow_password}")
    click.echo(f"  {tl} --config {shlex.quote(str(config))} findings --state resolved")
    click.echo(
        f"  {tl} --config {shlex.quote(str(config))} evidence verify {shlex.quote(str(evidence))}"
    )
    if Path("examples/jira").is_dir():
        click.echo(f"  {tl} check --input examples/jira --as-of 2026-11-20 -f markdown")
    click.echo(f"  {tl} init   # a starter ticketlint.yaml for your own Jira / ServiceNow")
    click.echo(
        f"  {tl} --config {shlex.quote(str(config))} exposure --sample change=40 -f markdown"
    )
    click.echo(
        f"\n== audit exposure of {period}: the chance that an auditor's sample of 25 records "
        "per process holds a nonconforming one =="
    )
    sys.stdout.flush()
    return _invoke([*base, "exposure", "--period", period])


def self_command() -> str:
    """How to run this same ticketlint again from the current directory, as typed in a
    shell: ``ticketlint`` when that name on PATH is this program, else the path it was
    started by (``.venv/bin/ticketlint`` after ``make demo``), else ``python -m``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "ticketlint":
        on_path = shutil.which("ticketlint")
        if on_path and Path(on_path).resolve() == Path(argv0).resolve():
            return "ticketlint"
        return shlex.quote(argv0 if os.sep in argv0 else str(Path(argv0).resolve()))
    return f"{shlex.quote(sys.executable)} -m ticketlint.cli"


def _open_findings(base: list[str], workdir: Path) -> list[dict[str, Any]] | None:
    """The store's open findings, through the same command a user would run."""
    out = workdir / "findings.json"
    code = _invoke([*base, "-q", "findings", "--state", "open", "-f", "json", "-o", str(out)])
    if code != 0 or not out.exists():
        click.echo(f"demo: listing findings failed (exit {code})", err=True)
        return None
    return list(json.loads(out.read_text(encoding="utf-8")).get("findings", []))


def _fix_backout_plans(
    server: SandboxServer, findings: list[dict[str, Any]], per_system: int
) -> list[str]:
    """Fill in the backout plan of a few CHG005 changes, as their owners would."""
    plan = "Roll back to the previous release from the artifact store; verify health checks."
    fixed: list[str] = []
    mutations: tuple[tuple[str, Callable[[str], dict[str, Any]]], ...] = (
        ("jira-sandbox", lambda key: {"key": key, "fields": {"Backout plan": _adf(plan)}}),
        (
            "snow-sandbox",
            lambda key: {
                "table": "change_request",
                "number": key,
                "fields": {"backout_plan": plan},
            },
        ),
    )
    for source, body_of in mutations:
        keys = sorted(
            {f["key"] for f in findings if f.get("code") == "CHG005" and f.get("source") == source}
        )
        for key in keys[:per_system]:
            req = urllib.request.Request(
                f"{server.url}/_sandbox/mutate",
                method="POST",
                data=json.dumps(body_of(key)).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status == 200:
                    fixed.append(key)
    return fixed


def _adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def _print_summary(findings: list[dict[str, Any]], top: int) -> None:
    shown: list[dict[str, Any]] = []
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
    for source in ("jira-sandbox", "snow-sandbox"):
        mine = [f for f in findings if f.get("source") == source]
        by_process = Counter(f.get("process") for f in mine)
        by_rule = Counter(f.get("code") for f in mine)
        click.echo(
            f"\n{source}: {len(mine)} open findings  "
            + ", ".join(f"{p} {n}" for p, n in sorted(by_process.items()))
        )
        click.echo("  by rule: " + ", ".join(f"{code} {n}" for code, n in sorted(by_rule.items())))
        shown.extend(
            sorted(
                mine,
                key=lambda f: (rank.get(f.get("severity") or "", 9), f.get("code"), f.get("key")),
            )[: top // 2 or 1]
        )
    click.echo("\nTop findings:")
    for f in shown[:top]:
        who = f.get("assignee") or f.get("group") or "unassigned"
        click.echo(
            f"  [{f.get('severity')}] {f.get('code')} {f.get('source')}/{f.get('key')} ({who}): {f.get('message')}"
        )


COMMANDS = [sandbox, demo]
