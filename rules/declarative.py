"""Declarative rules: an admin writes YAML, not Python.

A file holds ``rules:``, each with the metadata of a built-in rule and two conditions:
``when`` (the record is in scope, else NOT_APPLICABLE) and ``require`` (what must hold,
else FAIL)::

    rules:
      - code: PAY001
        name: pay-normal-change-test-plan
        title: Normal changes in project PAY need a test plan
        severity: medium
        clause: "8.5.1.3"
        process: change
        when:
          all:
            - {field: key, matches: "PAY-*"}
            - {field: change_type, equals: normal}
            - {field: state, in: [scheduled, implement, review, closed]}
        require: {field: test_plan, not_empty: true}
        message: "normal change {key} in PAY has no test plan"
        why: Auditors sample PAY changes; each must show how it was tested.
        remediation: Attach or write the test plan in the change.

Conditions: ``equals``, ``in``, ``matches`` (shell glob), ``empty`` / ``not_empty``,
``before`` / ``after`` (an ISO date or datetime), ``older_than_days`` (compared with
``as_of``, never the clock), combined with ``all`` / ``any`` / ``not``. ``field`` is a
dotted path into the record (``assignee.name``, ``raw.fields.customfield_10042``).

Missing data is neither compliance nor violation: a field the source does not provide
(None) makes its condition unknown, and an unknown scope or requirement is
NOT_EVALUATED. ``all`` is false if any part is false, unknown if any is unknown; ``any``
is true if any part is true, unknown if any is unknown.
"""

from __future__ import annotations

import fnmatch
import typing
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ticketlint.mapping.model import PROCESSES, RECORD_CLASSES, is_empty
from ticketlint.rules.outcome import NOT_APPLICABLE, PASS, Outcome, fail, not_evaluated
from ticketlint.rules.registry import Pack, Rule, RuleContext, rule
from ticketlint.yaml_lines import did_you_mean, locate

PACK_NAME = "custom"
Tri = bool | None  # True, False, or None (unknown: the source does not provide the field)
_OPERATORS = ("equals", "in", "matches", "empty", "not_empty", "before", "after", "older_than_days")


class DeclarativeRuleError(Exception):
    """A declarative rule file is invalid; names the file and the rule."""

    exit_code = 2


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    all_: list[Condition] | None = Field(default=None, alias="all")
    any_: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")
    field: str | None = None
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    matches: str | None = None
    empty: bool | None = None
    not_empty: bool | None = None
    before: datetime | date | None = None
    after: datetime | date | None = None
    older_than_days: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        combinators = [c for c in (self.all_, self.any_, self.not_) if c is not None]
        operators = [op for op in _OPERATORS if self._operand(op) is not None]
        if combinators and (self.field or operators):
            raise ValueError("a condition is either all/any/not or a field test, not both")
        if len(combinators) > 1:
            raise ValueError("use one of all, any, not per condition")
        if not combinators:
            if not self.field:
                raise ValueError("a field test needs `field`")
            if len(operators) != 1:
                raise ValueError(f"a field test needs exactly one of {', '.join(_OPERATORS)}")
        return self

    def _operand(self, op: str) -> Any:
        return self.in_ if op == "in" else getattr(self, op)


