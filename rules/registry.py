"""Rule declarations, packs and the registry that selects among them.

A rule is a decorated pure function. ``@rule(...)`` returns a :class:`Rule` value and
registers nothing: a pack lists its rules explicitly (``Pack.from_modules``), and the
registry is built from packs, so importing a module never changes global state.

Two kinds of rule exist:

- record rules, ``func(record, ctx) -> Outcome``, called once per record of the
  processes in ``applies_to`` (``ctx.index`` holds every record of the run for the few
  that look across records, e.g. CFG003 and REL001);
- aggregate rules, ``func(index, ctx) -> Iterable[Outcome]``, called once per run, whose
  outcomes name their own ``subject`` (PRB004: one finding per configuration item).
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import yaml

if TYPE_CHECKING:  # pragma: no cover
    from ticketlint.rules.engine import RecordIndex

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SEVERITIES)}
DOC_SECTIONS: tuple[str, ...] = ("Why", "Fails when", "Passes when", "Remediation")
ENTRY_POINT_GROUP = "ticketlint.packs"

_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,9}[0-9]{3}$")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_SECTION = re.compile(r"^\*\*(?P<title>[^*]+)\*\*\s*$", re.MULTILINE)


class RuleDefinitionError(Exception):
    """A rule or pack is declared wrongly (a programming error in a pack)."""


class RuleSelectionError(ValueError):
    """A selector, parameter or severity override names nothing that exists."""


@dataclass(frozen=True)
class RuleContext:
    """What a rule may read besides the record: the evaluation instant, its parameters
    (defaults merged with the config) and the index of all records of the run."""

    as_of: datetime
    params: Mapping[str, Any]
    index: RecordIndex


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    title: str
    severity: str
    clause: str
    applies_to: tuple[str, ...]
    func: Callable[..., Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: Literal["record", "aggregate"] = "record"
    pack: str = ""
    doc: str = ""

    @property
    def sections(self) -> dict[str, str]:
        return doc_sections(self.doc)

    @property
    def remediation(self) -> str:
        return _remediation(self.doc)  # cached: read for every finding on the hot path

    def with_pack(self, pack: str) -> Rule:
        return Rule(**{**self.__dict__, "pack": pack})

    def resolve_params(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults merged with overrides, each checked against its default's type."""
        merged = dict(self.params)
        for key, value in (overrides or {}).items():
            if key not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise RuleSelectionError(
                    f"{self.code} has no parameter {key!r} (its parameters: {known})"
                )
            merged[key] = _coerce_param(self.code, key, self.params[key], value)
        return merged


