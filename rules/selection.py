"""Build the rule engine a command runs: registry, selection, parameters and severities.

The configuration's ``rules:`` section chooses rules; ``--select`` / ``--ignore`` on the
command line replace the configured lists (they do not add to them), the same way ruff's
``--select`` replaces ``select`` in ``pyproject.toml``. Parameters and severity overrides
always come from the configuration. Errors are :class:`RuleSelectionError` (exit code 2).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path

from ticketlint.config import Config
from ticketlint.rules.engine import Engine
from ticketlint.rules.registry import Pack, Registry, RuleSelectionError, load_registry

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
    # Config-level params/severity must name rules that exist at all: a typo is an error.
    for code in [*cfg.rules.params, *cfg.rules.severity]:
        registry.get(code)  # raises RuleSelectionError naming the unknown rule
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
