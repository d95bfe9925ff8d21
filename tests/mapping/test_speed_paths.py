"""The mappers' fast paths give exactly what the general paths give: positional
builders, the ADF shortcut, C-parsed timestamps, cached history states, the stable
history sort, shared people, and the GC promotion of a mapped batch."""

from __future__ import annotations

import gc
import json
from datetime import date, datetime, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from ticketlint.mapping import adf
from ticketlint.mapping.common import (
    MappingOptions,
    gc_paused,
    parse_jira_time,
    parse_servicenow_time,
)
from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper
from ticketlint.mapping.jira_fields import _fast_time, time_of
from ticketlint.mapping.model import (
    Approval,
    ChangeRecord,
    IncidentRecord,
    Link,
    Person,
    Transition,
    build,
    builder,
    record_from_dict,
    record_from_json,
)
from ticketlint.mapping.servicenow import ServiceNowMapper, _time

UTC = timezone.utc
AT = datetime(2026, 3, 2, 21, 10, 5, 123000, tzinfo=UTC)


# --- builder ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, values",
    [
        (
            Transition,
            {
                "at": AT,
                "from_state": "new",
                "to_state": None,
                "from_raw": "Open",
                "to_raw": "X",
                "by": Person(id="u1"),
            },
        ),
        (Link, {"kind": "change", "key": "CHG-1"}),
        (Approval, {"approver": Person(name="A"), "decision": "approved", "decided_at": AT}),
        (Person, {"id": "u", "name": None, "email": "e@x"}),
        (IncidentRecord, {"source": "s", "system": "jira", "key": "I-1", "process": "incident"}),
        (
            IncidentRecord,
            {"raw": {"a": 1}, "key": "I-1", "source": "s", "system": "jira", "process": "incident"},
        ),
        (
            ChangeRecord,
            {
                "source": "s",
                "key": "C-1",
                "raw": {},
                "system": "servicenow",
                "url": None,
                "process": "change",
                "backout_plan": "",
            },
        ),
    ],
)
def test_builder_builds_what_build_builds(cls: type, values: dict[str, Any]) -> None:
    names = tuple(values)
    made = builder(cls, names)(*values.values())
    want = build(cls, **values)
    assert made == want
    assert list(made.__dict__) == list(want.__dict__)  # same field order (repr)
    assert made.model_fields_set == want.model_fields_set
    assert made.model_dump() == want.model_dump()
    again = builder(cls, names)(*values.values())
    assert again.model_fields_set is not made.model_fields_set  # never shared
    if "raw" not in values and "raw" in cls.model_fields:
        assert again.raw is not made.raw  # factories run per record


def test_builder_rejects_unknown_or_repeated_names() -> None:
    with pytest.raises(ValueError):
        builder(Link, ("kind", "nope"))
    with pytest.raises(ValueError):
        builder(Link, ("kind", "kind"))


# --- ADF -------------------------------------------------------------------------------------


def _para(*texts: Any) -> dict[str, Any]:
    return {"type": "paragraph", "content": [{"type": "text", "text": t} for t in texts]}


ADF_DOCS = [
    {"type": "doc", "version": 1, "content": [_para("Restart the worker.")]},
    {"type": "doc", "content": [_para("  padded  ")]},
    {"type": "doc", "content": [_para("two", " parts"), _para(), _para("line\nbreak ")]},
    {"type": "doc", "content": [{"type": "paragraph"}, {"type": "paragraph", "content": None}]},
    {"type": "doc", "content": [_para(""), _para("   ")]},
    {"type": "doc", "content": [_para(5, "text")]},
    {"type": "doc", "content": []},
    {
        "type": "doc",
        "content": [
            _para("a"),
            {"type": "bulletList", "content": [{"type": "listItem", "content": [_para("item")]}]},
        ],
    },
    {
        "type": "doc",
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "hi "},
                    {"type": "mention", "attrs": {"text": "@Ann"}},
                ],
            }
        ],
    },
    {"type": "doc", "content": [{"type": "paragraph", "content": {"type": "text", "text": "odd"}}]},
    {"type": "doc", "content": [_para("x"), "junk"]},
    {"type": "doc", "content": "not a list"},
    {"type": "paragraph", "content": [{"type": "text", "text": "a bare node"}]},
]


@pytest.mark.parametrize("doc", ADF_DOCS)
def test_adf_shortcut_equals_the_tree_walk(doc: dict[str, Any]) -> None:
    parts: list[str] = []
    adf._walk(doc, parts)
    lines = [line.rstrip() for line in "".join(parts).split("\n")]
    assert adf.adf_to_text(doc) == "\n".join(line for line in lines if line.strip()).strip()


# --- timestamps ------------------------------------------------------------------------------

