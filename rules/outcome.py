"""What one rule says about one record: PASS, FAIL, NOT_APPLICABLE or NOT_EVALUATED."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    NOT_APPLICABLE = "NOT_APPLICABLE"
    NOT_EVALUATED = "NOT_EVALUATED"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A verdict. FAIL carries the one-line message and the evidence read; NOT_EVALUATED
    carries the reason (which field the source does not provide). ``subject`` is set only
    by aggregate rules whose finding is about something other than a record (PRB004: a CI).
    """

    status: Status
    message: str = ""
    reason: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    subject_process: str | None = None


PASS = Outcome(Status.PASS)
NOT_APPLICABLE = Outcome(Status.NOT_APPLICABLE)


def fail(message: str, **evidence: Any) -> Outcome:
    return Outcome(Status.FAIL, message=message, evidence=evidence)


def not_evaluated(reason: str) -> Outcome:
    return Outcome(Status.NOT_EVALUATED, reason=reason)


def missing_field(*names: str) -> Outcome:
    """NOT_EVALUATED because the source does not provide these canonical fields."""
    return Outcome(Status.NOT_EVALUATED, reason="source does not provide " + ", ".join(names))
