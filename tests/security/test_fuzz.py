"""Fuzzing with Hypothesis: ``check --input`` over Jira and ServiceNow export shapes whose
values are replaced by arbitrary JSON and hostile strings, and serve's request parser
over arbitrary bodies and headers. No uncaught exception: a bad value is contained (a
mapping error or unknown), a bad file is an ``InputError`` (exit 2), a bad request a 4xx.

The fast variant runs in ``make test``; the long one (10,000 cases each) runs with
``TICKETLINT_FUZZ_LONG=1 pytest -m fuzz_long tests/security/test_fuzz.py``.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hostile_support import corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketlint.config import Config, parse_config
from ticketlint.connectors.files import InputError, load_inputs
from ticketlint.mapping.common import MappingOptions
from ticketlint.plugin.serve.app import create_app, serve_state
from ticketlint.plugin.serve.security import sign_jira, sign_servicenow
from ticketlint.report import formats
from ticketlint.rules.selection import engine_from_config
from ticketlint.store.db import open_store

DATA = Path(__file__).resolve().parents[1] / "cli" / "data"
AS_OF = datetime(2026, 3, 31, tzinfo=timezone.utc)
LONG = bool(os.environ.get("TICKETLINT_FUZZ_LONG"))
FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG_SETTINGS = settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

DELETE = object()
HOSTILE = [s for s in corpus() if len(s) < 2000]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(HOSTILE)
    | st.sampled_from(["", "2026-03-02T14:10:05.123+0000", "2026-02-01 10:00:00", "0", "-1"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
ENGINE = engine_from_config(Config())
JIRA_SEARCH = json.loads((DATA / "jira" / "search.json").read_text())
SNOW_TABLES = {
    name: json.loads((DATA / "servicenow" / f"{name}.json").read_text())
    for name in ("incident", "change_request", "problem", "sysapproval_approver")
}


def _mutations(fields: list[str]) -> Any:
    return st.dictionaries(
        st.sampled_from(fields), st.one_of(st.just(DELETE), json_values), max_size=6
    )


def _apply(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if value is DELETE:
            target.pop(name, None)
        else:
            target[name] = value


def _check(folder: Path, source: str = "file") -> None:
    """What ``check --input`` does after reading: evaluate and render every format."""
    try:
        loaded = load_inputs([folder], MappingOptions(source=source))
    except InputError:
        return  # a file ticketlint cannot read at all: exit 2 with a message
    evaluation = ENGINE.evaluate(loaded.records, as_of=AS_OF, ci_sources=loaded.ci_sources)
    result = formats.CheckResult(evaluation=evaluation, report=loaded.report, sources=[source])
    for fmt in formats.FORMATS:
        text = formats.render(result, fmt)
        text.encode("utf-8")  # writable as UTF-8 (no lone surrogate)


# --- check --input: Jira ----------------------------------------------------------------------


def _jira_case(data: st.DataObject) -> dict[str, Any]:
    search = copy.deepcopy(JIRA_SEARCH)
    for issue in search["issues"]:
        _apply(issue["fields"], data.draw(_mutations(sorted(issue["fields"]))))
        _apply(issue, data.draw(_mutations(["key", "id", "self", "fields", "changelog"])))
    extra = data.draw(st.lists(json_values, max_size=2))
    search["issues"].extend(extra)
    return search


def _run_jira(search: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "search.json").write_text(json.dumps(search), encoding="utf-8")
        _check(folder)


@FAST
@given(st.data())
def test_fuzz_check_input_jira(data: st.DataObject) -> None:
    _run_jira(_jira_case(data))


@pytest.mark.fuzz_long
@pytest.mark.skipif(not LONG, reason="set TICKETLINT_FUZZ_LONG=1 for the long fuzz run")
@LONG_SETTINGS
@given(st.data())
def test_fuzz_check_input_jira_long(data: st.DataObject) -> None:
    _run_jira(_jira_case(data))


# --- check --input: ServiceNow ----------------------------------------------------------------


def _snow_case(data: st.DataObject) -> dict[str, Any]:
    tables = copy.deepcopy(SNOW_TABLES)
    for table in tables.values():
        for row in table["result"]:
            _apply(row, data.draw(_mutations(sorted(row))))
        table["result"].extend(data.draw(st.lists(json_values, max_size=2)))
    return tables


def _run_snow(tables: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, table in tables.items():
            (folder / f"{name}.json").write_text(json.dumps(table), encoding="utf-8")
        _check(folder)


@FAST
@given(st.data())
def test_fuzz_check_input_servicenow(data: st.DataObject) -> None:
    _run_snow(_snow_case(data))


@pytest.mark.fuzz_long
@pytest.mark.skipif(not LONG, reason="set TICKETLINT_FUZZ_LONG=1 for the long fuzz run")
@LONG_SETTINGS
@given(st.data())
def test_fuzz_check_input_servicenow_long(data: st.DataObject) -> None:
    _run_snow(_snow_case(data))


# --- serve's request parser --------------------------------------------------------------------

SECRET = "fuzz-secret"
_APP: Any = None


def _app() -> Any:
    global _APP
    if _APP is None:
        tmp = Path(tempfile.mkdtemp())
        cfg = parse_config(f"""
