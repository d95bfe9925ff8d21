"""CLI of the report package: ``ticketlint report`` and ``ticketlint evidence``.

``cli.py`` adds every command in :data:`COMMANDS`. Config and store are loaded as in
``ticketlint.sync.commands``; a usage, config, store or rule-selection error is one line on stderr
and exit code 2. ``evidence verify DIR`` exits 1 when the pack does not match its manifest.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import click
from sqlalchemy import func, select

from ticketlint.config import PROCESS_NAMES, Config, ConfigError
from ticketlint.report.data import collect, runs_in_period
from ticketlint.report.evidence import (
    DEFAULT_SAMPLE_SIZE,
    EvidenceError,
    build_evidence,
    verify_pack,
)
from ticketlint.report.exposure import parse_target, percent
from ticketlint.report.exposure_data import exposure_from_store
from ticketlint.report.exposure_formats import FORMATS as EXPOSURE_FORMATS
from ticketlint.report.exposure_formats import render as render_exposure
from ticketlint.report.html_report import render_report
from ticketlint.report.period import Period, PeriodError
from ticketlint.rules.engine import Engine
from ticketlint.rules.registry import Registry, RuleSelectionError
from ticketlint.rules.selection import engine_from_config, registry_from_config
from ticketlint.store.models import RunRow
from ticketlint.sync.cli_support import (
    check_output_path,
    config_of,
    fail,
    store_of,
    write_output,
)


def _period(text: str | None) -> Period:
    try:
        return Period.parse(text)
    except PeriodError as exc:
        fail(f"--period {exc}")


def _selection(cfg: Config) -> tuple[Registry, Engine]:
    """The registry and the engine of the configured rule selection, as ``sync`` builds them."""
    try:
        registry = registry_from_config(cfg)
        engine = engine_from_config(cfg, registry=registry)
    except (ConfigError, RuleSelectionError, ImportError, ValueError) as exc:
        fail(f"{type(exc).__name__}: {exc}" if not isinstance(exc, ConfigError) else str(exc))
    return registry, engine


def _check_source(cfg: Config, source: str | None) -> None:
    if source and cfg.sources and source not in {s.name for s in cfg.sources}:
        fail(
            f"--source {source!r} is not a configured source "
            f"(known: {', '.join(s.name for s in cfg.sources)})"
        )


@click.command("report")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write ('-' = stdout).",
)
@click.option(
    "--period", metavar="FROM..TO", help="Runs with an as-of date in this period (inclusive)."
)
@click.option("--source", help="Only this source.")
@click.option("--group", "group_", metavar="GROUP", help="Only findings of this assignment group.")
@click.option("--title", default="ticketlint report", show_default=True, help="The page title.")
@click.pass_context
def report(
    ctx: click.Context,
    output: Path,
    period: str | None,
    source: str | None,
    group_: str | None,
    title: str,
) -> None:
    """Write one self-contained HTML report: conformity, trends, open findings, waivers,
    mapping coverage and the clause coverage matrix."""
    cfg = config_of(ctx)
    _check_source(cfg, source)
    if str(output) != "-":
        check_output_path(output)
    chosen = _period(period)
    registry, engine = _selection(cfg)
    store = store_of(cfg)
    now = datetime.now(timezone.utc)
    with store.session() as s:
        data = collect(
            s,
            cfg,
            registry,
            {r.code for r in engine.rules},
            period=chosen,
            source=source,
            group=group_,
            now=now,
        )
        data.exposure = exposure_from_store(
            s, cfg, registry, engine, period=chosen, now=now, source=source
        )
        if period and not runs_in_period(s, chosen):
            # The store keeps the current state: without a run in the period, the report
            # would show today's open findings under a past period's title.
            first, last = s.execute(select(func.min(RunRow.as_of), func.max(RunRow.as_of))).one()
            span = f"runs span {first:%Y-%m-%d}..{last:%Y-%m-%d}" if first else "no runs yet"
            fail(
                f"--period {chosen.label()}: no finished sync run has its as-of date in it "
                f"({span}); nothing was written"
            )
    page = render_report(data, title=title)
    if str(output) == "-":
        click.echo(page, nl=False)
        return
    write_output(output, page)
    click.echo(
        f"wrote {output} ({len(data.open_findings)} open findings, "
        f"{len(data.trend)} runs, conformity {_pct(data.overall.rate)})",
        err=True,
    )


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.1f}%"


def _sample_size(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None or value.lower() == "auto":
        return None
    if value.lower() == "all":
        return -1
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter("a number, 'all' or 'auto' (25, or all if fewer)") from None
    if n < 1:
        raise click.BadParameter("must be at least 1")
    return n


@click.group("evidence", invoke_without_command=True)
@click.option("--clause", help="The clause, e.g. 8.5.1 (its sub-clauses are included).")
@click.option("--period", metavar="FROM..TO", help="The audit period, e.g. 2026-07-01..2026-09-30.")
@click.option(
    "--seed", type=int, help="Seed of the random sample (default: a random one, recorded)."
)
@click.option(
    "--sample-size",
    callback=_sample_size,
    metavar="N|all|auto",
    help=f"Sample size (default auto: {DEFAULT_SAMPLE_SIZE}, or all records if fewer).",
)
@click.option("--source", help="Only this source.")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory to write the pack into (created; must be empty).",
)
@click.pass_context
def evidence(
    ctx: click.Context,
    clause: str | None,
    period: str | None,
    seed: int | None,
    sample_size: int | None,
    source: str | None,
    output: Path | None,
) -> None:
    """Write an audit evidence pack for one clause and period (`evidence verify DIR` checks one)."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [
        name
        for name, value in (("--clause", clause), ("--period", period), ("-o/--output", output))
        if not value
    ]
    if missing:
        fail(
            f"{', '.join(missing)} required (e.g. ticketlint evidence --clause 8.5.1 "
            "--period 2026-07-01..2026-09-30 -o evidence/)"
        )
    assert clause and output
    cfg = config_of(ctx)
    _check_source(cfg, source)
    chosen = _period(period)
    registry, engine = _selection(cfg)
    store = store_of(cfg)
    try:
        with store.session() as s:
            result = build_evidence(
                s,
                cfg,
                registry,
                engine,
                clause=clause,
                period=chosen,
                out=output,
                seed=seed,
                sample_size=sample_size,
                source=source,
                now=datetime.now(timezone.utc),
            )
    except EvidenceError as exc:
        fail(str(exc))
    click.echo(
        f"wrote {output}: population {result.population}, exceptions {result.exceptions}, "
        f"sample {result.sample} (seed {result.seed}), {result.files} files in the manifest"
    )


