"""Realistic changes to the sandbox's records, one op at a time or as a seeded random batch.

``POST /_sandbox/mutate`` takes ``{"op": <name>, ...}`` (see :data:`JIRA_OPS` and
:data:`SERVICENOW_OPS`), or ``{"random": {"seed": n, "count": k, "system": "jira" |
"servicenow"}}`` for a batch drawn from every kind below. Each applied change is answered
with ``{"kind", "system", "record", "before", "after"}`` (the raw record before and after,
as the API returns it), so a test can print what changed on a record it disagrees about.

What moves the parent's update time follows the real systems:

* Jira: every edit, transition, comment (added, edited, deleted), approval decision and
  project move moves the issue's ``updated``. A deleted issue disappears from search and
  ``GET`` (404); a moved one keeps its key here (real Jira gives it a new one and redirects
  the old) but leaves a ``project in (...)`` scope.
* ServiceNow: field edits, state changes and journal entries (work notes, comments) move the
  task's ``sys_updated_on``. An approval decided or reset, and a ``task_ci`` row added,
  edited or removed, move only *their own* row's time: the parent task is not touched.
  Editing or deleting a journal entry touches only ``sys_journal_field``. A deleted task
  takes its approvals and CI links with it (as the platform's cascade does).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from ticketlint.sandbox.data import hexid, jira_text, utc_text
from ticketlint.sandbox.jira_data import STATE_STATUS, STATUS_CATEGORY
from ticketlint.sandbox.servicenow_data import STATE_CODE, TASK_TABLES

if TYPE_CHECKING:
    from ticketlint.sandbox.data import Dataset

JIRA_OPS = (
    "transition",
    "reopen",
    "comment_add",
    "comment_edit",
    "comment_delete",
    "field_clear",
    "field_set",
    "approval",
    "delete",
    "move",
)
SERVICENOW_OPS = (
    "transition",
    "reopen",
    "journal_add",
    "journal_edit",
    "journal_delete",
    "field_clear",
    "field_set",
    "approval",
    "task_ci_add",
    "task_ci_remove",
    "ci_edit",
    "delete",
    "move",
)
OUT_OF_SCOPE_PROJECT = "ARCH"
OUT_OF_SCOPE_DOMAIN = "acme"
"""A ServiceNow scope of ``sys_domain=global`` no longer matches a moved record."""

JIRA_TEXT_FIELDS = ("Implementation plan", "Backout plan", "Test plan", "Resolution notes")
SN_TEXT_FIELDS = {
    "incident": ("close_notes", "close_code", "assigned_to", "cmdb_ci"),
    "change_request": (
        "implementation_plan",
        "backout_plan",
        "test_plan",
        "work_start",
        "close_code",
        "review_comments",
    ),
    "problem": ("cause_notes", "workaround", "assigned_to"),
    "sc_req_item": ("close_notes", "assigned_to"),
}


SN_TIME_FIELDS = frozenset({"work_start", "work_end", "start_date", "end_date"})


class MutationError(ValueError):
    """A change that cannot be applied (unknown record or op): answered with HTTP 400/404."""


class Mutator:
    """Applies changes to a :class:`~ticketlint.sandbox.data.Dataset`."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    # -- Jira ------------------------------------------------------------------------------
    def jira(self, body: dict[str, Any]) -> dict[str, Any]:
        d = self.ds.jira
        key = str(body.get("key") or "")
        idx = d.index_of(key)
        if idx is None:
            raise MutationError(f"no issue {key}")
        op = str(body.get("op"))
        before = d.issue(idx)
        with d.lock:
            if op == "transition" or op == "reopen":
                self._jira_status(idx, str(body.get("status") or ""), op == "reopen")
            elif op == "comment_add":
                d.add_comment(idx, str(body.get("text") or "Checked with the team."))
            elif op in ("comment_edit", "comment_delete"):
                mine = d.comments.get(idx) or []
                if not mine:
                    d.add_comment(idx, "Note added before an edit.")
                    mine = d.comments[idx]
                if op == "comment_edit":
                    d.update_comment(idx, mine[-1]["id"], str(body.get("text") or "(edited)"))
                else:
                    mine.pop()
                    d.touch(idx)
            elif op in ("field_clear", "field_set"):
                name = str(body.get("field") or "Backout plan")
                value = (
                    None if op == "field_clear" else body.get("value", {"__text__": "Set later."})
                )
                d.set_fields(idx, {name: value})
            elif op == "approval":
                self._jira_approval(idx, str(body.get("decision") or "approved"))
            elif op == "delete":
                d.deleted.add(idx)
                d.touch(idx)
            elif op == "move":
                d.moved[idx] = str(body.get("project") or OUT_OF_SCOPE_PROJECT)
                d.touch(idx)
            else:
                raise MutationError(f"unknown Jira op {op!r} (known: {', '.join(JIRA_OPS)})")
        after = None if idx in d.deleted else d.issue(idx)
        return {"kind": op, "system": "jira", "record": key, "before": before, "after": after}

    def _jira_status(self, idx: int, wanted: str, reopen: bool) -> None:
        d = self.ds.jira
        process = d._plan(idx).sc.process
        if process not in STATE_STATUS:
            process = "incident"
        names = list(STATE_STATUS[process].values())
        if reopen or not wanted:
            wanted = names[1] if reopen else wanted
        if wanted not in STATUS_CATEGORY:
            raise MutationError(f"unknown status {wanted!r}")
        done = STATUS_CATEGORY[wanted] == "done"
        now = d.ds.clock()
        values: dict[str, Any] = {"status": d.status(wanted)}
        if done:
            values["resolution"] = {
                "self": f"{d.ds.base_url}/rest/api/3/resolution/10000",
                "id": "10000",
                "description": "",
                "name": "Done",
            }
            values["resolutiondate"] = jira_text(now, d.zone)
        else:
            values["resolution"] = None
            values["resolutiondate"] = None
        d.set_fields(idx, values)

    def _jira_approval(self, idx: int, decision: str) -> None:
        d = self.ds.jira
        entries = d.issue(idx)["fields"].get(d.field_ids["Approvals"]) or []
        if not entries:
            raise MutationError(f"{d.key(idx)} has no approvals")
        now = d.ds.clock()
        out = []
        for entry in entries:
            entry = dict(entry)
            final = {"reset": "pending", "rejected": "declined"}.get(decision, decision)
            entry["finalDecision"] = final
            entry["approvers"] = [
                {**a, "approverDecision": final} for a in entry.get("approvers", [])
            ]
            if final == "pending":
                entry.pop("completedDate", None)
            else:
                entry["completedDate"] = d._date_dto(now)
            out.append(entry)
        d.set_fields(idx, {"Approvals": out})

    # -- ServiceNow ------------------------------------------------------------------------
    def servicenow(self, body: dict[str, Any]) -> dict[str, Any]:
        sn = self.ds.servicenow
        op = str(body.get("op"))
        table = str(body.get("table") or "")
        if op == "approval":
            return self._sn_approval(int(body.get("index", 0)), str(body.get("state") or ""))
        if op == "task_ci_remove":
            return self._sn_task_ci_remove(int(body.get("index", 0)))
        if op in ("journal_edit", "journal_delete"):
            return self._sn_journal(op, int(body.get("index", -1)))
        if table not in sn.sys_ids:
            raise MutationError(f"table must be one of {sorted(sn.sys_ids)}")
        idx = self._sn_index(table, body)
        number = sn.row(table, idx).get("number") or sn.row(table, idx).get("name", "")
        before = sn.row(table, idx)
        with sn.lock:
            if op in ("transition", "reopen"):
                self._sn_state(table, idx, str(body.get("state") or ""), op == "reopen")
            elif op == "journal_add":
                element = str(body.get("element") or "work_notes")
                sn.write(table, idx, {element: str(body.get("text") or "Checked the logs.")})
            elif op in ("field_clear", "field_set", "ci_edit"):
                fields = body.get("fields") or {}
                if op == "field_clear":
                    fields = {str(body.get("field") or "backout_plan"): ""}
                self._sn_override(table, idx, {k: str(v) for k, v in fields.items()})
            elif op == "task_ci_add":
                ci = int(body.get("ci", 0)) % sn.counts["cmdb_ci"]
                k = len(sn.task_ci)
                sid = hexid(sn.seed, "task_ci-added", table, idx, k)
                sn.task_ci.append((sid, table, idx, ci, sn.ds.clock()))
                sn.ci_by_task.setdefault(sn.sys_ids[table][idx], []).append(k)
                sn.where[sid] = ("task_ci", k)
                sn._orders.clear()
                sn._order_keys.clear()
            elif op == "delete":
                sn.deleted.add((table, idx))
                sn._orders.clear()
                sn._order_keys.clear()
            elif op == "move":
                self._sn_override(table, idx, {"sys_domain": OUT_OF_SCOPE_DOMAIN})
            else:
                raise MutationError(
                    f"unknown ServiceNow op {op!r} (known: {', '.join(SERVICENOW_OPS)})"
                )
        after = None if (table, idx) in sn.deleted else sn.row(table, idx)
        return {
            "kind": op,
            "system": "servicenow",
            "record": number,
            "before": before,
            "after": after,
        }

    def _sn_index(self, table: str, body: dict[str, Any]) -> int:
        sn = self.ds.servicenow
        if "index" in body:
            idx = int(body["index"])
            if 0 <= idx < sn.counts[table]:
                return idx
        elif body.get("sys_id"):
            found = sn.lookup(str(body["sys_id"]))
            if found and found[0] == table:
                return found[1]
        elif body.get("number"):
            for i in range(sn.counts[table]):
                if sn.row(table, i).get("number") == body["number"]:
                    return i
        raise MutationError("no such record")

    def _sn_override(self, table: str, idx: int, values: dict[str, str]) -> None:
        sn = self.ds.servicenow
        sn.overrides.setdefault((table, idx), {}).update(values)
        sn.bump(table, idx)

    def _sn_state(self, table: str, idx: int, wanted: str, reopen: bool) -> None:
        sn = self.ds.servicenow
        if table == "cmdb_ci":
            raise MutationError("a CI has no state to transition; use ci_edit")
        codes = STATE_CODE[table]
        if reopen:
            wanted = "in_progress" if "in_progress" in codes else "implement"
        if wanted not in codes:
            raise MutationError(f"{table} has no state {wanted!r}")
        now = utc_text(sn.ds.clock())
        done = wanted in ("resolved", "closed", "cancelled")
        values = {"state": codes[wanted], "active": "false" if done else "true"}
        if done:
            values["closed_at"] = now
            if table in ("incident", "problem"):
                values["resolved_at"] = now
        else:
            values.update({"closed_at": "", "closed_by": ""})
            if table in ("incident", "problem"):
                values["resolved_at"] = ""
            if table == "change_request":
                values["work_end"] = ""
        self._sn_override(table, idx, values)

    def _sn_approval(self, k: int, state: str) -> dict[str, Any]:
        """Decide or reset one approval row: only the approval row's time moves."""
        sn = self.ds.servicenow
        if not sn.approvals:
            raise MutationError("no approvals")
        k %= len(sn.approvals)
        before = sn.row("sysapproval_approver", k)
        with sn.lock:
            now = max(sn.ds.clock(), _sn_newest(sn) + 1000) // 1000 * 1000
            sn.overrides.setdefault(("sysapproval_approver", k), {}).update(
                {"state": state or "approved", "sys_updated_on": utc_text(now)}
            )
            sn.extra_updated = max(sn.extra_updated, now)
        parent = sn.row(sn.approvals[k][1], sn.approvals[k][2]).get("number", "")
        return {
            "kind": "approval",
            "system": "servicenow",
            "record": parent,
            "before": before,
            "after": sn.row("sysapproval_approver", k),
        }

    def _sn_task_ci_remove(self, k: int) -> dict[str, Any]:
        sn = self.ds.servicenow
        live = [i for i in range(len(sn.task_ci)) if i not in sn.deleted_task_ci]
        if not live:
            raise MutationError("no task_ci rows")
        k = live[k % len(live)]
        before = sn.row("task_ci", k)
        with sn.lock:
            sn.deleted_task_ci.add(k)
            sn._orders.clear()
            sn._order_keys.clear()
        _, table, idx, _, _ = sn.task_ci[k]
        return {
            "kind": "task_ci_remove",
            "system": "servicenow",
            "record": sn.row(table, idx).get("number", ""),
            "before": before,
            "after": None,
        }

    def _sn_journal(self, op: str, k: int) -> dict[str, Any]:
        sn = self.ds.servicenow
        if not sn.journal:
            raise MutationError("no journal entries")
        k %= len(sn.journal)
        before = dict(sn.journal[k])
        with sn.lock:
            if op == "journal_edit":
                sn.journal[k] = {**sn.journal[k], "value": sn.journal[k]["value"] + " (edited)"}
            else:
                sn.journal[k] = {**sn.journal[k], "value": ""}
        return {
            "kind": op,
            "system": "servicenow",
            "record": str(before.get("element_id", "")),
            "before": before,
            "after": sn.journal[k] if op == "journal_edit" else None,
        }

    # -- random batches --------------------------------------------------------------------
    def random_batch(self, seed: int, count: int, system: str) -> list[dict[str, Any]]:
        """``count`` changes drawn from every kind, the same for the same seed and data."""
        rng = random.Random(f"{self.ds.seed}:changes:{seed}:{system}")
        out: list[dict[str, Any]] = []
        tries = 0
        while len(out) < count and tries < count * 20:
            tries += 1
            body = self._random_jira(rng) if system == "jira" else self._random_servicenow(rng)
            try:
                out.append(self.jira(body) if system == "jira" else self.servicenow(body))
            except MutationError:
                continue
        return out

    def _random_jira(self, rng: random.Random) -> dict[str, Any]:
        d = self.ds.jira
        live = [i for i in range(len(d)) if i not in d.deleted and i not in d.moved]
        idx = rng.choice(live)
        op = rng.choice(JIRA_OPS)
        if op in ("delete", "move") and rng.random() < 0.6:
            op = "comment_add"  # keep removals rarer than edits
        body: dict[str, Any] = {"key": d.key(idx), "op": op}
        process = d._plan(idx).sc.process
        if op == "transition":
            names = list(STATE_STATUS.get(process, STATE_STATUS["incident"]).values())
            body["status"] = rng.choice(names)
        elif op in ("field_clear", "field_set"):
            body["field"] = rng.choice(JIRA_TEXT_FIELDS)
        elif op == "approval":
            body["decision"] = rng.choice(("approved", "rejected", "reset"))
        return body

    def _random_servicenow(self, rng: random.Random) -> dict[str, Any]:
        sn = self.ds.servicenow
        op = rng.choice(SERVICENOW_OPS)
        if op in ("delete", "move") and rng.random() < 0.6:
            op = "journal_add"
        if op == "approval":
            return {
                "op": op,
                "index": rng.randrange(max(1, len(sn.approvals))),
                "state": rng.choice(("approved", "rejected", "requested")),
            }
        if op == "task_ci_remove":
            return {"op": op, "index": rng.randrange(max(1, len(sn.task_ci)))}
        if op in ("journal_edit", "journal_delete"):
            return {"op": op, "index": rng.randrange(max(1, len(sn.journal) or 1))}
        table = "cmdb_ci" if op == "ci_edit" else rng.choice(list(TASK_TABLES))
        if op == "task_ci_add":
            table = rng.choice(("incident", "change_request"))
        live = [i for i in range(sn.counts[table]) if (table, i) not in sn.deleted]
        body: dict[str, Any] = {"op": op, "table": table, "index": rng.choice(live)}
        if op == "transition":
            body["state"] = rng.choice(list(STATE_CODE[table]))
        elif op == "field_clear":
            body["field"] = rng.choice(SN_TEXT_FIELDS[table])
        elif op == "field_set":
            field = rng.choice(SN_TEXT_FIELDS[table])
            # values the platform accepts: a reference cleared, a datetime as a datetime
            value = (
                ""
                if field.endswith("_to")
                else utc_text(sn.ds.clock())
                if field in SN_TIME_FIELDS
                else "Filled in later."
            )
            body["fields"] = {field: value}
        elif op == "ci_edit":
            body["fields"] = rng.choice(
                (
                    {"install_status": "7"},
                    {"owned_by": ""},
                    {"support_group": ""},
                    {"install_status": "1", "operational_status": "1"},
                )
            )
        elif op == "task_ci_add":
            body["ci"] = rng.randrange(sn.counts["cmdb_ci"])
        return body


def _sn_newest(sn: Any) -> int:
    return max([max(a) if len(a) else 0 for a in sn.updated.values()] + [sn.extra_updated])