JIRA_TIMES = [
    "2026-03-02T14:10:05.123-0700",
    "2026-03-02T14:10:05.123+0000",
    "2025-12-31T23:59:59.999+0530",
    "2026-03-02T14:10:05.123-0000",
    "2026-01-01T00:00:00.000+1400",
]


@pytest.mark.parametrize("text", JIRA_TIMES)
def test_jira_time_fast_path_equals_the_slicing_and_the_general_parser(text: str) -> None:
    got = time_of(text)
    assert got == _fast_time(text) == parse_jira_time(text)
    assert got is not None and got.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-21T21:28:37+0000",
        "2025-11-21T21:28:37-0730",
        "2025-11-21T21:28:37Z",
        "2025-11-21T21:28:37.5+01:00",
    ],
)
def test_jsm_date_objects_parse_as_before(text: str) -> None:
    got = time_of({"iso8601": text, "epochMillis": 0})
    assert got == parse_jira_time(text) and got is not None and got.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T14:10:05.123+2400",
        "2026-03-02T24:00:00.000+0000",
        "2026-03-02T14:10:05.123-07:0",
        "2026-02-30T14:10:05.123+0000",
        "yesterday at noon, or so...",
    ],
)
def test_jira_time_bad_values_fail_as_before(text: str) -> None:
    with pytest.raises(ValueError):
        parse_jira_time(text)
    with pytest.raises(ValueError):
        time_of(text)
    with pytest.raises(ValueError):
        time_of({"iso8601": text})


def test_servicenow_time_fast_path_and_values_with_their_own_offset() -> None:
    assert _time("2025-11-21 20:51:45", "c") == datetime(2025, 11, 21, 20, 51, 45, tzinfo=UTC)
    assert _time("2025-11-21 20:51:45", "c").tzinfo is UTC
    assert _time("", "c") == ""
    # not the Table API shape, but read as before: the offset is replaced, not applied
    odd = "2025-11-21 20:51+01"
    assert _time(odd, "c") == datetime.fromisoformat(odd).replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="not a date or time"):
        _time("2025-11-21 25:51:45", "c")
    assert _time("2026-03-03", "cab_date") == date(2026, 3, 3)  # glide_date: a date


@pytest.mark.parametrize(
    "text",
    [
        "2025-11-21 20:51:45",
        " 2025-11-21 20:51:45 ",
        "2024-02-29 00:00:00",
        "2025-1-2 3:04:05",  # one-digit parts: strptime's reading, kept
        "2025-11-21 25:51:45",
        "2025-02-29 10:00:00",
        "2025-11-21T20:51:45",
        "2025-11-21 20:51:45.5",
        "2025-11-21",
        "\u0662025-11-21 20:51:45",  # a non-ASCII digit
    ],
)
def test_servicenow_time_fast_path_reads_what_strptime_reads(text: str) -> None:
    try:
        expected: Any = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        expected = ValueError
    try:
        got: Any = parse_servicenow_time(text)
    except ValueError:
        got = ValueError
    assert got == expected


# --- Jira: history cache and order, people ----------------------------------------------------


def _issue(key: str, histories: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": key,
        "key": key,
        "changelog": {"startAt": 0, "total": len(histories), "histories": histories},
        "fields": {
            "summary": "s",
            "issuetype": {"name": "Change"},
            "status": {"name": "Closed"},
            "created": "2026-03-01T10:00:00.000+0000",
            "updated": "2026-03-01T10:00:00.000+0000",
        },
    }


def _history(hid: str, created: str, frm: str, to: str, who: str = "u1") -> dict[str, Any]:
    return {
        "id": hid,
        "created": created,
        "author": {"accountId": who, "displayName": who.upper()},
        "items": [{"field": "status", "fieldtype": "jira", "fromString": frm, "toString": to}],
    }


def test_unknown_history_status_is_counted_every_time_though_cached() -> None:
    m = JiraMapper(MappingOptions(source="j"), JiraFieldCatalog({}))
    hist = [
        _history("1", "2026-03-02T10:00:00.000+0000", "Open", "Mystery"),
        _history("2", "2026-03-03T10:00:00.000+0000", "Mystery", "Closed"),
    ]
    records, report = m.map_issues([_issue("C-1", hist), _issue("C-2", hist)])
    assert report.warnings["history status Mystery not in the status list"] == 4
    assert [(t.from_state, t.to_state) for t in records[0].transitions] == [
        ("new", None),
        (None, "closed"),
    ]
    _, again = m.map_issues([_issue("C-3", hist)])  # the cache outlives a batch, the counts do not
    assert again.warnings["history status Mystery not in the status list"] == 2


