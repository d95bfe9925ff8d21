"""The ``ticketlint`` command line: wires config, connectors, mapping, rules and output.

Results go to stdout (or ``-o PATH``); logs and progress go to stderr. Exit codes, like
ruff and sqlfluff: 0 clean, 1 findings at or above ``--fail-on``, 2 usage, configuration,
connector or internal error, and 2 when ``check`` read records but could check none of
them (or any record was not checked, with ``--fail-on-unchecked``). Commands of other packages (``ticketlint.sync.commands``,
``ticketlint.sandbox.commands``) are registered when those packages are installed.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import click
import yaml

import ticketlint.config as config_mod
from ticketlint import exiting
from ticketlint.config import Config, ConfigError
from ticketlint.connectors.base import DoctorCheck, DoctorReport, SourceError, plan_reads
from ticketlint.connectors.files import InputError, load_inputs
from ticketlint.connectors.keys import invalid_key
from ticketlint.connectors.readahead import reader_switching
from ticketlint.mapping.common import MappingOptions, MappingReport
from ticketlint.mapping.model import BaseRecord
from ticketlint.redact import RedactingFormatter, redact
from ticketlint.report import formats
from ticketlint.rules.live import LiveEvaluation
from ticketlint.rules.registry import (
    SEVERITIES,
    SEVERITY_RANK,
    RuleDefinitionError,
    RuleSelectionError,
)
from ticketlint.rules.selection import engine_from_config, parse_as_of, registry_from_config

log = logging.getLogger("ticketlint")

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for `... | head`
STDERR_UNCHECKED = 10
"""At most this many records not checked are named on stderr, then the count."""
PLUGIN_MODULES = (
    "ticketlint.sync.commands",
    "ticketlint.sandbox.commands",
    "ticketlint.notify.commands",
    "ticketlint.report.commands",
    "ticketlint.plugin.writeback.commands",
    "ticketlint.plugin.serve.commands",
)
COMMAND_MODULES = {
    "sync": "ticketlint.sync.commands",
    "findings": "ticketlint.sync.commands",
    "waive": "ticketlint.sync.commands",
    "db": "ticketlint.sync.commands",
    "sandbox": "ticketlint.sandbox.commands",
    "demo": "ticketlint.sandbox.commands",
    "notify": "ticketlint.notify.commands",
    "report": "ticketlint.report.commands",
    "evidence": "ticketlint.report.commands",
    "exposure": "ticketlint.report.commands",
    "writeback": "ticketlint.plugin.writeback.commands",
    "serve": "ticketlint.plugin.serve.commands",
}
"""Which of :data:`PLUGIN_MODULES` holds each of their commands (a test keeps it true):
``ticketlint sync`` imports the sync room alone, not the sandbox's, notifiers' and
reports' modules too (~0.08 s of every run). A name not listed loads them all."""
CI_STREAMS = frozenset({"ci", "cmdb_ci", "assets"})