@evidence.command("verify")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def evidence_verify(directory: Path) -> None:
    """Re-check every file of a pack against manifest.json (exit 1 on any difference)."""
    try:
        problems = verify_pack(directory)
    except EvidenceError as exc:
        fail(str(exc))
    if problems:
        for p in problems:
            click.echo(f"FAIL {p}", err=True)
        click.echo(f"{directory}: {len(problems)} problem(s); the pack does not match its manifest")
        sys.exit(1)
    click.echo(f"{directory}: every file matches manifest.json")


def parse_sample(text: str) -> tuple[int | None, dict[str, int]]:
    """``--sample 30``, ``--sample change=40,incident=30`` or both: (every process, per
    process). Raises ValueError with what is wrong."""
    every: int | None = None
    per: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, number = part.rpartition("=")
        name = name.strip()
        if sep and name not in PROCESS_NAMES:
            raise ValueError(f"{name!r} is not one of {', '.join(PROCESS_NAMES)}")
        try:
            n = int(number)
        except ValueError:
            raise ValueError(f"{part!r}: expected N or process=N, e.g. change=40") from None
        if n < 1:
            raise ValueError(f"{part!r}: a sample holds at least 1 record")
        if sep:
            per[name] = n
        else:
            every = n
    return every, per


def _samples(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, int] | None:
    """--sample values merged: a bare N replaces every configured size."""
    if not values:
        return None
    every: int | None = None
    per: dict[str, int] = {}
    for value in values:
        try:
            n, named = parse_sample(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        every = n if n is not None else every
        per.update(named)
    base = dict.fromkeys((*PROCESS_NAMES, "default"), every) if every is not None else {}
    return {**{k: v for k, v in base.items() if v is not None}, **per}


def _target(ctx: click.Context, param: click.Parameter, value: str | None) -> Fraction | None:
    if value is None:
        return None
    try:
        return parse_target(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("exposure")
@click.option(
    "--period",
    metavar="FROM..TO",
    help="The audit period (default: audit.period, else all time).",
)
@click.option(
    "--sample",
    multiple=True,
    callback=_samples,
    metavar="N|PROCESS=N,...",
    help="Records the auditor samples: N for every process, or per process (default: audit.sample, else 25).",
)
@click.option(
    "--target",
    callback=_target,
    metavar="P",
    help="The exposure to get under: 0.1, 10% or 1/10 (default: audit.target, 0.1).",
)
@click.option("--source", help="Only this source.")
@click.option(
    "-f", "--format", "fmt", type=click.Choice(EXPOSURE_FORMATS), default="text", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.pass_context
def exposure(
    ctx: click.Context,
    period: str | None,
    sample: dict[str, int] | None,
    target: Fraction | None,
    source: str | None,
    fmt: str,
    output: Path | None,
) -> None:
    """Audit exposure per process and clause: the chance that the auditor's random sample
    holds a nonconforming record, and the fixes that bring it under the target."""
    cfg = config_of(ctx)
    _check_source(cfg, source)
    chosen = _period(period if period is not None else cfg.audit.period)
    registry, engine = _selection(cfg)
    store = store_of(cfg)
    with store.session() as s:
        table = exposure_from_store(
            s,
            cfg,
            registry,
            engine,
            period=chosen,
            now=datetime.now(timezone.utc),
            source=source,
            samples=sample,
            target=target,
        )
    text = render_exposure(table, fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output} (overall exposure {percent(table.overall)})", err=True)


COMMANDS = [report, evidence, exposure]
