"""Build the rule engine a command runs: registry, selection, parameters and severities.

The configuration's ``rules:`` section chooses rules; ``--select`` / ``--ignore`` on the
command line replace the configured lists (they do not add to them), the same way ruff's
``--select`` replaces ``select`` in ``pyproject.toml``. Parameters and severity overrides
always come from the configuration. Errors are :class:`RuleSelectionError` (exit code 2).
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path

from ticketlint.config import Config
from ticketlint.rules.engine import Engine
from ticketlint.rules.registry import Pack, Registry, Rule, RuleSelectionError, load_registry
from ticketlint.yaml_lines import did_you_mean, locate

_DECLARATIVE = "ticketlint.rules.declarative"


def registry_from_config(cfg: Config) -> Registry:
    """The built-in and installed packs plus the declarative YAML rules of ``rules.paths``."""
    extra: list[Pack] = []
    if cfg.rules.paths:
        try:
            declarative = importlib.import_module(_DECLARATIVE)
        except ModuleNotFoundError as exc:
            if exc.name != _DECLARATIVE:
                raise  # a real import error inside the module must surface
            raise RuleSelectionError(
                "rules.paths is set but declarative rules are not available in this version"
            ) from None
        base = cfg.path.parent if cfg.path else Path(".")
        paths = [p if Path(p).is_absolute() else base / p for p in map(Path, cfg.rules.paths)]
        loaded = declarative.load_declarative_pack(paths)
        if loaded is not None:  # None: the paths hold no rules
            extra.append(loaded)
    return load_registry(extra)


def engine_from_config(
    cfg: Config,
    *,
    select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    registry: Registry | None = None,
) -> Engine:
    """An :class:`Engine` for the configured (or command-line) selection.

    A command-line ``select`` replaces the configured select *and* ignore lists (only a
    command-line ``ignore`` then removes rules); a command-line ``ignore`` alone replaces
    the configured ignore list.
    Parameters and severity overrides of rules that are not selected are dropped, so
    ``--select CHG`` does not fail because the config tunes INC006.
    """
    registry = registry if registry is not None else registry_from_config(cfg)
    if select:
        # An explicit command-line selection is what the user wants to see, so the
        # configured ignore list does not silently remove from it (only --ignore does).
        chosen_select, chosen_ignore = list(select), list(ignore or ())
    else:
        chosen_select = list(cfg.rules.select)
        chosen_ignore = list(ignore) if ignore else list(cfg.rules.ignore)
    # Everything the config names must exist, selected or not: a typo is an error.
    problems = config_rule_problems(cfg, registry)
    if problems:
        raise RuleSelectionError("\n".join(problems))
    rules = registry.select(chosen_select, chosen_ignore)
    codes = {r.code for r in rules}
    params = {
        registry.get(c).code: p
        for c, p in cfg.rules.params.items()
        if registry.get(c).code in codes
    }
    severity = {
        registry.get(c).code: s
        for c, s in cfg.rules.severity.items()
        if registry.get(c).code in codes
    }
    return Engine(rules, params=params, severity=severity)


def config_rule_problems(cfg: Config, registry: Registry) -> list[str]:
    """Every rule id, selector, parameter and severity override in the configuration
    (``rules:`` and ``waivers:``) checked against the registry, whether the rule is
    selected or not: ``file:line key: message (did you mean ...?)`` per problem."""
    problems: list[str] = []
    text = _config_text(cfg)

    def where(*keys: str | int) -> str:
        return locate(cfg.path, keys, text)

    for section in ("select", "ignore"):
        for i, selector in enumerate(getattr(cfg.rules, section)):
            if not any(registry.matches(selector, r) for r in registry.rules.values()):
                problems.append(
                    f"{where('rules', section, i)}: selector {selector!r} matches no rule, "
                    f"process or pack{registry.suggest(selector.strip(), selectors=True)}"
                )
    for code, overrides in cfg.rules.params.items():
        found = _rule(registry, code)
        if found is None:
            problems.append(
                f"{where('rules', 'params', code)}: no rule {code!r}{registry.suggest(code)}"
            )
            continue
        for key, value in (overrides or {}).items():
            if key not in found.params:
                known = ", ".join(sorted(found.params)) or "none"
                problems.append(
                    f"{where('rules', 'params', code, key)}: {found.code} has no parameter "
                    f"{key!r}{did_you_mean(key, found.params)} (its parameters: {known})"
                )
                continue
            try:
                found.resolve_params({key: value})
            except RuleSelectionError as exc:
                problems.append(f"{where('rules', 'params', code, key)}: {exc}")
    for code in cfg.rules.severity:
        if _rule(registry, code) is None:
            problems.append(
                f"{where('rules', 'severity', code)}: no rule {code!r}{registry.suggest(code)}"
            )
    for i, waiver in enumerate(cfg.waivers):
        problem = waiver_rule_problem(waiver.rule, registry)
        if problem:
            problems.append(f"{where('waivers', i, 'rule')}: {problem}")
    return problems


def waiver_rule_problem(rule_id: str, registry: Registry) -> str | None:
    """Why a waiver's rule (a code, or a glob of codes such as ``CHG00*``) names no
    rule, with a suggestion; None when it names at least one."""
    wanted = rule_id.strip().upper()
    if any(ch in wanted for ch in "*?["):
        if any(fnmatch.fnmatchcase(code, wanted) for code in registry.rules):
            return None
        return f"rule pattern {rule_id!r} matches no rule code"
    if wanted in registry.rules:
        return None
    by_name = next((r.code for r in registry.rules.values() if r.name == rule_id.strip()), None)
    if by_name:
        return f"waivers name a rule by its code: use {by_name!r} for {rule_id!r}"
    return f"no rule {rule_id!r}{registry.suggest(rule_id.strip())}"


def _rule(registry: Registry, code: str) -> Rule | None:
    try:
        return registry.get(code)
    except RuleSelectionError:
        return None


def _config_text(cfg: Config) -> str | None:
    if cfg.path is None:
        return None
    try:
        return Path(cfg.path).read_text(encoding="utf-8")
    except OSError:
        return None


def parse_as_of(text: str) -> datetime:
    """An ISO 8601 date or datetime as an aware UTC datetime; naive values are UTC.

    ``2026-03-31`` means midnight UTC at the start of that day.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), datetime.min.time())
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or datetime (e.g. 2026-03-31 or 2026-03-31T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)