def _known_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's or the source's, reported in one line with exit 2."""
    errors: list[type[BaseException]] = [
        ConfigError,
        RuleSelectionError,
        RuleDefinitionError,
        InputError,
        SourceError,
    ]
    try:
        from ticketlint.rules.declarative import DeclarativeRuleError
    except ModuleNotFoundError as exc:
        if exc.name != "ticketlint.rules.declarative":
            raise
    else:
        errors.append(DeclarativeRuleError)
    from ticketlint.workers import WorkerLost  # the machine's, not ours: one line, exit 2

    errors.append(WorkerLost)
    return tuple(errors)


class TicketlintGroup(click.Group):
    """Turns every error of a command into a message on stderr and exit code 2, so an
    uncaught exception never looks like "findings" (click's default exit code 1).

    Commands of other packages (:data:`PLUGIN_MODULES`) are imported only when a command
    that is not built in is asked for (its own module, :data:`COMMAND_MODULES`), or the
    command list is shown: ``ticketlint check`` does not pay for (or break on) the
    sandbox's imports.
    """

    _plugins_loaded = False

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def _load_plugins(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            register_plugins(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMAND_MODULES and not self._plugins_loaded:
            register_plugins(self, (COMMAND_MODULES[cmd_name],))
            command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugins()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            # Exit 130 like a shell, never click's "Aborted!" with 1 ("findings").
            click.echo("interrupted (exit 130)", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:
            # `ticketlint ... | head`: the reader left; not an error of ours. Exit as a
            # shell reports a program stopped by SIGPIPE, with nothing on stderr.
            _silence_stdout()
            ctx.exit(EXIT_BROKEN_PIPE)
        except _known_errors() as exc:
            click.echo(redact(f"error: {exc}"), err=True)
            ctx.exit(EXIT_ERROR)
        except Exception as exc:
            log.debug("internal error", exc_info=True)
            click.echo(
                redact(
                    f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"
                ),
                err=True,
            )
            if _state(ctx).verbosity > 0:
                import traceback

                # URLs in exception messages and frames may carry credentials or tokens.
                click.echo(redact(traceback.format_exc()), err=True, nl=False)
            ctx.exit(EXIT_ERROR)


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so Python's exit flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass


_GLOBAL_FLAGS = frozenset({"-q", "--quiet", "-v", "-vv", "-vvv", "--verbose"})


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """Move ``--config PATH``, ``-q`` and ``-v`` written after the subcommand in front of
    it, so ``ticketlint check --config x.yaml -q`` means what it says (they are options of
    the ``ticketlint`` group). Nothing after ``--`` is touched."""
    args = list(args)
    start = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if start is None:
        return args
    if start > 0 and args[start - 1] == "--config":
        start = next((i for i, a in enumerate(args) if i > start and not a.startswith("-")), None)
        if start is None:
            return args
    hoisted: list[str] = []
    rest: list[str] = []
    i = start + 1
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in _GLOBAL_FLAGS or arg.startswith("--config="):
            hoisted.append(arg)
        elif arg == "--config" and i + 1 < len(args):
            hoisted.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return [*args[:start], *hoisted, args[start], *rest]


class CliError(click.ClickException):
    """A command cannot do what was asked (exit code 2, like a usage error)."""

    exit_code = EXIT_ERROR


@dataclass
class State:
    """What the global options decided; the config is read once, on first use."""

    config_path: str | None = None
    verbosity: int = 0
    _config: Config | None = field(default=None, repr=False)

    def config(self, *, required: bool = False) -> Config:
        if self._config is None or (required and self._config.path is None):
            self._config = config_mod.load_config(self.config_path, required=required)
        return self._config


def _state(ctx: click.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


# --- shell completion -----------------------------------------------------------------


def _complete_sources(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    try:
        cfg = config_mod.load_config(ctx.find_root().params.get("config_path"))
    except Exception:  # noqa: BLE001 - shell completion must never fail the shell: no config, no completions
        return []
    return [s.name for s in cfg.sources if s.name.startswith(incomplete)]


def _complete_rules(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    try:
        cfg = config_mod.load_config(ctx.find_root().params.get("config_path"))
        registry = registry_from_config(cfg)
    except Exception:  # noqa: BLE001 - shell completion must never fail the shell: no config, no completions
        return []
    text = incomplete.upper()
    return [code for code in sorted(registry.rules) if code.startswith(text)]


# --- the group ------------------------------------------------------------------------


@click.group(cls=TicketlintGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (default: $TICKETLINT_CONFIG, ./ticketlint.yaml, then the user config dir).",
)
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.version_option(package_name="ticketlint", prog_name="ticketlint")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Check Jira and ServiceNow service-management records against ISO/IEC 20000-1."""
    verbosity = -1 if quiet else verbose
    ctx.obj = State(config_path=config_path, verbosity=verbosity)
    set_umask()
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(stream=sys.stderr, level=level, force=True)
    for handler in logging.getLogger().handlers:  # every log line and traceback redacted
        handler.setFormatter(RedactingFormatter("ticketlint: %(levelname)s: %(message)s"))


UMASK_ENV = "TICKETLINT_UMASK"
DEFAULT_UMASK = 0o077


def set_umask(environ: dict[str, str] | None = None) -> int:
    """Files ticketlint creates (the SQLite store and its journal, reports, evidence
    packs, exports, ``-o`` files) are readable by their owner only: 0600 files, 0700
    directories. ``TICKETLINT_UMASK`` (octal, e.g. ``027``) chooses another umask.
    Returns the umask set."""
    text = (environ if environ is not None else os.environ).get(UMASK_ENV, "").strip()
    mask = DEFAULT_UMASK
    if text:
        try:
            mask = int(text, 8)
        except ValueError:
            raise click.UsageError(
                f"{UMASK_ENV}={text!r} is not an octal umask (077, 027)"
            ) from None
        if not 0 <= mask <= 0o777:
            raise click.UsageError(f"{UMASK_ENV}={text!r} is not an octal umask (077, 027)")
    os.umask(mask)
    return mask


# --- check ----------------------------------------------------------------------------


def _split(values: Iterable[str]) -> list[str]:
    """``--select CHG001,INC`` and ``--select CHG001 --select INC`` mean the same."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _now() -> datetime:
    """The evaluation instant when ``--as-of`` is not given (the CLI's only clock)."""
    return datetime.now(timezone.utc)


@cli.command()
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Exported file or directory (Jira search JSON, ServiceNow <table>.json, records .jsonl). Repeatable.",
)
@click.option(
    "--source",
    shell_complete=_complete_sources,
    help="Configured source: read it live, or map --input files with its mapping.",
)
@click.option("--jql", help="Jira: JQL scope for a live check (ANDed with the configured jql).")
@click.option("--query", help="ServiceNow: encoded query scope for a live check.")
@click.option("--key", "keys", multiple=True, help="Re-check only this ticket key. Repeatable.")
@click.option("--since", help="Live check: only records updated since this ISO 8601 date or time.")
@click.option("--as-of", "as_of", help="Evaluation instant (ISO 8601; naive = UTC). Default: now.")
@click.option(
    "--select",
    multiple=True,
    shell_complete=_complete_rules,
    help="Rules to run: codes, prefixes (CHG), names, processes or packs. Replaces the config's.",
)
@click.option(
    "--ignore",
    multiple=True,
    shell_complete=_complete_rules,
    help="Rules to skip (same selectors). Replaces the config's.",
)
@click.option(
    "--fail-on",
    type=click.Choice(SEVERITIES),
    default="low",
    show_default=True,
    help="Exit 1 when a finding has this severity or higher.",
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option(
    "--fail-on-unchecked",
    is_flag=True,
    help="Exit 2 when any record could not be checked or was skipped (config: check.fail_on_unchecked).",
)
@click.option(
    "-f", "--format", "fmt", type=click.Choice(formats.FORMATS), default="text", show_default=True
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Processes that read, map and check --input exports (default: "
    "one per CPU, at most 8, for exports of 4 MiB or more, else 1; 1 = all in this process).",
)
@click.option(
    "--exposure",
    is_flag=True,
    help="Print the audit exposure of the checked records instead of the findings (-f text, json or markdown; samples from audit.sample).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write results to this file instead of stdout.",
)
@click.pass_context
def check(
    ctx: click.Context,
    inputs: tuple[Path, ...],
    source: str | None,
    jql: str | None,
    query: str | None,
    keys: tuple[str, ...],
    since: str | None,
    as_of: str | None,
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    fail_on: str,
    exit_zero: bool,
    fail_on_unchecked: bool,
    fmt: str,
    output: Path | None,
    jobs: int | None,
    exposure: bool,
) -> None:
    """Check records from exported files (--input) or a live source; linter-style output."""
    state = _state(ctx)
    if exposure and fmt not in ("text", "json", "markdown"):
        raise click.UsageError("--exposure prints text, json or markdown (-f)")
    if inputs and (jql or query or keys or since):
        raise click.UsageError(
            "--jql, --query, --key and --since read a live source; they cannot be used with --input"
        )
    if jql and query:
        raise click.UsageError("--jql is for Jira sources and --query for ServiceNow; give one")
    instant = _as_of(as_of)
    since_at = _option_time("--since", since) if since else None
    if output is not None:
        _check_output(output)  # before a long live read, not after it
    cfg = state.config()
    engine = engine_from_config(cfg, select=_split(select) or None, ignore=_split(ignore) or None)

    report = MappingReport()
    missing: list[str] = []
    records: Sequence[BaseRecord] = []
    evaluation = None
    live: LiveEvaluation | None = None
    finding_texts: formats.FindingTexts | None = None
    if inputs:
        options = cfg.source(source).mapping_options() if source else MappingOptions(source="file")
        if fmt == "json" and not exposure:  # written while the workers still check
            finding_texts = formats.FindingTexts()
        streamed = (
            None
            if exposure
            else _check_streamed(
                engine,
                list(inputs),
                options,
                instant,
                jobs=jobs,
                on_findings=finding_texts.add if finding_texts is not None else None,
            )
        )
        if streamed is not None:
            evaluation, loaded_report, seen_sources = streamed
            sources = sorted(seen_sources or {options.source})
            ci_sources: set[str] = set()
            report.merge(loaded_report)
        else:
            finding_texts = None  # any written belong to the evaluation given up
            loaded = load_inputs(list(inputs), options)
            records, ci_sources, sources = (
                loaded.records,
                loaded.ci_sources,
                sorted({r.source for r in loaded.records} or {options.source}),
            )
            report.merge(loaded.report)
    else:
        chosen = [cfg.source(source)] if source else list(cfg.sources)
        if not chosen:
            raise click.UsageError(
                "give --input PATH (exported files) or --source NAME (a configured source)"
            )
        progress = LiveProgress(enabled=state.verbosity >= 0 and _stderr_is_terminal())
        keys_by_source = _keys_by_source(chosen, keys)
        if keys:  # a source none of the keys belongs to is not read at all
            chosen = [s for s in chosen if keys_by_source[s.name]]
        live = (
            LiveEvaluation(engine, as_of=instant, ci_streams=CI_STREAMS) if engine.streams else None
        )
        records, ci_sources, live_report = _read_live(
            chosen,
            jql=jql,
            query=query,
            keys=keys_by_source,
            since=since_at,
            progress=progress,
            evaluation=live,
        )
        evaluation = live.result(ci_sources) if live is not None else None
        report.merge(live_report)
        sources = [s.name for s in chosen]
        missing = _keys_not_found(keys, records, report)
        if missing and not records:
            raise CliError(f"{', '.join(missing)} not found at {', '.join(sources)}")

    if evaluation is None:
        log.info("evaluating %d records with %d rules", len(records), len(engine.rules))
        evaluation = engine.evaluate(records, as_of=instant, ci_sources=ci_sources)
    result = formats.CheckResult(
        evaluation=evaluation, report=report, sources=sources, finding_texts=finding_texts
    )
    if exposure:
        _write(_exposure_text(cfg, engine, records, evaluation, instant, ci_sources, fmt), output)
    else:
        color = fmt == "text" and output is None and _colour_wanted()
        _write(formats.render(result, fmt, color=color), output)
    _report_on_stderr(result, fmt, output, state)
    exiting.hold(records, evaluation, live, report, result)  # plain data, written already

    if missing:
        # A mistyped key must never read as "no findings": the rest was checked, but
        # the run did not do what was asked.
        click.echo(f"error: {', '.join(missing)} not found at {', '.join(sources)}", err=True)
        ctx.exit(EXIT_ERROR)
    if evaluation.rule_errors:
        ctx.exit(EXIT_ERROR)
    unchecked = len(report.not_checked())
    checked = evaluation.records
    if unchecked and (not checked or fail_on_unchecked or cfg.check.fail_on_unchecked):
        why = (
            "none of the records read could be checked"
            if not checked
            else f"{unchecked} records could not be checked (fail on unchecked)"
        )
        if state.verbosity >= 0:
            click.echo(f"ticketlint: {why}; see the not-checked list", err=True)
        ctx.exit(EXIT_ERROR)
    threshold = SEVERITY_RANK[fail_on]
    failing = any(SEVERITY_RANK[f.severity] >= threshold for f in evaluation.findings)
    ctx.exit(EXIT_FINDINGS if failing and not exit_zero else EXIT_CLEAN)


def _check_streamed(
    engine: Any,
    inputs: list[Path],
    options: MappingOptions,
    as_of: datetime,
    *,
    jobs: int | None = 1,
    on_findings: Callable[[list[Any]], None] | None = None,
) -> tuple[Any, MappingReport, set[str]] | None:
    """``check --input`` read and checked piece by piece (``stream_inputs``,
    ``Engine.evaluate_streamed``, or ``Engine.evaluate_tasks`` on ``jobs`` processes;
    None: :func:`_input_jobs`): the evaluation, the mapping report and the sources of
    the records. None when only the whole-batch load gives the exact answer: rules that
    may read any record, a record exported twice (its earlier copy is already checked),
    or an input error (the batch load reports it as it always has). ``on_findings`` gets
    the workers' findings as they come (:meth:`Engine.evaluate_tasks`)."""
    if not engine.streams:
        return None
    from ticketlint.connectors.files import NeedsBatch, stream_inputs

    seen: set[tuple[str, str]] = set()
    sources: set[str] = set()

    def accept(idents: Iterable[tuple[str, str]], streamed_ci: bool) -> None:
        if streamed_ci:
            raise NeedsBatch("a configuration item outside the CI tables")
        for ident in idents:
            if ident in seen:
                raise NeedsBatch(f"{ident[0]}/{ident[1]} read twice")
            seen.add(ident)
            sources.add(ident[0])

    def once(records: Sequence[BaseRecord], *, streamed: bool = True) -> Sequence[BaseRecord]:
        accept(
            ((r.source, r.key) for r in records),
            streamed and any(r.process == "ci" for r in records),
        )
        return records

    try:
        stream = stream_inputs(inputs, options)
        workers = _input_jobs(inputs) if jobs is None else jobs
        if workers < 2:
            stream.prepare()
            held = once(stream.held.records, streamed=False)
            evaluation = engine.evaluate_streamed(
                held,
                (once(batch) for batch in stream.batches()),
                as_of=as_of,
                ci_sources=stream.ci_sources,
            )
        else:
            log.info("check --input: %d worker processes", workers)
            tasks = list(stream.tasks(workers))  # the held reads too, while pages scan
            held = once(stream.held.records, streamed=False)
            evaluation = engine.evaluate_tasks(
                held,
                tasks,
                as_of=as_of,
                ci_sources=stream.ci_sources,
                jobs=workers,
                take=stream.take,
                accept=accept,
                weights=[task.weight for task in tasks],
                on_findings=on_findings,
            )
    except (NeedsBatch, InputError) as exc:
        log.debug("check --input reads the whole batch: %s", exc)
        return None
    return evaluation, stream.report, sources


PARALLEL_INPUT_BYTES = 4 * 2**20
"""Exports at least this large are read on every CPU by default (smaller ones take less
time than starting the workers saves)."""


def _input_jobs(inputs: Sequence[Path]) -> int:
    """``check --input``'s default ``--jobs``: one per CPU for a large export, else 1."""
    from ticketlint.workers import default_jobs

    total = 0
    for path in inputs:
        try:
            files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
            total += sum(p.stat().st_size for p in files)
        except OSError:
            continue  # the reader reports it
        if total >= PARALLEL_INPUT_BYTES:
            return default_jobs()
    return 1


def _exposure_text(
    cfg: Config,
    engine: Any,
    records: Sequence[BaseRecord],
    evaluation: Any,
    as_of: datetime,
    ci_sources: set[str],
    fmt: str,
) -> str:
    """``check --exposure``: the exposure table of the records just checked (all of
    them are the period), config waivers applied, samples and target from ``audit``."""
    from ticketlint.report.exposure import build_table
    from ticketlint.report.exposure_data import (
        clause_scope,
        population_from_check,
        samples_of,
        target_of,
    )
    from ticketlint.report.exposure_formats import render as render_exposure
    from ticketlint.store.waivers import config_waivers

    population = population_from_check(
        records,
        evaluation.findings,
        engine,
        as_of=as_of,
        ci_sources=ci_sources,
        waivers=config_waivers(cfg),
    )
    registry = registry_from_config(cfg)
    clause_processes, titles = clause_scope(engine, registry)
    table = build_table(
        population,
        samples=samples_of(cfg),
        target=target_of(cfg),
        clause_processes=clause_processes,
        clause_titles=titles,
        period=f"the {len(population)} records checked (as of {as_of.date().isoformat()})",
    )
    return render_exposure(table, fmt)


def _keys_not_found(
    keys: Sequence[str], records: Sequence[BaseRecord], report: MappingReport
) -> list[str]:
    """The ``--key`` values that no source returned (a record that failed to map was
    found: its mapping error is reported). Keys compare case-insensitively, as Jira does."""
    found = {r.key.upper() for r in records}
    found.update(e.key.upper() for e in report.errors if e.key)
    return [k for k in keys if k.upper() not in found]


def _keys_by_source(sources: Sequence[Any], keys: Sequence[str]) -> dict[str, list[str]]:
    """The ``--key`` values that are keys of each source (``PROJ-1`` for Jira, a record
    number or sys_id for ServiceNow): a key is an identifier, never query text, so one
    that fits no chosen source is a usage error before any query is built."""
    by_source: dict[str, list[str]] = {s.name: [] for s in sources}
    for key in keys:
        reasons = []
        for src in sources:
            why = invalid_key(src.type, key)
            if why is None:
                by_source[src.name].append(key.strip())
            else:
                reasons.append(f"{src.name}: {why}")
        if len(reasons) == len(sources):
            raise click.BadParameter("; ".join(reasons), param_hint="--key")
    return by_source


def _as_of(text: str | None) -> datetime:
    return _option_time("--as-of", text) if text else _now()


def _option_time(option: str, text: str) -> datetime:
    try:
        return parse_as_of(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


def _open_connector(source_cfg: Any) -> Any:
    """``connectors.open_connector`` (added by the connector work) for one source."""
    import ticketlint.connectors as connectors

    opener = getattr(connectors, "open_connector", None)
    if opener is None:
        raise SourceError(
            source_cfg.name,
            "live sources are not available in this build (connectors.open_connector is missing)",
        )
    return opener(source_cfg)


class LiveProgress:
    """One self-rewriting line on stderr while a live check reads ("jira-prod change:
    1,200 records read"), at most every ``interval`` seconds; silent unless stderr is a
    terminal and -q is not given, so logs and pipes never see it."""

    def __init__(
        self, out: Any = None, *, enabled: bool | None = None, interval: float = 0.5
    ) -> None:
        self.out = out if out is not None else sys.stderr
        isatty = getattr(self.out, "isatty", lambda: False)
        self.enabled = bool(isatty()) if enabled is None else enabled
        self.interval = interval
        self._last = 0.0
        self._shown = False

    def update(self, text: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.out.write("\r\033[K" + text)
        self.out.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self._shown = False


@reader_switching()  # a reader woken by its socket gets the interpreter back soon
def _read_live(
    sources: Sequence[Any],
    *,
    jql: str | None,
    query: str | None,
    keys: dict[str, list[str]],
    since: datetime | None,
    progress: LiveProgress | None = None,
    evaluation: LiveEvaluation | None = None,
) -> tuple[list[BaseRecord], set[str], MappingReport]:
    """Every record of ``sources``, each source read in a thread of its own (they are
    different servers: the read takes about the slowest one's time, not their sum);
    records, CI sources and the report are joined in the order of ``sources``, so the
    answer is the one a read source after source gives. An error of a source is raised
    in that order too, after the other readers stopped at their next batch.

    ``evaluation`` gets each source's streams and batches as they are read, in this
    thread (the readers hand them over through a queue), so the rules run while the
    servers answer."""
    progress = progress or LiveProgress(enabled=False)
    for src in sources:
        if (jql and src.type != "jira") or (query and src.type != "servicenow"):
            raise click.UsageError(
                f"--{'jql' if jql else 'query'} does not apply to {src.type} source {src.name!r}"
            )
    shown: dict[str, str] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def show(name: str, text: str) -> None:
        with lock:
            shown[name] = text
            progress.update("; ".join(shown.values()))

    handed: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
    evaluate = partial(_evaluate_item, evaluation) if evaluation is not None else None

    def hand(*item: Any) -> None:
        if evaluate is None:
            return
        if len(sources) < 2:
            evaluate(item)  # read in this thread
        else:
            handed.put(item)

    def read(src: Any) -> _SourceRead:
        try:
            return _read_source(
                src,
                scope=jql if src.type == "jira" else query,
                keys=keys.get(src.name) or None,
                since=since,
                show=show,
                stop=stop,
                hand=hand,
            )
        except BaseException:
            stop.set()  # the other readers stop at their next batch
            raise

    try:
        if len(sources) < 2:
            reads = [read(src) for src in sources]
        else:
            with ThreadPoolExecutor(len(sources), thread_name_prefix="ticketlint-source") as pool:
                futures = [pool.submit(read, src) for src in sources]
                try:
                    while not all(future.done() for future in futures):
                        try:
                            item = handed.get(timeout=_HANDOVER_POLL)
                        except queue.Empty:
                            continue
                        assert evaluate is not None  # only then is anything handed over
                        evaluate(item)
                    errors = [future.exception() for future in futures]
                finally:
                    stop.set()  # Ctrl-C while waiting: the readers stop too
            first = next((e for e in errors if e and not isinstance(e, _Stopped)), None)
            if first is not None:
                raise first
            while evaluate is not None and not handed.empty():
                evaluate(handed.get())  # the last batches, handed over as the readers ended
            reads = [future.result() for future in futures]
    finally:
        progress.clear()
    records: list[BaseRecord] = []
    ci_sources: set[str] = set()
    report = MappingReport()
    for done in reads:
        records.extend(done.records)
        report.merge(done.report)
        if done.reads_cis:
            ci_sources.add(done.name)
    latest = latest_versions(records)
    if len(latest) < len(records):
        report.warnings["records changed during the read: the latest version is checked"] += len(
            records
        ) - len(latest)
    return latest, ci_sources, report


_HANDOVER_POLL = 0.05
"""Seconds between looks at whether the readers finished, while no batch arrives."""


def _evaluate_item(evaluation: LiveEvaluation, item: tuple[Any, ...]) -> None:
    """One hand-over of a reader: ("begin", source, streams, reads_cis) or ("batch",
    source, stream, records)."""
    if item[0] == "begin":
        evaluation.begin(item[1], item[2], reads_cis=item[3])
    else:
        evaluation.add(item[1], item[2], item[3])


@dataclass
class _SourceRead:
    name: str
    records: list[BaseRecord]
    report: MappingReport
    reads_cis: bool


class _Stopped(Exception):
    """Another source failed: this one stops reading (its answer is not used)."""


def _read_source(
    src: Any,
    *,
    scope: str | None,
    keys: list[str] | None,
    since: datetime | None,
    show: Callable[[str, str], None],
    stop: threading.Event,
    hand: Callable[..., None] = lambda *item: None,
) -> _SourceRead:
    """One source of :func:`_read_live`, every stream; ``hand`` gets the streams to read
    and then each batch (see :func:`_evaluate_item`)."""
    done = _SourceRead(src.name, [], MappingReport(), False)
    connector = _open_connector(src)
    try:
        plan_reads(connector, dict.fromkeys(connector.streams, since))  # every stream is read
        streams = list(connector.streams)
        hand("begin", src.name, streams, not keys and any(s in CI_STREAMS for s in streams))
        for stream in streams:
            log.info("reading %s %s", src.name, stream)
            for batch in connector.read(stream, since=since, query=scope, keys=keys):
                if stop.is_set():
                    raise _Stopped(src.name)
                done.records.extend(batch.records)
                hand("batch", src.name, stream, batch.records)
                show(
                    src.name,
                    f"{src.name} {stream}: {len(done.records):,} records read "
                    f"({connector.request_count} requests)",
                )
                done.report.merge(batch.report)
                if not keys and (
                    stream in CI_STREAMS or any(r.process == "ci" for r in batch.records)
                ):
                    # With --key only the named tickets are read: the source's CIs
                    # were not, so CFG003 must not call every reference unknown.
                    done.reads_cis = True
        log.info("%s: %d requests", src.name, connector.request_count)
    finally:
        connector.close()
    return done


def latest_versions(records: Sequence[BaseRecord]) -> list[BaseRecord]:
    """One record per (source, key), the last one read, as the store keeps them.

    Keyset paging reads a ticket updated mid-read again at its new place at the end of
    the stream: that later copy is its current version, and checking both would count
    the ticket (and its findings) twice."""
    by_key: dict[tuple[str, str], BaseRecord] = {}
    for record in records:
        by_key.pop((record.source, record.key), None)  # keep read order of the latest copy
        by_key[(record.source, record.key)] = record
    return list(by_key.values())


def _stderr_is_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _colour_wanted() -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    _check_output(output)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None


def _check_output(output: Path) -> None:
    """``-o`` never creates directories: a mistyped path must not hide the file."""
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"cannot write {output}: directory {parent} does not exist")


def _report_on_stderr(
    result: formats.CheckResult, fmt: str, output: Path | None, state: State
) -> None:
    """Non-text formats (and -o) still tell the person at the terminal what happened."""
    if state.verbosity < 0 or (fmt == "text" and output is None):
        return
    ev, unchecked = result.evaluation, result.report.not_checked()
    line = f"ticketlint: {len(ev.findings)} findings in {ev.records} records"
    if unchecked:
        line += f"; {len(unchecked)} records not checked"
    click.echo(line + (f"; written to {output}" if output else ""), err=True)
    if unchecked and fmt == "csv":  # csv holds findings only: name them here
        for e in unchecked[:STDERR_UNCHECKED]:
            click.echo(
                f"  not checked: {e['source']}/{e['key'] or '(no key)'}: {e['reason']}", err=True
            )
        if len(unchecked) > STDERR_UNCHECKED:
            click.echo(
                f"  ... and {len(unchecked) - STDERR_UNCHECKED} more (all in -f json)", err=True
            )


# --- doctor ---------------------------------------------------------------------------


@cli.command()
@click.option("--source", shell_complete=_complete_sources, help="Only this source.")
@click.pass_context
def doctor(ctx: click.Context, source: str | None) -> None:
    """Check connectivity, auth and field mapping; list rules a source cannot evaluate."""
    cfg = _state(ctx).config(required=True)
    chosen = [cfg.source(source)] if source else list(cfg.sources)
    if not chosen:
        raise ConfigError(cfg.path, ["sources: no sources configured"])
    all_ok = True
    color = _colour_wanted()
    from ticketlint.sync.reconcile import doctor_info

    stored = doctor_info(cfg, [src.name for src in chosen])
    for src in chosen:
        try:
            connector = _open_connector(src)
            try:
                report = connector.doctor()
            finally:
                connector.close()
        except SourceError as exc:  # one source failing must not hide the others' reports
            report = DoctorReport(source=src.name, checks=[DoctorCheck("connect", False, str(exc))])
        # when deletions and scope exits were last looked for; what the last sync could not check
        report.info.update(stored.get(src.name, {}))
        click.echo(formats.render_doctor(report, color=color))
        all_ok = all_ok and report.ok
    ctx.exit(EXIT_CLEAN if all_ok else EXIT_ERROR)


# --- rules ----------------------------------------------------------------------------


@cli.group()
def rules() -> None:
    """List and explain the rules."""


@rules.command("list")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(formats.RULE_FORMATS),
    default="text",
    show_default=True,
)
@click.pass_context
def rules_list(ctx: click.Context, fmt: str) -> None:
    """Every known rule: code, name, severity, clause and title."""
    registry = registry_from_config(_state(ctx).config())
    click.echo(formats.render_rules(list(registry.rules.values()), fmt), nl=False)


@rules.command("explain")
@click.argument("code", shell_complete=_complete_rules)
@click.pass_context
def rules_explain(ctx: click.Context, code: str) -> None:
    """Why a rule exists, when it fails and passes, and how to fix its findings."""
    cfg = _state(ctx).config()
    r = registry_from_config(cfg).get(code)
    configured = {k.upper(): v for k, v in cfg.rules.severity.items()}.get(r.code)
    click.echo(formats.explain_rule(r, severity=configured), nl=False)


# --- config ---------------------------------------------------------------------------


@cli.group("config")
def config_group() -> None:
    """Validate and show the configuration."""


@config_group.command("validate")
@click.pass_context
def config_validate(ctx: click.Context) -> None:
    """Check the configuration file and the rule selection it makes; exit 2 if invalid."""
    cfg = _state(ctx).config(required=True)
    engine = engine_from_config(cfg)
    click.echo(
        f"{cfg.path}: OK ({len(cfg.sources)} sources, {len(engine.rules)} rules selected, "
        f"{len(cfg.notify)} notification destinations)"
    )
    for key, var in cfg.unresolved_env.items():
        click.echo(
            f"note: {key}: environment variable {var} is not set; commands that contact "
            "it will stop until it is (offline commands do not need it)",
            err=True,
        )


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """The effective configuration as YAML, with every secret redacted."""
    cfg = _state(ctx).config()
    click.echo(f"# {cfg.path or 'no configuration file: defaults'}")
    click.echo(yaml.safe_dump(cfg.redacted(), sort_keys=False, allow_unicode=True), nl=False)


# --- init -----------------------------------------------------------------------------

STARTER_CONFIG = """\
# ticketlint configuration (written by `ticketlint init`).
# Secrets are never stored here: ${VAR} is read from the environment.
# Check it with `ticketlint config validate`; see the README for every key.

# Where findings and their history are kept (SQLite by default; PostgreSQL for several hosts).
database: sqlite:///.ticketlint/ticketlint.db

sources:
  # Jira Cloud (Data Center: auth: {pat: "${JIRA_PAT}"}).
  - name: jira-prod
    type: jira
    url: https://example.atlassian.net
    auth: {email: ops@example.com, token: "${JIRA_API_TOKEN}"}
    jql: project in (OPS, CHG)                  # scope, ANDed with the incremental clause
    # issue_types: {incident: [Incident], change: [Change]}
    # fields: {change.backout_plan: "Rollback plan"}   # canonical field -> name or id
    # status_map: {change: {"Awaiting CAB": authorize}}

  # ServiceNow (OAuth: auth: {oauth: {client_id, client_secret, user, password}}).
  - name: snow-prod
    type: servicenow
    url: https://example.service-now.com
    auth: {user: svc_ticketlint, password: "${SNOW_PASSWORD}"}
    # tables: {incident: incident, change: change_request}
    # query: {incident: "assignment_group.nameSTARTSWITHIT"}
    # fields: {incident.review: u_pir_completed, incident.sla_breached: "!made_sla"}

rules:
  select: [ALL]              # codes, prefixes (CHG), names, processes (change) or packs
  ignore: []
  # params: {INC006: {stale_days: 21}}
  # severity: {CHG011: low}
  # paths: [rules/]          # declarative YAML rules

# waivers:                   # also managed with `ticketlint waive`
#   - {rule: CHG006, key: "OPS-1*", reason: "test plans kept in Confluence", owner: j.doe, expires: 2027-01-31}

# notify:
#   - {name: ops, type: slack, url: "${SLACK_WEBHOOK_URL}", min_severity: medium}

writeback: {enabled: false, label: ticketlint, comment: true}

# audit:                     # what the auditor samples: `ticketlint exposure`
#   sample: {change: 40, incident: 30, default: 25}
#   target: 0.10
"""


@cli.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
def init(ctx: click.Context, path: Path | None, force: bool) -> None:
    """Write a commented starter ticketlint.yaml (default: --config or ./ticketlint.yaml)."""
    target = path or Path(_state(ctx).config_path or config_mod.DEFAULT_NAME)
    if target.exists() and not force:
        raise CliError(f"{target} exists; use --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(STARTER_CONFIG, encoding="utf-8")
    click.echo(
        f"wrote {target}; set JIRA_API_TOKEN and SNOW_PASSWORD (or edit the sources), "
        "then run `ticketlint config validate`",
        err=True,
    )


# --- commands of other packages --------------------------------------------------------


def register_plugins(group: click.Group, modules: Sequence[str] = PLUGIN_MODULES) -> list[str]:
    """Add the ``COMMANDS`` of each installed module; a module that is not there yet is
    skipped, but an import error *inside* one surfaces. Built-in commands win a name clash."""
    added: list[str] = []
    for modname in modules:
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            # The module itself (or its package) is not installed yet: skip it. Anything
            # else missing is a real error inside the module and must surface.
            if exc.name is None or not (exc.name == modname or modname.startswith(exc.name + ".")):
                raise
            continue
        for command in getattr(module, "COMMANDS", ()):
            if isinstance(command, click.Command) and command.name not in group.commands:
                group.add_command(command)
                added.append(command.name or "")
    return added


def main() -> None:
    """The console script. It leaves without the interpreter's teardown
    (:mod:`ticketlint.exiting`); ``cli`` itself, as tests call it, exits normally."""
    exiting.will_leave()
    try:
        cli(prog_name="ticketlint")
    except SystemExit as exc:
        exiting.leave(exc)


if __name__ == "__main__":  # pragma: no cover - `python -m ticketlint.cli`
    main()