database: "sqlite:///{tmp / "fuzz.db"}"
sources:
  - {{name: jira-prod, type: jira, url: "https://acme.atlassian.net", auth: {{pat: x}}}}
  - {{name: snow-prod, type: servicenow, url: "https://acme.service-now.com", auth: {{user: u, password: p}}}}
serve: {{jira_secret: {SECRET}, servicenow_secret: {SECRET}, max_body_bytes: 65536, reread_interval: 0}}
""")
        _APP = create_app(cfg, open_store(cfg.database), handler=lambda ref: None, debounce=0)
    return _APP


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "timestamp": st.one_of(st.just(None), scalars),
            "issue": json_values,
            "webhookEvent": scalars,
        },
    ).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"table": scalars, "sys_id": scalars, "operation": scalars, "sys_updated_on": scalars}
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def _post(body: bytes, path: str, signed: bool, headers: dict[str, str]) -> None:
    h = {"Content-Type": "application/json", **headers}
    if signed:
        stamp = str(int(time.time()))
        h["X-Hub-Signature"] = sign_jira(SECRET, body)
        h["X-Ticketlint-Timestamp"] = stamp
        h["X-Ticketlint-Signature"] = sign_servicenow(SECRET, stamp, body)
    answer = _app().test_client().post(path, data=body, headers=h)
    assert answer.status_code in (200, 202, 400, 401, 404, 409, 413), (
        answer.status_code,
        body[:80],
    )


serve_cases = st.tuples(
    bodies,
    st.sampled_from(
        ["/hooks/jira", "/hooks/servicenow", "/hooks/jira/jira-prod", "/hooks/servicenow/x"]
    ),
    st.booleans(),
    st.dictionaries(
        st.sampled_from(
            [
                "X-Atlassian-Webhook-Identifier",
                "X-Ticketlint-Token",
                "X-Ticketlint-Timestamp",
                "X-Hub-Signature",
            ]
        ),
        header_text,
        max_size=2,
    ),
)


@FAST
@given(serve_cases)
def test_fuzz_serve_request_parser(case: tuple[bytes, str, bool, dict[str, str]]) -> None:
    _post(*case)


@pytest.mark.fuzz_long
@pytest.mark.skipif(not LONG, reason="set TICKETLINT_FUZZ_LONG=1 for the long fuzz run")
@LONG_SETTINGS
@given(serve_cases)
def test_fuzz_serve_request_parser_long(case: tuple[bytes, str, bool, dict[str, str]]) -> None:
    _post(*case)


def teardown_module() -> None:
    if _APP is not None:
        serve_state(_APP).stop(timeout=2)
