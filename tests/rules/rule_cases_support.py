"""Loading and running the per-rule YAML case files (tests/rules/cases/<CODE>.yaml).

A case file holds ``as_of``, optional ``params`` and ``defaults`` (per process, merged
under every record of that process) and ``cases``. Each case has ``name``, ``expect``
(PASS / FAIL / NOT_APPLICABLE / NOT_EVALUATED; NO_OUTCOME for an aggregate subject that
yields nothing), optional ``message_contains`` (checked against the FAIL message or the
NOT_EVALUATED reason), optional ``as_of`` / ``params`` / ``ci_sources`` overrides, and
``records``: minimal normalised records, each naming its process with ``base`` (or
``process``). For record rules the outcome checked is the record marked ``subject: true``,
else the first record the rule applies to; for aggregate rules (PRB004) the case names
the ``subject`` CI key (and optionally its ``source``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ticketlint.mapping.model import BaseRecord, record_from_dict
from ticketlint.rules.engine import Engine, Evaluation, RecordIndex
from ticketlint.rules.outcome import Outcome
from ticketlint.rules.registry import Rule, RuleContext

CASES_DIR = Path(__file__).parent / "cases"
STATUSES = ("PASS", "FAIL", "NOT_APPLICABLE", "NOT_EVALUATED")
SOURCE = "src"
COMMON = {"source": SOURCE, "system": "file"}


def parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"as_of {value!r} must carry a time zone")
    return parsed


def load_case_file(code: str) -> dict[str, Any]:
    return yaml.safe_load((CASES_DIR / f"{code}.yaml").read_text(encoding="utf-8"))


def case_codes() -> list[str]:
    return sorted(p.stem for p in CASES_DIR.glob("*.yaml"))


@dataclass
class Case:
    code: str
    name: str
    expect: str
    as_of: datetime
    params: dict[str, Any]
    records: list[BaseRecord]
    subject_index: int | None
    subject: str | None
    subject_source: str
    message_contains: str | None
    ci_sources: list[str] | None


def iter_cases() -> list[Case]:
    out: list[Case] = []
    for code in case_codes():
        data = load_case_file(code)
        defaults = data.get("defaults") or {}
        for raw in data["cases"]:
            records: list[BaseRecord] = []
            subject_index = None
            for i, spec in enumerate(raw["records"]):
                spec = dict(spec)
                if spec.pop("subject", False):
                    subject_index = i
                process = spec.pop("base", None) or spec["process"]
                merged = {
                    **COMMON,
                    "process": process,
                    "key": f"{process.upper()}-{i + 1}",
                    **defaults.get(process, {}),
                    **spec,
                }
                records.append(record_from_dict(merged))
            out.append(
                Case(
                    code=code,
                    name=raw["name"],
                    expect=raw["expect"],
                    as_of=parse_time(raw.get("as_of", data["as_of"])),
                    params={**(data.get("params") or {}), **(raw.get("params") or {})},
                    records=records,
                    subject_index=subject_index,
                    subject=raw.get("subject"),
                    subject_source=raw.get("source", SOURCE),
                    message_contains=raw.get("message_contains"),
                    ci_sources=raw.get("ci_sources"),
                )
            )
    return out


def run_case(rule: Rule, case: Case) -> tuple[Evaluation, Outcome | None, BaseRecord | None]:
    """Evaluate the case through the engine (only this rule selected) and compute the
    subject's own outcome by calling the rule with the same parameters and index."""
    engine = Engine([rule], params={rule.code: case.params} if case.params else None)
    evaluation = engine.evaluate(case.records, as_of=case.as_of, ci_sources=case.ci_sources)
    index = RecordIndex(case.ci_sources)
    for record in case.records:
        index.add(record)
    ctx = RuleContext(case.as_of, engine.params[rule.code], index)
    if rule.kind == "aggregate":
        matching = [
            o
            for o in rule.func(index, ctx)
            if o.subject == case.subject and o.evidence.get("source") == case.subject_source
        ]
        assert len(matching) <= 1, f"{len(matching)} outcomes for subject {case.subject}"
        return evaluation, (matching[0] if matching else None), None
    if case.subject_index is not None:
        subject = case.records[case.subject_index]
    else:
        subject = next(r for r in case.records if r.process in rule.applies_to)
    return evaluation, rule.func(subject, ctx), subject