class DeclarativeRule(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    code: str
    name: str
    title: str
    severity: Literal["info", "low", "medium", "high", "critical"] = "medium"
    clause: str = ""
    process: str | list[str]
    when: Condition | None = None
    require: Condition
    message: str = "{process} {key} does not meet {code}"
    why: str = "Defined by this organisation's declarative rules."
    remediation: str = "Complete the record as the rule requires."

    @model_validator(mode="after")
    def _known_processes(self) -> DeclarativeRule:
        for p in self.processes:
            if p not in PROCESSES:
                raise ValueError(f"process {p!r} is not one of {', '.join(PROCESSES)}")
        return self

    @property
    def processes(self) -> tuple[str, ...]:
        return (self.process,) if isinstance(self.process, str) else tuple(self.process)


def _resolve(record: Any, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if value is None:
            return None
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value


def _aware(value: datetime | date) -> datetime:
    """A datetime as an aware one (naive means UTC); a date as its UTC midnight."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, (datetime, date)):
        return _aware(value)
    if isinstance(value, str) and value.strip():
        try:
            return _as_datetime(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def evaluate_condition(cond: Condition, record: Any, as_of: datetime) -> Tri:
    """Three-valued evaluation: True, False, or None when a needed field is not provided."""
    if cond.all_ is not None:
        results = [evaluate_condition(c, record, as_of) for c in cond.all_]
        return False if False in results else (None if None in results else True)
    if cond.any_ is not None:
        results = [evaluate_condition(c, record, as_of) for c in cond.any_]
        return True if True in results else (None if None in results else False)
    if cond.not_ is not None:
        inner = evaluate_condition(cond.not_, record, as_of)
        return None if inner is None else not inner
    assert cond.field is not None
    value = _resolve(record, cond.field)
    if value is None:
        return None
    if cond.empty is not None:
        return is_empty(value) == cond.empty
    if cond.not_empty is not None:
        return (not is_empty(value)) == cond.not_empty
    if cond.equals is not None:
        return _same(value, cond.equals)
    if cond.in_ is not None:
        return any(_same(value, option) for option in cond.in_)
    if cond.matches is not None:
        return isinstance(value, str) and fnmatch.fnmatchcase(value, cond.matches)
    # What is left is a time test: the model allows exactly one operator per field test.
    moment = _as_datetime(value)
    if moment is None:
        return False if is_empty(value) else None  # present but blank: no such time
    if cond.before is not None:
        return moment < _aware(cond.before)
    if cond.after is not None:
        return moment > _aware(cond.after)
    assert cond.older_than_days is not None
    return moment < as_of - timedelta(days=cond.older_than_days)


def _same(value: Any, expected: Any) -> bool:
    if isinstance(value, str) and isinstance(expected, str):
        return value.strip().lower() == expected.strip().lower()
    if isinstance(value, (list, tuple)):
        return any(_same(v, expected) for v in value)
    return bool(value == expected)


def _rule_function(spec: DeclarativeRule) -> Callable[[Any, RuleContext], Outcome]:
    def check(record: Any, ctx: RuleContext) -> Outcome:
        if record.state == "cancelled":
            return NOT_APPLICABLE
        if spec.when is not None:
            scope = evaluate_condition(spec.when, record, ctx.as_of)
            if scope is None:
                return not_evaluated(
                    f"scope of {spec.code} reads a field the source does not provide"
                )
            if not scope:
                return NOT_APPLICABLE
        verdict = evaluate_condition(spec.require, record, ctx.as_of)
        if verdict is None:
            return not_evaluated(f"{spec.code} reads a field the source does not provide")
        if verdict:
            return PASS
        return fail(_message(spec, record), rule=spec.code)

    return check


def _message(spec: DeclarativeRule, record: Any) -> str:
    values = {
        "key": record.key,
        "process": record.process,
        "code": spec.code,
        "title": record.title or "",
        "source": record.source,
    }
    try:
        return spec.message.format(**values)
    except (KeyError, IndexError, ValueError):
        return spec.message


def _doc(spec: DeclarativeRule) -> str:
    fails = yaml.safe_dump(
        {"when": _dump(spec.when), "require": _dump(spec.require)}, sort_keys=False
    ).strip()
    return (
        f"{spec.title}\n\n**Why**\n{spec.why}\n\n**Fails when**\nThe record is in scope "
        f"(`when`) and the requirement (`require`) does not hold:\n\n{fails}\n\n"
        f"**Passes when**\nThe requirement holds, or the record is out of scope.\n\n"
        f"**Remediation**\n{spec.remediation}\n"
    )


def _dump(cond: Condition | None) -> Any:
    return None if cond is None else cond.model_dump(by_alias=True, exclude_none=True, mode="json")


def field_problems(
    spec: DeclarativeRule, cond: Condition | None, keys: tuple[str | int, ...]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every ``field`` of a condition tree that no record of the rule's processes has:
    (key path of the ``field`` key, message with a "did you mean"). A misspelt field
    would otherwise make every record NOT_EVALUATED without naming it."""
    if cond is None:
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    for name, children in (("all", cond.all_), ("any", cond.any_)):
        for i, child in enumerate(children or []):
            found += field_problems(spec, child, (*keys, name, i))
    if cond.not_ is not None:
        found += field_problems(spec, cond.not_, (*keys, "not"))
    if cond.field is not None:
        for process in spec.processes:
            problem = _field_problem(RECORD_CLASSES[process], cond.field)
            if problem:
                found.append(((*keys, "field"), f"{process} records: {problem}"))
                break
    return found


def _field_problem(model: type[BaseModel], path: str) -> str | None:
    """Why ``path`` (``assignee.name``, ``raw.fields.x``) names nothing on ``model``."""
    current: Any = model
    walked: list[str] = []
    for part in path.split("."):
        if current is dict:
            return None  # raw.<anything>: the source's own payload
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return f"{'.'.join(walked)} is not an object: {path!r} cannot be read"
        fields = current.model_fields
        if part not in fields:
            where = f"{'.'.join(walked)} has" if walked else "there is"
            return f"{where} no field {part!r}{did_you_mean(part, fields)}"
        walked.append(part)
        current = _object_type(fields[part].annotation)
    return None


def _object_type(annotation: Any) -> Any:
    """The model (or ``dict``) inside ``X | None``; anything else is a plain value."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) else (annotation,)
    for option in (annotation, *options):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
        if option is dict or typing.get_origin(option) is dict:
            return dict
    return None


def build_rule(spec: DeclarativeRule) -> Rule:
    made = rule(
        code=spec.code,
        name=spec.name,
        title=spec.title,
        severity=spec.severity,
        clause=spec.clause,
        applies_to=spec.processes,
    )(_rule_function(spec))
    return Rule(**{**made.__dict__, "doc": _doc(spec), "pack": PACK_NAME})


def _files(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        elif path.exists():
            found.append(path)
        else:
            raise DeclarativeRuleError(f"{path}: declarative rule file not found")
    return found


def load_declarative_pack(paths: Iterable[str | Path]) -> Pack | None:
    """All declarative rules of these files and directories as the ``custom`` pack, or
    None when there are none."""
    built: list[Rule] = []
    for path in _files(paths):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise DeclarativeRuleError(f"{path}: cannot read rules: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            raise DeclarativeRuleError(f"{path}: expected a mapping with a `rules:` list")
        text: str | None = None
        for i, item in enumerate(data["rules"]):
            try:
                spec = DeclarativeRule.model_validate(item)
                made = build_rule(spec)
                problems = [
                    *field_problems(spec, spec.when, ("rules", i, "when")),
                    *field_problems(spec, spec.require, ("rules", i, "require")),
                ]
                if problems:
                    text = text if text is not None else path.read_text(encoding="utf-8")
                    raise DeclarativeRuleError(
                        "\n".join(
                            f"{locate(path, keys, text)} ({spec.code}): {message}"
                            for keys, message in problems
                        )
                    )
                built.append(made)
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                name = item.get("code", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
                raise DeclarativeRuleError(
                    f"{path}: rules[{i}] ({name}): {loc}: {first['msg']}"
                ) from None
            except DeclarativeRuleError:
                raise
            except Exception as exc:  # noqa: BLE001 - bad code/name format from the decorator
                raise DeclarativeRuleError(f"{path}: rules[{i}]: {exc}") from None
    if not built:
        return None
    return Pack(
        name=PACK_NAME,
        rules=tuple(sorted(built, key=lambda r: r.code)),
        title="Declarative rules from the configuration",
    )
