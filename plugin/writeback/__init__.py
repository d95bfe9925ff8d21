"""Write-back: flag tickets where people work (Jira label + one comment, ServiceNow work notes).

Opt-in with ``writeback.enabled``. The desired state of a ticket is a function of its open
findings (see :mod:`ticketlint.plugin.writeback.plan`); the write-back log in the store says what was
applied, so reruns write nothing new and a crash never duplicates (see
:mod:`ticketlint.plugin.writeback.apply`). A failed write is logged with its error and retried next
time; it never changes or blocks the sync's result.

Public API:

- :func:`after_sync` (called by the runner after every commit of a real sync),
- :func:`preview` (the writes a ``sync --dry-run`` would lead to; writes nothing),
- :func:`write_for_keys` (write-back for some tickets now; used by ``serve``),
- :func:`plan` / :func:`apply` for ``ticketlint writeback``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ticketlint.config import Config
from ticketlint.plugin.writeback.apply import Executor, WritebackSummary
from ticketlint.plugin.writeback.plan import PlannedWrite, plan_source, stored_open
from ticketlint.plugin.writeback.render import OpenFinding
from ticketlint.store.db import Store

log = logging.getLogger(__name__)

__all__ = [
    "PlannedWrite",
    "WritebackSummary",
    "after_sync",
    "apply",
    "plan",
    "preview",
    "write_for_keys",
]


def _ok_sources(result: Any) -> list[str]:
    """Sources whose findings are known after this run (synced without error)."""
    return [s.name for s in getattr(result, "sources", []) if getattr(s, "status", None) == "ok"]


def plan(
    store: Store, cfg: Config, source_name: str, keys: Sequence[str] | None = None
) -> tuple[list[PlannedWrite], list[str]]:
    """The writes that bring a source's tickets (or just ``keys``) to the stored findings."""
    with store.session() as s:
        return plan_source(s, cfg, cfg.source(source_name), keys=keys)


def apply(
    store: Store,
    cfg: Config,
    source_name: str,
    plans: list[PlannedWrite],
    *,
    run_id: int | None = None,
    remote: Any = None,
) -> WritebackSummary:
    """Carry out planned writes of one source (intent, request, confirmation per write)."""
    executor = Executor(store, cfg.source(source_name), run_id=run_id, remote=remote)
    try:
        return executor.run(plans)
    finally:
        executor.close()


def write_for_keys(
    store: Store, cfg: Config, source_name: str, keys: Sequence[str], *, run_id: int | None = None
) -> WritebackSummary:
    """Apply write-back for just these tickets of one source, now (from the stored findings).

    Call it after the findings of these keys were committed. Never raises for a failed
    write (it is in the summary and the log, and retried next time)."""
    if not cfg.writeback.enabled:
        return WritebackSummary(disabled=True)
    plans, skipped = plan(store, cfg, source_name, list(keys))
    summary = apply(store, cfg, source_name, plans, run_id=run_id)
    summary.skipped += [f"{source_name}/{k}" for k in skipped]
    return summary


def after_sync(store: Store, cfg: Config, result: Any) -> WritebackSummary:
    """The runner's hook: write back for every source that synced OK in this run."""
    total = WritebackSummary(disabled=not cfg.writeback.enabled)
    if not cfg.writeback.enabled or getattr(result, "dry_run", False) or result.run_id is None:
        return total
    for name in _ok_sources(result):
        try:
            plans, skipped = plan(store, cfg, name)
            summary = apply(store, cfg, name, plans, run_id=result.run_id)
            summary.skipped += [f"{name}/{k}" for k in skipped]
        except Exception as exc:  # noqa: BLE001 - a failed write-back is logged and retried next run, the sync stands
            log.warning("%s: write-back failed: %s", name, exc)
            total.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        total.merge(summary)
        log.info("%s: %s", name, summary.text())
    return total


def preview(store: Store, cfg: Config, result: Any, *, force: bool = False) -> list[PlannedWrite]:
    """The writes a run with this result leads to, written nowhere (``sync --dry-run``).

    A dry run stores no findings, so the desired state is the stored open findings with
    the run's diff laid over them. Empty when write-back is disabled (unless ``force``)."""
    if not (cfg.writeback.enabled or force):
        return []
    out: list[PlannedWrite] = []
    by_name = {s.name: s for s in getattr(result, "sources", [])}
    with store.session() as s:
        for name in _ok_sources(result):
            desired = _desired_after(stored_open(s, name), by_name[name].diff)
            plans, _ = plan_source(s, cfg, cfg.source(name), desired=desired)
            out += plans
        s.rollback()
    return out


def _desired_after(
    current: dict[str, list[OpenFinding]], diff: Any
) -> dict[str, list[OpenFinding]]:
    by_fp = {f.fingerprint: (key, f) for key, fs in current.items() for f in fs}
    for change in getattr(diff, "changes", []):
        if change.state == "open" and change.finding is not None:
            f = change.finding
            by_fp[change.fingerprint] = (
                f.key,
                OpenFinding.from_detail(change.fingerprint, f.to_dict()),
            )
        else:
            by_fp.pop(change.fingerprint, None)
    out: dict[str, list[OpenFinding]] = {}
    for key, f in by_fp.values():
        out.setdefault(key, []).append(f)
    return out
