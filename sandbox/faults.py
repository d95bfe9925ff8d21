"""Deterministic fault injection for the sandbox.

``FaultPlan.parse("429=0.05,500=0.03,reset=0.01,slow=0.02,retry_after=1,mutate=0.01", seed)``.
Request number *n* (counted over API requests, admin endpoints excluded) gets the same
fault for the same seed and spec, whatever the wall clock. A faulted request never
reaches a handler, so it has no side effect; ``mutate`` is not an error but another
user's edit just before the request is served (a record's updated time is bumped).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

KINDS = ("429", "500", "502", "503", "reset", "slow", "mutate")


class FaultSpecError(ValueError):
    pass


@dataclass
class FaultPlan:
    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 1
    retry_after: float = 1.0
    slow_seconds: float = 0.5
    counter: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def parse(cls, spec: str | None, seed: int = 1) -> FaultPlan:
        plan = cls(seed=seed)
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, raw = part.partition("=")
            try:
                value = float(raw)
            except ValueError:
                raise FaultSpecError(f"fault {part!r}: expected name=number") from None
            name = name.strip().lower()
            if not sep or value < 0:
                raise FaultSpecError(f"fault {part!r}: expected name=number >= 0")
            if name == "retry_after":
                plan.retry_after = value
            elif name == "slow_seconds":
                plan.slow_seconds = value
            elif name == "5xx":
                plan.rates["500"] = value
            elif name in KINDS:
                if value > 1:
                    raise FaultSpecError(f"fault {part!r}: a rate is between 0 and 1")
                plan.rates[name] = value
            else:
                raise FaultSpecError(
                    f"unknown fault {name!r} (known: {', '.join(KINDS)}, retry_after, slow_seconds)"
                )
        if sum(plan.rates.values()) > 1:
            raise FaultSpecError("fault rates add up to more than 1")
        return plan

    def next(self) -> tuple[int, str | None]:
        """The request number and its fault (None = serve normally)."""
        with self._lock:
            self.counter += 1
            n = self.counter
        fault = self.fault_for(n)
        if fault:
            with self._lock:
                self.injected[fault] = self.injected.get(fault, 0) + 1
        return n, fault

    def fault_for(self, n: int) -> str | None:
        if not self.rates:
            return None
        digest = hashlib.sha256(f"{self.seed}:fault:{n}".encode()).digest()
        x = int.from_bytes(digest[:8], "big") / 2**64
        for name in KINDS:
            rate = self.rates.get(name, 0.0)
            if x < rate:
                return name
            x -= rate
        return None

    def with_retry_after(self, n: int) -> bool:
        """Half of the 429s carry ``Retry-After``, half do not (clients must back off anyway)."""
        return hashlib.sha256(f"{self.seed}:ra:{n}".encode()).digest()[0] % 2 == 0