def _coerce_param(code: str, key: str, default: Any, value: Any) -> Any:
    expected = type(default)
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected in (int, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return expected(value)
    elif expected is dict:
        if isinstance(value, Mapping):
            out = dict(default)
            for k, v in value.items():
                sample_key = next(iter(default), None)
                nk = type(sample_key)(k) if sample_key is not None else k
                if nk not in default:
                    raise RuleSelectionError(
                        f"{code}.{key} has no entry {k!r} (entries: {', '.join(map(str, default))})"
                    )
                out[nk] = _coerce_param(code, f"{key}.{k}", default[nk], v)
            return out
    elif isinstance(value, expected):
        return value
    raise RuleSelectionError(
        f"{code}.{key}: expected {expected.__name__} like {default!r}, got {value!r}"
    )


@functools.cache
def _remediation(doc: str) -> str:
    return " ".join(doc_sections(doc).get("Remediation", "").split())


def doc_sections(doc: str) -> dict[str, str]:
    """Split a rule docstring into its ``**Section**`` blocks."""
    sections: dict[str, str] = {}
    matches = list(_SECTION.finditer(doc or ""))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(doc)
        sections[match.group("title").strip()] = doc[match.end() : end].strip()
    return sections


def rule(
    *,
    code: str,
    name: str,
    title: str,
    severity: str,
    clause: str,
    applies_to: Sequence[str],
    params: Mapping[str, Any] | None = None,
    kind: Literal["record", "aggregate"] = "record",
) -> Callable[[Callable[..., Any]], Rule]:
    """Declare a rule. The decorated function becomes a :class:`Rule` value."""

    def wrap(func: Callable[..., Any]) -> Rule:
        if not _CODE.match(code):
            raise RuleDefinitionError(f"{func.__name__}: bad rule code {code!r}")
        if not _NAME.match(name):
            raise RuleDefinitionError(f"{code}: bad rule name {name!r} (kebab-case)")
        if severity not in SEVERITY_RANK:
            raise RuleDefinitionError(f"{code}: severity {severity!r} not in {SEVERITIES}")
        return Rule(
            code=code,
            name=name,
            title=title,
            severity=severity,
            clause=clause,
            applies_to=tuple(applies_to),
            func=func,
            params=dict(params or {}),
            kind=kind,
            doc=_dedent(func.__doc__ or ""),
        )

    return wrap


def _dedent(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)


@dataclass(frozen=True)
class Pack:
    """A named set of rules and the clause map that ties them to a standard."""

    name: str
    rules: tuple[Rule, ...]
    title: str = ""
    clause_map: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_modules(
        cls,
        name: str,
        modules: Iterable[ModuleType],
        *,
        title: str = "",
        clause_map: Path | None = None,
    ) -> Pack:
        found: list[Rule] = []
        for module in modules:
            found.extend(v.with_pack(name) for v in vars(module).values() if isinstance(v, Rule))
        found.sort(key=lambda r: r.code)
        data = yaml.safe_load(clause_map.read_text(encoding="utf-8")) if clause_map else {}
        return cls(name=name, rules=tuple(found), title=title, clause_map=data or {})


class Registry:
    """All known rules by code, and selection among them."""

    def __init__(self, packs: Iterable[Pack] = ()) -> None:
        self.packs: dict[str, Pack] = {}
        self.rules: dict[str, Rule] = {}
        for pack in packs:
            self.add_pack(pack)

    def add_pack(self, pack: Pack) -> None:
        if pack.name in self.packs:
            raise RuleDefinitionError(f"pack {pack.name!r} is registered twice")
        names = {r.name: r.code for r in self.rules.values()}
        for r in pack.rules:
            if r.code in self.rules:
                raise RuleDefinitionError(f"rule code {r.code} is defined twice")
            if r.name in names:
                raise RuleDefinitionError(
                    f"rule name {r.name} is used by {names[r.name]} and {r.code}"
                )
            names[r.name] = r.code
        self.packs[pack.name] = pack
        for r in pack.rules:
            self.rules[r.code] = r

    def get(self, code_or_name: str) -> Rule:
        wanted = code_or_name.strip()
        for r in self.rules.values():
            if r.code == wanted.upper() or r.name == wanted.lower():
                return r
        raise RuleSelectionError(
            f"no rule {code_or_name!r}{self.suggest(wanted)}; `ticketlint rules list` shows them"
        )

    def suggest(self, word: str, *, selectors: bool = False) -> str:
        """`` (did you mean 'CHG005'?)`` among codes and names (and, for selectors, the
        packs and processes too), or ``""``."""
        from ticketlint.yaml_lines import did_you_mean

        known = [*self.rules, *(r.name for r in self.rules.values())]
        if selectors:
            known += [*self.packs, *(p for r in self.rules.values() for p in r.applies_to)]
        return did_you_mean(word, known)

    def matches(self, selector: str, r: Rule) -> bool:
        """A selector is ALL, a code (or prefix like CHG), a name, a process or a pack,
        with shell wildcards allowed (CHG00*)."""
        s = selector.strip()
        if s.upper() == "ALL":
            return True
        return (
            any(
                fnmatch.fnmatchcase(value, pattern)
                for value, pattern in (
                    (r.code, s.upper()),
                    (r.name, s.lower()),
                    (r.pack, s.lower()),
                )
            )
            or s.lower() in r.applies_to
            or (s.isalpha() and s.isupper() and r.code.startswith(s))
        )

    def select(self, select: Sequence[str] = ("ALL",), ignore: Sequence[str] = ()) -> list[Rule]:
        for selector in [*select, *ignore]:
            if not any(self.matches(selector, r) for r in self.rules.values()):
                raise RuleSelectionError(
                    f"selector {selector!r} matches no rule, process or pack"
                    + self.suggest(selector.strip(), selectors=True)
                )
        chosen = [
            r
            for r in self.rules.values()
            if any(self.matches(s, r) for s in select)
            and not any(self.matches(s, r) for s in ignore)
        ]
        return sorted(chosen, key=lambda r: r.code)


def load_registry(extra_packs: Iterable[Pack] = ()) -> Registry:
    """The built-in pack, every pack published under the ``ticketlint.packs`` entry-point
    group, then ``extra_packs`` (declarative YAML rules from the config)."""
    from ticketlint.rules.packs.iso20000 import PACK as ISO20000

    packs: dict[str, Pack] = {ISO20000.name: ISO20000}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in packs:
            continue
        pack = ep.load()
        if not isinstance(pack, Pack):
            raise RuleDefinitionError(f"entry point {ep.name!r} ({ep.value}) is not a rules Pack")
        packs[pack.name] = pack
    return Registry([*packs.values(), *extra_packs])