def test_histories_out_of_order_sort_stably_by_time() -> None:
    m = JiraMapper(MappingOptions(source="j"), JiraFieldCatalog({}))
    same = "2026-03-03T10:00:00.000+0000"
    hist = [
        _history("3", "2026-03-04T10:00:00.000+0000", "Review", "Closed"),
        _history("1", same, "Open", "Implementing"),
        _history("2", same, "Implementing", "Review"),
        _history("0", "2026-03-03T11:00:00.000+0100", "Open", "Open"),
    ]  # 10:00 UTC too
    records, report = m.map_issues([_issue("C-1", hist)])
    assert not report.errors
    assert [(t.from_raw, t.to_raw) for t in records[0].transitions] == [
        ("Open", "Implementing"),
        ("Implementing", "Review"),
        ("Open", "Open"),
        ("Review", "Closed"),
    ]


def test_people_are_shared_only_when_identical() -> None:
    m = JiraMapper(MappingOptions(source="j"), JiraFieldCatalog({}))
    hist = [
        _history("1", "2026-03-02T10:00:00.000+0000", "Open", "Implementing"),
        _history("2", "2026-03-03T10:00:00.000+0000", "Implementing", "Closed", who="u2"),
    ]
    records, _ = m.map_issues([_issue("C-1", hist), _issue("C-2", hist)])
    a, b = records[0].transitions, records[1].transitions
    assert a[0].by is b[0].by and a[0].by != a[1].by and a[1].by == Person(id="u2", name="U2")


def test_servicenow_people_are_shared_only_when_identical() -> None:
    rows = [
        {
            "sys_id": f"s{i}",
            "number": f"INC{i}",
            "state": "1",
            "caller_id": "u1",
            "caller_id.name": name,
        }
        for i, name in enumerate(["Ann", "Ann", "Bob"])
    ]
    records, report = ServiceNowMapper(MappingOptions(source="sn")).map_rows("incident", rows)
    assert not report.errors
    people = [r.requester for r in records]
    assert people[0] is people[1] and people[2] == Person(id="u1", name="Bob")


# --- GC promotion ----------------------------------------------------------------------------


class _Node:
    def __init__(self) -> None:
        self.other: Any = None


def test_gc_paused_promote_moves_the_batch_to_the_oldest_generation() -> None:
    if not gc.isenabled():
        pytest.skip("the collector is off in this process")
    gc.collect()
    with gc_paused(promote=True):
        assert not gc.isenabled()
        kept = [[i] for i in range(1000)]
        cycle = _Node()
        cycle.other = _Node()
        cycle.other.other = cycle
    assert gc.isenabled() and gc.get_freeze_count() == 0
    young = {id(o) for o in gc.get_objects(generation=0)} | {
        id(o) for o in gc.get_objects(generation=1)
    }
    assert not any(id(k) in young for k in kept)
    assert any(o is kept[0] for o in gc.get_objects(generation=2))
    del cycle
    assert gc.collect() >= 2  # the promoted cycle is still found by a full collection


def test_gc_paused_promote_leaves_a_deliberate_freeze_and_nesting_alone() -> None:
    if not gc.isenabled():
        pytest.skip("the collector is off in this process")
    gc.collect()
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with gc_paused(promote=True):
            pass
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
    with gc_paused():
        with gc_paused(promote=True):
            pass
        assert not gc.isenabled()  # the inner pause never re-enables
    assert gc.isenabled()


@pytest.mark.parametrize(
    "record",
    [
        ChangeRecord(
            source="s",
            system="jira",
            key="CHG-1",
            title="Zoë's change €😀",
            approvals=[Approval(approver=Person(name="A"), decision="approved")],
            created_at=datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc),
        ),
        IncidentRecord(source="s", system="servicenow", key="INC1", resolution_notes="x \ud800"),
    ],
    ids=["plain", "lone-surrogate"],
)
def test_a_record_from_its_json_text_is_the_record_from_its_dict(record: Any) -> None:
    text = json.dumps(record.model_dump(mode="json"))
    assert record_from_json(text, record.process) == record_from_dict(json.loads(text)) == record


def test_a_record_from_json_text_that_does_not_validate_raises_as_from_its_dict() -> None:
    text = json.dumps({"process": "change", "source": "s", "system": "jira", "key": 7})
    with pytest.raises(ValidationError) as by_dict:
        record_from_dict(json.loads(text))
    with pytest.raises(ValidationError) as by_text:
        record_from_json(text, "change")
    assert by_text.value.errors() == by_dict.value.errors()
    # a process column that disagrees with the text: the text's own process decides
    incident = json.dumps({"process": "incident", "source": "s", "system": "jira", "key": "I"})
    assert record_from_json(incident, "change") == record_from_dict(json.loads(incident))
