"""Read exported files for ``ticketlint check --input``: Jira and ServiceNow exports or
JSON lines of normalised records, detected per path.

Accepted inputs (docs/cli.md):

- ``*.jsonl`` / ``*.ndjson``: one normalised record per line (``ticketlint.mapping.model``),
  read field by field (:mod:`ticketlint.mapping.normalised`): an unreadable value makes its
  field None, listed and counted; a line without identity is a :class:`MappingError`
  naming the file and line, and the rest still load;
- a Jira search response (``{"issues": [...]}``) or a JSON list of such pages. With
  ``expand=names`` it names its own fields; otherwise a sibling ``field.json`` (saved from
  ``/rest/api/2/field``) is used, and ``status.json`` (``/rest/api/2/status``) when present.
  History comes from ``expand=changelog`` or a sibling changelog bulkfetch response (any
  ``*.json`` holding ``issueChangeLogs``);
- a directory of such Jira files;
- a directory of ServiceNow Table API responses named ``<table>.json`` (incident,
  change_request, problem, sc_req_item, cmdb_ci, sysapproval_approver, task_ci), or one
  such file. A ``sys_dictionary.json`` beside them (a Table API response of
  ``sys_dictionary``, as the live reader requests it) gives each mapped column its
  declared type, read exactly as a live run reads it; a malformed one is an
  :class:`InputError`, never a silent fallback to guessing.

This module reads files and hands their JSON to the mappers; it knows no ISO 20000.
Unreadable files and invalid JSON raise :class:`InputError` (exit code 2).

A bad record, line or value is contained, counted and listed, never fatal to the run:

- a JSONL line that is not UTF-8, not JSON, nested deeper than
  :data:`ticketlint.safejson.MAX_DEPTH`, not an object or without identity is a mapping
  error naming the file and line; the other lines load; a value of a line that cannot be
  read costs only its field (settled reading 17);
- in a JSON export, a value nested too deep (``json`` would raise ``RecursionError``) is
  read as null and an integer of thousands of digits as unknown (None), each counted
  in the warnings; an issue or row that is not an object is a mapping error;
- two records with the same source and key (an issue exported twice, a ServiceNow row
  in two pages) are one record: the latest ``updated_at`` wins (the later one read on
  a tie), and the collapsed copies are counted in the warnings.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from ticketlint import safejson
from ticketlint.connectors.search_text import skim_search_page
from ticketlint.mapping.common import MappingError, MappingOptions, MappingReport, gc_paused
from ticketlint.mapping.model import BaseRecord
from ticketlint.mapping.normalised import read_record
from ticketlint.mapping.servicenow_types import ColumnTypes

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".ndjson")
SERVICENOW_LINK_TABLES = ("sysapproval_approver", "task_ci")
SERVICENOW_KNOWN_TABLES = (
    "incident",
    "change_request",
    "problem",
    "sc_req_item",
    "cmdb_ci",
    *SERVICENOW_LINK_TABLES,
)
JIRA_SIDECARS = ("field.json", "status.json")
SERVICENOW_DICTIONARY = "sys_dictionary.json"
DICTIONARY_EXPORT_HINT = (
    "export it from /api/now/table/sys_dictionary with sysparm_display_value=false "
    "and sysparm_fields=name,element,internal_type (docs/mapping.md)"
)
_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*|[A-Z][A-Z0-9_]*")
"""An ``internal_type`` name (``glide_date``, ``GUID``); a label such as ``Date/Time``
or ``True/False`` is a display-value export."""


class InputError(Exception):
    """An input path cannot be read or is not a format ``check --input`` understands."""

    exit_code = 2

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in a ``check --input`` worker, raised again here with both parts.
        return (type(self), (self.path, self.problem))


@dataclass
class LoadResult:
    records: list[BaseRecord] = field(default_factory=list)
    report: MappingReport = field(default_factory=MappingReport)
    ci_sources: set[str] = field(default_factory=set)
    """Sources for which configuration items were read (CFG003 needs to know)."""
    systems: set[str] = field(default_factory=set)

    def extend(self, records: Iterable[BaseRecord], report: MappingReport) -> None:
        for record in records:
            self.records.append(record)
            self.systems.add(record.system)
        self.report.merge(report)


def load_inputs(paths: Sequence[Path], options: MappingOptions) -> LoadResult:
    """Load every path into records, mapped with ``options`` (source name ``file`` unless
    ``--source`` chose a configured source)."""
    result = LoadResult()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "no such file or directory")
        if path.is_dir():
            _load_directory(path, options, result)
        elif path.suffix.lower() in JSONL_SUFFIXES:
            _load_jsonl(path, options, result)
        else:
            _load_file(path, options, result)
    _collapse_duplicates(result)
    return result


def _collapse_duplicates(result: LoadResult) -> None:
    """One record per (source, key): the latest ``updated_at`` wins, the later read on a
    tie or when a time is unknown; each collapsed copy is counted in the warnings."""
    chosen: dict[tuple[str, str], int] = {}
    for i, record in enumerate(result.records):
        ident = (record.source, record.key)
        kept = chosen.get(ident)
        if kept is None or _newer_or_same(record, result.records[kept]):
            chosen[ident] = i
    duplicates = len(result.records) - len(chosen)
    if not duplicates:
        return
    keep = set(chosen.values())
    dropped = [r for i, r in enumerate(result.records) if i not in keep]
    result.records = [r for i, r in enumerate(result.records) if i in keep]
    for record in dropped:
        result.report.warnings[
            f"duplicate record {record.source}/{record.key}: the latest update is checked"
        ] += 1


def _newer_or_same(candidate: BaseRecord, kept: BaseRecord) -> bool:
    new, old = candidate.updated_at, kept.updated_at
    if isinstance(new, datetime) and isinstance(old, datetime):
        return new >= old
    return not isinstance(old, datetime) or isinstance(new, datetime)


# --- reading --------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None


def _read_json(
    path: Path,
    parsed: dict[Path, Any] | None = None,
    report: MappingReport | None = None,
    *,
    text: str | None = None,
) -> Any:
    """The file's JSON; from ``parsed`` when this load already read it (each file is
    parsed once). The collector is paused while parsing: a large file is one burst of
    long-lived objects that it would otherwise re-scan, with all earlier files, many times.
    A value nested too deep becomes null and an integer too long to convert None, each
    counted in ``report``'s warnings (when given) the one time the file is parsed."""
    if parsed is not None and path in parsed:
        return parsed[path]
    if text is None:
        text = _read_text(path)
    limits = safejson.Limits()
    try:
        with gc_paused(promote=True):
            data = safejson.loads_salvaging(text, limits=limits)
    except json.JSONDecodeError as exc:
        raise InputError(
            path, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if report is not None:
        if limits.deep_values:
            report.warnings[
                f"{path.name}: values nested deeper than {safejson.MAX_DEPTH} levels read as unknown"
            ] += limits.deep_values
        if limits.big_integers:
            report.warnings[
                f"{path.name}: integers of more than {safejson.MAX_INT_DIGITS} digits read as unknown"
            ] += limits.big_integers
    return data


def _read_lines(path: Path) -> list[bytes]:
    try:
        return path.read_bytes().split(b"\n")
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None


def _load_jsonl(path: Path, options: MappingOptions, result: LoadResult) -> None:
    report = MappingReport()
    records: list[BaseRecord] = []
    for number, raw in enumerate(_read_lines(path), start=1):
        if not raw.strip():
            continue
        report.rows += 1
        key: str | None = None
        line_source = options.source
        try:
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            limits = safejson.Limits()
            data = safejson.loads(line.removeprefix("\ufeff"), limits=limits)
            if limits.big_integers:
                report.warnings[
                    f"{path.name}: integers of more than {safejson.MAX_INT_DIGITS} digits read as unknown"
                ] += limits.big_integers
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            key = data.get("key") if isinstance(data.get("key"), str) else None
            if options.source == "file" and isinstance(data.get("source"), str):
                line_source = data["source"]
            record = read_record(data, report, where=f"{path.name}: ")
        except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError included
            report.errors.append(
                MappingError(line_source, key, f"{path}:{number}: {_short_error(exc)}")
            )
            continue
        if options.source != "file" and record.source != options.source:
            # --source NAME: findings carry the configured source's name.
            record = record.model_copy(update={"source": options.source})
        records.append(record)
        report.mapped += 1
        if record.process == "ci":
            result.ci_sources.add(record.source)
    result.extend(records, report)


def _short_error(exc: Exception) -> str:
    """One line per wrong field of a pydantic error (union members' inner names dropped)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    by_field: dict[str, str] = {}
    for err in errors():
        loc = ".".join(
            str(p) for p in err.get("loc", ()) if isinstance(p, int) or str(p).isidentifier()
        )
        by_field.setdefault(loc or "record", str(err.get("msg")))
    return "; ".join(f"{loc}: {msg}" for loc, msg in by_field.items())


def _load_file(path: Path, options: MappingOptions, result: LoadResult) -> None:
    data = _read_json(path, report=result.report)
    parsed = {path: data}
    if _is_jira_search(data):
        _load_jira([path], path.parent, options, result, parsed)
    elif _is_jsm_requests(data):
        raise InputError(path, JSM_REQUEST_EXPORT)
    elif isinstance(data, dict) and "issueChangeLogs" in data:
        raise InputError(
            path,
            "a changelog bulkfetch response alone has no issues; pass the search export (the changelog is read from beside it)",
        )
    elif path.name == SERVICENOW_DICTIONARY:
        raise InputError(
            path,
            "a sys_dictionary export alone has no records; pass the folder that holds it "
            "beside the table exports (<table>.json)",
        )
    elif isinstance(data, dict) and ("result" in data or "records" in data):
        dictionary = path.parent / SERVICENOW_DICTIONARY
        _load_servicenow(
            {path.stem: path},
            options,
            result,
            parsed,
            dictionary=dictionary if dictionary.is_file() else None,
        )
    elif path.name in JIRA_SIDECARS:
        raise InputError(
            path, "a Jira field/status list alone has no issues; pass the search export beside it"
        )
    else:
        raise InputError(
            path,
            'not a Jira search response (no "issues"), a ServiceNow Table API response '
            '(no "result") or JSON lines of records (use the .jsonl suffix)',
        )


def _is_jira_search(data: Any) -> bool:
    """A search response, a list of its pages, or a bare list of issues."""
    if isinstance(data, dict):
        return isinstance(data.get("issues"), list)
    return (
        isinstance(data, list)
        and bool(data)
        and (
            all(isinstance(page, dict) and isinstance(page.get("issues"), list) for page in data)
            or all(isinstance(i, dict) and "key" in i and "fields" in i for i in data)
        )
    )


JSM_REQUEST_EXPORT = (
    "a Jira Service Management /rest/servicedeskapi/request response carries request "
    "fields, not issues (no status category, no changelog, no issue type): export from "
    "/rest/api/3/search/jql (Cloud) or /rest/api/2/search (Data Center) with "
    "expand=names,changelog"
)


def _is_jsm_requests(data: Any) -> bool:
    values = data.get("values") if isinstance(data, dict) else None
    return (
        isinstance(values, list)
        and bool(values)
        and all(isinstance(v, dict) and "issueKey" in v and "requestTypeId" in v for v in values)
    )


@dataclass
class _Folder:
    """What an export folder holds, sorted by kind (its JSON-lines files already read)."""

    jsonl: bool
    """The folder held .jsonl records."""
    snow: dict[str, Path]
    """ServiceNow ``<table>.json`` by table (empty: not a ServiceNow export)."""
    dictionary: Path | None
    """``sys_dictionary.json`` beside the tables."""
    json_files: list[Path]
    """The other ``.json`` files (a Jira export's pages and sidecars) when ``snow`` is empty."""


def _read_folder(path: Path, options: MappingOptions, result: LoadResult) -> _Folder:
    """Read the folder's JSON-lines files into ``result`` and sort its JSON files."""
    files = sorted(p for p in path.iterdir() if p.is_file())
    jsonl = [p for p in files if p.suffix.lower() in JSONL_SUFFIXES]
    for p in jsonl:
        _load_jsonl(p, options, result)
    json_files = [p for p in files if p.suffix.lower() == ".json"]
    snow = {p.stem: p for p in json_files if p.stem in _servicenow_tables(options)}
    dictionary = path / SERVICENOW_DICTIONARY
    if snow:
        # Other JSON files beside the tables (saved choice lists, tokens) are not records.
        for other in sorted(set(json_files) - set(snow.values()) - {dictionary}):
            result.report.warnings[
                f"ignored {other.name}: not a ServiceNow table ticketlint maps"
            ] += 1
    return _Folder(
        jsonl=bool(jsonl),
        snow=snow,
        dictionary=dictionary if snow and dictionary.is_file() else None,
        json_files=[] if snow else [p for p in json_files if p != dictionary],
    )


def _load_directory(path: Path, options: MappingOptions, result: LoadResult) -> None:
    folder = _read_folder(path, options, result)
    if folder.snow:
        _load_servicenow(folder.snow, options, result, dictionary=folder.dictionary)
        return
    parsed = {p: _read_json(p, report=result.report) for p in folder.json_files}
    for p, data in parsed.items():
        if _is_jsm_requests(data):
            raise InputError(p, JSM_REQUEST_EXPORT)
    searches = [
        p for p, data in parsed.items() if p.name not in JIRA_SIDECARS and _is_jira_search(data)
    ]
    if searches:
        _load_jira(searches, path, options, result, parsed)
    elif not folder.jsonl:
        raise InputError(
            path,
            "holds no Jira search export, no ServiceNow <table>.json "
            f"({', '.join(sorted(_servicenow_tables(options)))}) and no .jsonl records",
        )


# --- Jira -----------------------------------------------------------------------------


def _load_jira(
    searches: list[Path],
    folder: Path,
    options: MappingOptions,
    result: LoadResult,
    parsed: dict[Path, Any] | None = None,
) -> None:
    from ticketlint.mapping import jira as jira_mapping  # imported when needed: the CLI starts fast

    issues: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    schema: dict[str, Any] = {}
    unreadable = MappingReport()
    for path in searches:
        data = _read_json(path, parsed, result.report)
        page_issues, page_names, page_schema = _search_issues(
            path, data, options, result.report, unreadable
        )
        issues.extend(page_issues)
        names.update(page_names or {})
        schema.update(page_schema or {})
    field_file = folder / "field.json"
    if field_file.is_file():
        field_list = _read_json(field_file, parsed)
        if not isinstance(field_list, list):
            raise InputError(field_file, "expected the JSON list returned by /rest/api/2/field")
        catalog = jira_mapping.JiraFieldCatalog.from_field_list(field_list)
    else:
        catalog = jira_mapping.JiraFieldCatalog.from_names(names, schema or None)
    statuses = None
    status_file = folder / "status.json"
    if status_file.is_file():
        statuses = _read_json(status_file, parsed)
        if not isinstance(statuses, list):
            raise InputError(status_file, "expected the JSON list returned by /rest/api/2/status")
    changelogs = _jira_changelogs(folder, parsed)
    if parsed is not None:
        parsed.clear()  # the issues and histories are all that is still needed
    if not options.base_url:
        # An export without --source still gives clickable links: the site is in "self".
        options = replace(options, base_url=_jira_site(issues))
    mapper = jira_mapping.JiraMapper(
        options,
        catalog,
        statuses=statuses,
        deployment=_jira_deployment(issues),
    )
    records, report = mapper.map_issues(issues, changelogs=changelogs)
    report.merge(unreadable)
    result.extend(records, report)


def _search_issues(
    path: Path, data: Any, options: MappingOptions, report: MappingReport, unreadable: MappingReport
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, Any]]:
    """The issue objects of one search export file, with its field names and schema; an
    entry that is not an issue object is a mapping error (in ``unreadable`` when it is
    null or not an object in a page, in ``report`` when its ``fields`` is not one)."""
    from ticketlint.mapping import jira as jira_mapping

    for page in data if isinstance(data, list) else [data]:
        if isinstance(page, dict) and isinstance(page.get("issues"), list):
            # A null (or non-object) entry is one unreadable row, not a crash.
            bad = [i for i, issue in enumerate(page["issues"]) if not isinstance(issue, dict)]
            for i in bad:
                unreadable.rows += 1
                unreadable.errors.append(
                    MappingError(
                        options.source,
                        None,
                        f"{path}: issues[{i}] is {json.dumps(page['issues'][i])}, "
                        "not an issue object",
                    )
                )
            if bad:
                page["issues"] = [issue for issue in page["issues"] if isinstance(issue, dict)]
    try:
        page_issues, page_names, page_schema = jira_mapping.load_search_export(data)
    except ValueError as exc:
        raise InputError(path, f"not a Jira search export: {exc}") from None
    issues = _objects(page_issues, path, "issue", options.source, report, inner="fields")
    return issues, page_names or {}, page_schema or {}


def _objects(
    items: Iterable[Any],
    path: Path,
    what: str,
    source: str,
    report: MappingReport,
    *,
    inner: str | None = None,
    first: int = 1,
) -> list[dict[str, Any]]:
    """The JSON objects of ``items`` (whose ``inner`` key, when named and present, holds an
    object too: a Jira issue's ``fields``); anything else (a string, a number, a list
    where an issue or row should be) is a mapping error naming the file and position."""
    out: list[dict[str, Any]] = []
    for number, item in enumerate(items, start=first):
        if not isinstance(item, dict):
            problem = f"is a {type(item).__name__}, not an object"
        elif inner is not None and inner in item and not isinstance(item[inner], dict):
            problem = f"has {inner!r} that is a {type(item[inner]).__name__}, not an object"
        else:
            out.append(item)
            continue
        report.rows += 1
        key = item.get("key") if isinstance(item, dict) else None
        report.errors.append(
            MappingError(
                source, key if isinstance(key, str) else None, f"{path}: {what} {number} {problem}"
            )
        )
    return out


def _jira_changelogs(
    folder: Path, parsed: dict[Path, Any] | None = None
) -> dict[str, list[dict[str, Any]]] | None:
    """Issue id -> change histories, from every bulkfetch response in the folder."""
    found: dict[str, list[dict[str, Any]]] | None = None
    for path in sorted(folder.glob("*.json")):
        if path.name in JIRA_SIDECARS:
            continue
        try:
            data = _read_json(path, parsed)
        except InputError:
            # A sibling of the file asked for is not ours to judge: `--input dir/one.json`
            # must not fail because dir/ also holds a broken or unrelated file.
            continue
        pages = data if isinstance(data, list) else [data]
        for page in pages:
            if isinstance(page, dict) and isinstance(page.get("issueChangeLogs"), list):
                found = found if found is not None else {}
                for entry in page["issueChangeLogs"]:
                    found.setdefault(str(entry.get("issueId")), []).extend(
                        entry.get("changeHistories") or []
                    )
    return found


def _jira_site(issues: list[dict[str, Any]]) -> str:
    """``https://acme.atlassian.net`` (with any context path) from an issue's ``self``."""
    for issue in issues:
        url = issue.get("self")
        if isinstance(url, str) and "/rest/api/" in url:
            return url.split("/rest/api/", 1)[0]
    return ""


def _jira_deployment(issues: list[dict[str, Any]]) -> str:
    """Cloud identifies people by ``accountId``; Data Center by ``key`` / ``name``."""
    for issue in issues:
        fields = issue.get("fields")
        if not isinstance(fields, dict):
            continue
        for role in ("assignee", "reporter", "creator"):
            person = fields.get(role)
            if isinstance(person, dict):
                return "Cloud" if "accountId" in person else "DataCenter"
    return "Cloud"


# --- ServiceNow -----------------------------------------------------------------------


def _servicenow_tables(options: MappingOptions) -> set[str]:
    from ticketlint.mapping import servicenow as snow_mapping

    defaults = snow_mapping.DEFAULT_TABLES
    configured = set(defaults.values() if isinstance(defaults, dict) else defaults)
    return configured | set(options.tables.values()) | set(SERVICENOW_KNOWN_TABLES)


def _column_types(path: Path, report: MappingReport) -> ColumnTypes:
    """The declared column types of an exported ``sys_dictionary`` response: raw values,
    ``internal_type`` a type name or a ``{link, value}`` reference (the shapes the live
    reader accepts). ``{}`` rows (hidden by an ACL) are counted in the warnings; any other
    row that does not hold a table, a column and a type name is an :class:`InputError`,
    and so is a file without one usable row: a dictionary given is used, or refused."""
    data = _read_json(path)
    if isinstance(data, dict) and isinstance(data.get("result"), list):
        rows: list[Any] = data["result"]
    elif (
        isinstance(data, list)
        and data
        and all(isinstance(p, dict) and isinstance(p.get("result"), list) for p in data)
    ):
        rows = [row for page in data for row in page["result"]]
    else:
        raise InputError(
            path,
            'expected a Table API response of sys_dictionary ({"result": [rows]} or a list '
            f"of such pages); {DICTIONARY_EXPORT_HINT}",
        )
    hidden = 0
    for number, row in enumerate(rows):
        if row == {}:
            hidden += 1
            continue
        problem = _dictionary_row_problem(row)
        if problem is not None:
            raise InputError(path, f"result[{number}]: {problem}; {DICTIONARY_EXPORT_HINT}")
    types, _ = ColumnTypes.from_rows(r for r in rows if r != {})
    if not len(types):
        raise InputError(
            path,
            f"holds no sys_dictionary row ({len(rows)} rows, {hidden} hidden by an ACL): "
            f"expected rows with name, element and internal_type; {DICTIONARY_EXPORT_HINT}",
        )
    if hidden:
        report.warnings[f"{path.name}: rows hidden by an ACL ({{}}) are not used"] += hidden
    return types


def _dictionary_row_problem(row: Any) -> str | None:
    """Why one exported ``sys_dictionary`` row cannot be used, or None."""
    if not isinstance(row, dict):
        return f"expected a row object, got {type(row).__name__}"
    for key in ("name", "element", "internal_type"):
        value = row.get(key)
        if isinstance(value, dict):  # a reference, {link, value} (or {display_value, value})
            value = value.get("value")
        if not isinstance(value, str) or not value.strip():
            return f"expected {key} as a non-empty raw value, got {json.dumps(row.get(key))[:80]}"
        if key == "internal_type" and not _TYPE_NAME.fullmatch(value.strip()):
            return (
                f"internal_type {value.strip()[:40]!r} is not a type name such as glide_date "
                "(a display-value export?)"
            )
    return None


def _load_servicenow(
    files: dict[str, Path],
    options: MappingOptions,
    result: LoadResult,
    parsed: dict[Path, Any] | None = None,
    *,
    dictionary: Path | None = None,
) -> None:
    from ticketlint.mapping import servicenow as snow_mapping

    def rows(table: str) -> list[dict[str, Any]] | None:
        if table not in files:
            return None
        data = _read_json(files[table], parsed, result.report)
        if isinstance(data, list) and not all(
            isinstance(p, dict) and isinstance(p.get("result"), list) for p in data
        ):  # a bare list of rows: a row that is not an object is that row's error
            data = _objects(data, files[table], "row", options.source, result.report)
        try:
            loaded = snow_mapping.load_table_export(data)
        except ValueError as exc:
            raise InputError(files[table], f"not a ServiceNow Table API response: {exc}") from None
        return _objects(loaded, files[table], "row", options.source, result.report)

    approvals = rows("sysapproval_approver")
    task_ci = rows("task_ci")
    mapper = snow_mapping.ServiceNowMapper(options)
    if dictionary is not None:
        _use_dictionary(mapper, dictionary, options.source, result.report)
    ci_table = options.tables.get("ci", "cmdb_ci")
    ci_rows = rows(ci_table)
    ci_names = _ci_names(ci_rows)
    for table in sorted(files):
        if table in SERVICENOW_LINK_TABLES:
            continue
        process = mapper.process_for_table(table)
        if process is None:
            raise InputError(
                files[table],
                f"table {table!r} is not one ticketlint maps (tables: {', '.join(sorted(_servicenow_tables(options)))})",
            )
        table_rows = ci_rows if table == ci_table and ci_rows is not None else rows(table)
        records, report = mapper.map_rows(
            process,
            table_rows or [],
            approvals=approvals,
            task_ci=task_ci,
            ci_names=ci_names,
        )
        if process == "ci":
            result.ci_sources.add(options.source)
        result.extend(records, report)


# --- streaming ------------------------------------------------------------------------


class NeedsBatch(Exception):
    """The inputs hold what only the whole-batch load reads exactly (a record exported
    twice, whose earlier copy was already checked): read them with :func:`load_inputs`."""


@dataclass
class Piece:
    """Records of one page or chunk of ``check --input`` and what mapping them adds to the
    run's report (:meth:`InputStream.take`): ``report`` at once, ``tail`` after the
    folder's last piece (a Jira folder lists its unreadable entries after its pages),
    all of ``folder``'s tails when ``flush`` is set."""

    records: list[BaseRecord]
    report: MappingReport
    folder: int
    tail: MappingReport | None = None
    flush: bool = False


@dataclass(frozen=True)
class InputTask:
    """One page file or table to read, map and check. It may run in a forked worker
    (:func:`ticketlint.workers.run_ordered`), so its pieces carry their report changes
    instead of making them; ``weight`` (bytes to read, a ServiceNow table's times
    :data:`SERVICENOW_BYTE_COST`) lets the heaviest start first."""

    run: Callable[[], Iterator[Piece]]
    weight: int = 0

    def __call__(self) -> Iterator[Piece]:
        return self.run()


_Plan = Callable[[int, int, Callable[[], None]], list[InputTask]]
"""A folder's planner: ``plan(folder number, jobs, meanwhile)`` -> its tasks, where
``meanwhile`` does the stream's pending held reads (see :attr:`InputStream.pending`)."""


@dataclass
class InputStream:
    """``check --input`` read piece by piece (:func:`stream_inputs`).

    :attr:`held` holds what is loaded whole before anything streams: every
    configuration item (cross-record rules need them all before any record that
    references one is checked), JSON-lines records and single export files. After it,
    :attr:`ci_sources` is complete. :meth:`tasks` then plans the rest: Jira folders
    page by page (a first pass gathers the review issues, the changelogs and the field
    names of every page; each page is then mapped alone) and ServiceNow tables one at a
    time (the approvals and task_ci rows, small per task, are read first and kept), so
    that only one file's JSON and records are alive at a time. :meth:`batches` runs the
    tasks here; a caller may instead run them in workers and :meth:`take` their pieces
    in order. :attr:`report` is complete once every piece is taken."""

    held: LoadResult
    later: list[_Plan]
    _tails: dict[int, MappingReport] = field(default_factory=dict)
    pending: list[Callable[[], None]] = field(default_factory=list)
    """Reads into :attr:`held` left for later (a last ServiceNow folder's link tables
    and CIs): a Jira folder's first pass does them while its workers scan the pages,
    :meth:`prepare` otherwise. :attr:`held` is complete once they are done."""

    def prepare(self) -> None:
        """Do the :attr:`pending` reads (once)."""
        while self.pending:
            self.pending.pop(0)()

    @property
    def report(self) -> MappingReport:
        return self.held.report

    @property
    def ci_sources(self) -> set[str]:
        return self.held.ci_sources

    def tasks(self, jobs: int = 1) -> Iterator[InputTask]:
        """The tasks, folder by folder (a Jira folder's first pass runs on ``jobs``
        processes when it is planned). :attr:`held` is complete once they are all out."""
        for number, plan in enumerate(self.later):
            yield from plan(number, jobs, self.prepare)
        self.prepare()

    def take(self, piece: Piece) -> None:
        """Add a piece's report changes to :attr:`report`, in the order of the pieces."""
        self.report.merge(piece.report)
        if piece.tail is not None:
            self._tails.setdefault(piece.folder, MappingReport()).merge(piece.tail)
        if piece.flush:
            self.report.merge(self._tails.pop(piece.folder, MappingReport()))

    def batches(self) -> Iterator[list[BaseRecord]]:
        for task in self.tasks():
            for piece in task():
                self.take(piece)
                yield piece.records


def stream_inputs(paths: Sequence[Path], options: MappingOptions) -> InputStream:
    """What :func:`load_inputs` reads, as an :class:`InputStream`: the same records and
    the same report, without holding every parsed file and every record at once.
    Raises :class:`InputError` like :func:`load_inputs` (possibly only while
    :meth:`InputStream.batches` runs); duplicates are the caller's to detect."""
    stream = InputStream(LoadResult(), [])
    for number, raw in enumerate(paths):
        path = Path(raw)
        if not path.exists():
            raise InputError(path, "no such file or directory")
        if path.is_dir():
            _stream_directory(path, options, stream, last=number == len(paths) - 1)
        elif path.suffix.lower() in JSONL_SUFFIXES:
            _load_jsonl(path, options, stream.held)
        else:
            _load_file(path, options, stream.held)
    return stream


def _use_dictionary(mapper: Any, dictionary: Path, source: str, report: MappingReport) -> None:
    """Read the mapped columns as the export's ``sys_dictionary`` declares them."""
    types = _column_types(dictionary, report)
    mapper.use_column_types(types)
    log.info(
        "%s: column types from %s (%d columns declared); mapped columns are read as "
        "their declared types",
        source,
        dictionary,
        len(types),
    )
    for problem in mapper.type_problems():
        report.warnings[f"{problem}; it is read by its values"] += 1


def _ci_names(ci_rows: list[dict[str, Any]] | None) -> dict[str, str] | None:
    """The CI table's names by sys_id (a ``task_ci`` row names its CI by sys_id)."""
    if not ci_rows:
        return None
    return {
        str(r.get("sys_id")): str(r.get("name"))
        for r in ci_rows
        if r.get("sys_id") and r.get("name")
    }


def _stream_directory(
    path: Path, options: MappingOptions, stream: InputStream, *, last: bool = False
) -> None:
    """:func:`_load_directory`, streaming (see :class:`InputStream`). A ServiceNow folder
    that is the ``last`` input leaves its held reads in :attr:`InputStream.pending`."""
    held = stream.held
    folder = _read_folder(path, options, held)
    if folder.snow:
        read_held, plan = _stream_servicenow(
            folder.snow, options, held, dictionary=folder.dictionary
        )
        if last:  # no later input writes to held: it may be read while Jira pages scan
            stream.pending.append(read_held)
        else:
            read_held()
        stream.later.append(plan)
        return
    stream.later.append(
        lambda number, jobs, meanwhile: _JiraFolder(path, folder.json_files, options).plan(
            number, jobs, has_jsonl=folder.jsonl, meanwhile=meanwhile
        )
    )


def _stream_servicenow(
    files: dict[str, Path],
    options: MappingOptions,
    held: LoadResult,
    *,
    dictionary: Path | None = None,
) -> tuple[Callable[[], None], _Plan]:
    """:func:`_load_servicenow`: the link tables and the CI table are read by the first
    function returned (the CI records into ``held``); the other tables are mapped one at
    a time by the tasks of the planner, which reads the held tables first if no one has."""
    from ticketlint.mapping import servicenow as snow_mapping

    def rows(table: str, report: MappingReport) -> list[dict[str, Any]] | None:
        if table not in files:
            return None
        data = _read_json(files[table], None, report)
        if isinstance(data, list) and not all(
            isinstance(p, dict) and isinstance(p.get("result"), list) for p in data
        ):
            data = _objects(data, files[table], "row", options.source, report)
        try:
            loaded = snow_mapping.load_table_export(data)
        except ValueError as exc:
            raise InputError(files[table], f"not a ServiceNow Table API response: {exc}") from None
        return _objects(loaded, files[table], "row", options.source, report)

    mapper = snow_mapping.ServiceNowMapper(options)
    ci_table = options.tables.get("ci", "cmdb_ci")
    ordered = [t for t in sorted(files) if t not in SERVICENOW_LINK_TABLES]
    for table in ordered:
        if mapper.process_for_table(table) is None:
            raise InputError(
                files[table],
                f"table {table!r} is not one ticketlint maps (tables: {', '.join(sorted(_servicenow_tables(options)))})",
            )

    cis = [t for t in ordered if mapper.process_for_table(t) == "ci" or t == ci_table]
    approvals: list[dict[str, Any]] | None = None
    task_ci: list[dict[str, Any]] | None = None
    ci_names: dict[str, str] | None = None

    def map_table(
        table: str, table_rows: list[dict[str, Any]] | None, report: MappingReport
    ) -> list[BaseRecord]:
        process = mapper.process_for_table(table)
        assert process is not None  # checked above
        records, table_report = mapper.map_rows(
            process, table_rows or [], approvals=approvals, task_ci=task_ci, ci_names=ci_names
        )
        report.merge(table_report)
        return records

    def read_held() -> None:
        """The link tables and the configuration items (into ``held``)."""
        nonlocal approvals, task_ci, ci_names
        approvals = rows("sysapproval_approver", held.report)
        task_ci = rows("task_ci", held.report)
        if dictionary is not None:  # as _load_servicenow
            _use_dictionary(mapper, dictionary, options.source, held.report)
        ci_rows = rows(ci_table, held.report)
        ci_names = _ci_names(ci_rows)
        for table in cis:
            table_rows = (
                ci_rows if table == ci_table and ci_rows is not None else rows(table, held.report)
            )
            held.extend(map_table(table, table_rows, held.report), MappingReport())
            held.ci_sources.add(options.source)

    def table_pieces(table: str, folder: int) -> Iterator[Piece]:
        """One table, a chunk of rows at a time; its report comes with its last piece
        (the reader and the mapper write it as the chunks go)."""
        report = MappingReport()
        chunks = _table_row_chunks(files[table], options, report)
        if chunks is None:  # not a plain {"result": [...]}: read whole
            records = map_table(table, rows(table, report), report)
            yield Piece(records, report, folder)
            return
        process = mapper.process_for_table(table)
        assert process is not None  # checked above
        for records, chunk_report in mapper.map_row_chunks(
            process, chunks, approvals=approvals, task_ci=task_ci, ci_names=ci_names
        ):
            report.merge(chunk_report)
            yield Piece(records, MappingReport(), folder)
        yield Piece([], report, folder)

    def plan(folder: int, jobs: int, meanwhile: Callable[[], None]) -> list[InputTask]:
        meanwhile()  # the held reads left for later, this folder's among them
        return [
            InputTask(
                partial(table_pieces, table, folder),
                files[table].stat().st_size * SERVICENOW_BYTE_COST,
            )
            for table in ordered
            if table not in cis
        ]

    return read_held, plan


SERVICENOW_BYTE_COST = 3
"""What a byte of a ServiceNow table costs to read, map and check, in bytes of a Jira
search page (a task's weight, which orders the workers' tasks): a Table API row is
compact, a Jira issue carries much that is not mapped. Measured on the bench's 100k
export: 36-52 ms a megabyte for the tables, 16 for the runs of search pages."""

_RESULT_ARRAY = re.compile(r'\A[ \t\n\r]*\{[ \t\n\r]*"result"[ \t\n\r]*:[ \t\n\r]*\[')
_WHITESPACE = re.compile(r"[ \t\n\r]*")
ROWS_PER_CHUNK = 1000
"""Rows of a large ServiceNow table parsed and mapped at a time (at least the 200 rows
``refuse_display_values`` looks at)."""


def _table_row_chunks(
    path: Path, options: MappingOptions, report: MappingReport
) -> Iterator[list[dict[str, Any]]] | None:
    """The rows of a Table API response ``{"result": [...]}`` parsed a chunk at a time
    from its text (the file's JSON is never whole in memory), read as :func:`_read_json`
    and ``load_table_export`` read them: big integers unknown and counted, lone
    surrogates replaced, a display-value export refused, a row that is not an object a
    mapping error numbered in the file. None for any other shape (read it whole). A
    value nested too deep, or more after the array than its closing brace, raises
    :class:`NeedsBatch`; text that is not JSON raises :class:`InputError`."""
    from ticketlint.mapping import servicenow as snow_mapping

    text = _read_text(path)
    start = _RESULT_ARRAY.match(text)
    if start is None:
        return None

    def skip(pos: int) -> int:
        space = _WHITESPACE.match(text, pos)
        return space.end() if space is not None else pos

    def chunks() -> Iterator[list[dict[str, Any]]]:
        limits = safejson.Limits()
        decoder = json.JSONDecoder(parse_int=safejson.int_parser(limits))
        surrogates = safejson.has_surrogate_escape(text)
        pos = skip(start.end())
        done = text.startswith("]", pos)
        pos += done
        chunk: list[Any] = []
        number = 0
        while not done:
            try:
                row, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise InputError(path, f"not valid JSON: {exc.msg}") from None
            except RecursionError:
                raise NeedsBatch(f"{path}: a value nested too deep") from None
            chunk.append(safejson.fix_lone_surrogates(row) if surrogates else row)
            pos = skip(pos)
            if text.startswith(",", pos):
                pos = skip(pos + 1)
            elif text.startswith("]", pos):
                pos, done = pos + 1, True
            else:
                raise InputError(path, "not valid JSON: expecting ',' or ']'")
            if len(chunk) >= ROWS_PER_CHUNK or done:
                if not number:
                    try:
                        snow_mapping.refuse_display_values(chunk)
                    except ValueError as exc:
                        raise InputError(
                            path, f"not a ServiceNow Table API response: {exc}"
                        ) from None
                objects = _objects(chunk, path, "row", options.source, report, first=number + 1)
                number += len(chunk)
                chunk = []
                yield objects
        rest = skip(pos)
        if text[rest : rest + 1] != "}" or text[rest + 1 :].strip(" \t\n\r"):
            raise NeedsBatch(f"{path}: more than the result array")
        if limits.big_integers:
            report.warnings[
                f"{path.name}: integers of more than {safejson.MAX_INT_DIGITS} digits read as unknown"
            ] += limits.big_integers

    return chunks()


@dataclass
class _Scan:
    """What the first pass learns from one file of a Jira folder."""

    report: MappingReport
    """Warnings of reading it (values nested too deep, integers too long)."""
    sidecar: Any = None
    """The JSON of ``field.json`` or ``status.json``."""
    changelog_ids: list[str] | None = None
    """The issue ids of a changelog bulkfetch response, in order (None: it is none)."""
    changelog_unparsed: bool = False
    """``changelog_ids`` were read off the text (:func:`_changelog_ids_of_text`): the
    file is checked when the second pass parses it."""
    search: bool = False
    names: dict[str, str] = field(default_factory=dict)
    schema: dict[str, Any] = field(default_factory=dict)
    reviews: Any = None
    """The review index of the page's own issues (``JiraMapper.review_index``)."""
    site: str | None = None
    deployment: str | None = None
    issues: tuple[list[dict[str, Any]], MappingReport, MappingReport] | None = None
    """The page read as the second pass reads it, when kept (not parsed again)."""
    idents: set[str] = field(default_factory=set)
    """What the second pass looks changelogs up by, for this page's issues."""
    skimmed: bool = False
    """``reviews`` and ``idents`` were read off the text (:func:`skim_search_page`), and
    ``site`` and ``deployment`` are not known: the second pass checks the first two."""


class _JiraFolder:
    """:func:`_load_directory` + :func:`_load_jira` for a Jira folder, one page file at a
    time: a first pass over every file (:meth:`scan`) gathers what crosses pages (review
    issues, the changelogs, field names, the site and deployment), then each search file
    is parsed again and mapped alone (:meth:`page`). With ``field.json`` in the folder and
    workers to share the pages, the first pass reads pages off their text
    (:func:`skim_search_page`) and the second checks that reading against the parse."""

    def __init__(self, path: Path, json_files: list[Path], options: MappingOptions) -> None:
        from ticketlint.mapping import jira as jira_mapping

        self.path, self.json_files, self.options = path, json_files, options
        self.scout = jira_mapping.JiraMapper(
            options, jira_mapping.JiraFieldCatalog.from_names({}, None)
        )
        self.searches: list[Path] = []
        self.kept: dict[Path, tuple[list[dict[str, Any]], MappingReport, MappingReport]] = {}
        self.changelogs = _Changelogs()
        self.reviews: Any = {"own": {}, "completes": {}}
        self.mapper: Any = None
        self.skimmed: dict[Path, tuple[Any, int]] = {}
        """Pages the first pass read off their text: their review index and the hash of
        their idents, for the second pass to check against the parsed page."""
        # The issues' field names come from field.json, not from the pages: a page's
        # text then tells the first pass all it needs (search_text).
        self.may_skim = any(p.name == "field.json" for p in json_files)
        self._review_types: dict[str, bool] = {}

    def scan(self, number: int, keep: bool, skim: bool = False) -> _Scan:
        """The first pass over ``json_files[number]``; the page itself too when ``keep``;
        read off its text when ``skim`` and the text reads as expected."""
        path = self.json_files[number]
        scan = _Scan(MappingReport())
        text = None
        if path.name.endswith(".json") and path.name not in JIRA_SIDECARS:
            text = _read_text(path)
            ids = _changelog_ids_of_text(text)
            if ids is not None:
                scan.changelog_ids, scan.changelog_unparsed = ids, True
                return scan
            skimmed = skim_search_page(text, self._is_review_type) if skim else None
            if skimmed is not None:
                scan.search = scan.skimmed = True
                scan.reviews = self.scout.review_index(skimmed.candidates)
                scan.idents = skimmed.idents
                return scan
        data = _read_json(path, None, scan.report, text=text)
        del text
        if _is_jsm_requests(data):
            raise InputError(path, JSM_REQUEST_EXPORT)
        if path.name in JIRA_SIDECARS:
            scan.sidecar = data
            return scan
        if path.name.endswith(".json"):  # what _jira_changelogs' glob reads
            scan.changelog_ids = _Changelogs.issue_ids(data)
        if not _is_jira_search(data):
            return scan
        scan.search = True
        page_report, page_unreadable = MappingReport(), MappingReport()
        issues, scan.names, scan.schema = _search_issues(
            path, data, self.options, page_report, page_unreadable
        )
        scan.reviews = self.scout.review_index(issues)
        scan.idents = _Changelogs.idents(issues)
        scan.site = _jira_site(issues) or None
        scan.deployment = _jira_first_deployment(issues)
        if keep:
            scan.issues = (issues, page_report, page_unreadable)
        return scan

    def plan(
        self,
        folder: int,
        jobs: int,
        *,
        has_jsonl: bool,
        meanwhile: Callable[[], None] | None = None,
    ) -> list[InputTask]:
        """Run the first pass (on ``jobs`` processes: only what crosses pages comes back
        from them; ``meanwhile`` runs here while they scan), build the mapper, and return
        the tasks of the second pass."""
        from ticketlint.mapping import jira as jira_mapping
        from ticketlint.workers import run_ordered

        scan_report = MappingReport()
        names: dict[str, str] = {}
        schema: dict[str, Any] = {}
        field_list: Any = None
        statuses: Any = None
        site: str | None = None
        deployment: str | None = None
        kept_bytes = 0
        keep = jobs < 2  # a worker's parsed page costs more to send back than to parse
        skim = self.may_skim and not keep
        files = len(self.json_files)
        scans = run_ordered(
            partial(self.scan, keep=keep, skim=skim),
            files,
            jobs,
            chunksize=max(1, files // (jobs * SCAN_CHUNKS_PER_JOB)),
            meanwhile=meanwhile,
        )
        idents: set[str] = set()
        unparsed: dict[int, list[str]] = {}
        for number, (path, scan) in enumerate(zip(self.json_files, scans, strict=True)):
            if scan.skimmed and (site is None or deployment is None):
                scan = self.scan(number, keep=False)  # the site and deployment are read
            scan_report.merge(scan.report)
            if path.name == "field.json":
                field_list = scan.sidecar
            elif path.name == "status.json":
                statuses = scan.sidecar
            if scan.changelog_ids is not None:
                if scan.changelog_unparsed:
                    unparsed[len(self.changelogs.files)] = scan.changelog_ids
                self.changelogs.note(path, scan.changelog_ids, parsed=not scan.changelog_unparsed)
            if not scan.search:
                continue
            idents |= scan.idents
            self.searches.append(path)
            if scan.skimmed:
                self.skimmed[path] = (scan.reviews, hash(frozenset(scan.idents)))
            if scan.issues is not None:
                size = path.stat().st_size
                if kept_bytes + size <= SEARCH_BYTES_KEPT:  # mapped from here, not parsed again
                    self.kept[path] = scan.issues
                    kept_bytes += size
            names.update(scan.names)
            schema.update(scan.schema)
            _merge_reviews(self.reviews, scan.reviews)
            site = site or scan.site
            deployment = deployment or scan.deployment
        for number, ids in unparsed.items():
            if idents.isdisjoint(ids):  # no page will parse it: it is checked here
                self.changelogs.parse_to_check(number)
        setup = InputTask(partial(iter, [Piece([], scan_report, folder)]))
        if not self.searches:
            if not has_jsonl:
                raise InputError(
                    self.path,
                    "holds no Jira search export, no ServiceNow <table>.json "
                    f"({', '.join(sorted(_servicenow_tables(self.options)))}) and no .jsonl records",
                )
            return [setup]
        if field_list is not None:
            if not isinstance(field_list, list):
                raise InputError(
                    self.path / "field.json",
                    "expected the JSON list returned by /rest/api/2/field",
                )
            catalog = jira_mapping.JiraFieldCatalog.from_field_list(field_list)
        else:
            catalog = jira_mapping.JiraFieldCatalog.from_names(names, schema or None)
        if statuses is not None and not isinstance(statuses, list):
            raise InputError(
                self.path / "status.json", "expected the JSON list returned by /rest/api/2/status"
            )
        options = self.options
        if not options.base_url:
            options = replace(options, base_url=site or "")
        self.mapper = jira_mapping.JiraMapper(
            options, catalog, statuses=statuses, deployment=deployment or "Cloud"
        )
        count = len(self.searches)
        run = _pages_per_task(count, len(self.changelogs.files), jobs)
        pages = [
            InputTask(
                partial(self.pages, range(start, min(start + run, count)), folder),
                sum(path.stat().st_size for path in self.searches[start : start + run]),
            )
            for start in range(0, count, run)
        ]
        return [setup, *pages]

    def _is_review_type(self, name: str) -> bool:
        # Asked once per issue type object of every page; a folder has few type names.
        known = self._review_types.get(name)
        if known is None:
            known = self._review_types[name] = self.scout.process_of_type(name) == "review"
        return known

    def pages(self, numbers: range, folder: int) -> Iterator[Piece]:
        """Search files ``numbers``, one piece each (:meth:`page`)."""
        last = len(self.searches) - 1
        for number in numbers:
            yield from self.page(number, folder, number == last)

    def page(self, number: int, folder: int, last: bool) -> Iterator[Piece]:
        """Search file ``number`` mapped (its unreadable entries are the folder's tail)."""
        path = self.searches[number]
        first_read = self.kept.pop(path, None)
        report, unreadable = MappingReport(), MappingReport()
        skimmed = self.skimmed.get(path)
        if skimmed is not None:
            data = _read_json(path, None, report)  # its read warnings are reported here
            if _is_jsm_requests(data) or not _is_jira_search(data):
                raise NeedsBatch(f"{path}: read as a search page off its text, and is none")
            issues, _, _ = _search_issues(path, data, self.options, report, unreadable)
            del data
            if (
                self.scout.review_index(issues) != skimmed[0]
                or hash(frozenset(_Changelogs.idents(issues))) != skimmed[1]
            ):
                raise NeedsBatch(f"{path}: its text read otherwise than its JSON")
        elif first_read is None:
            issues, _, _ = _search_issues(path, _read_json(path), self.options, report, unreadable)
        else:
            issues = first_read[0]
            report.merge(first_read[1])
            unreadable.merge(first_read[2])
            first_read = None
        records, page_report = self.mapper.map_issues(
            issues,
            changelogs=self.changelogs.for_issues(issues),
            reviews=self.reviews,
            setup_warnings=number == 0,
        )
        del issues
        report.merge(page_report)
        yield Piece(records, report, folder, tail=unreadable, flush=last)


def _merge_reviews(into: Any, page: Any) -> None:
    """Add a page's review index to the folder's, as ``review_index(issues, into=...)``
    page after page would: a review's own state from its last copy, a completed record's
    time from the first review that completes it."""
    into["own"].update(page["own"])
    completes = into["completes"]
    for key, at in page["completes"].items():
        completes.setdefault(key, at)


class _Changelogs:
    """The changelog bulkfetch responses of a folder, read on demand: which file holds
    the histories of which issue is noted in the first pass (a few bytes per issue),
    and a page's histories are read from those files when the page is mapped, the
    last :data:`CHANGELOG_FILES_KEPT` files parsed kept (bulkfetch pages follow the
    search order, so each file is parsed about once more). Histories of an issue found
    in several files are joined in file order, as :func:`_jira_changelogs` does."""

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.where: dict[str, list[int]] = {}
        self.unparsed: set[int] = set()
        """Files whose ids were read off their text: checked when first parsed."""
        self._parsed: OrderedDict[int, dict[str, list[Any]]] = OrderedDict()

    @staticmethod
    def idents(issues: Iterable[Any]) -> set[str]:
        """What :meth:`for_issues` looks these issues up by."""
        out: set[str] = set()
        for issue in issues:
            if isinstance(issue, dict):
                native_id = issue.get("id")
                out.update(
                    i for i in (native_id, str(native_id), issue.get("key")) if i.__class__ is str
                )
        return out

    @staticmethod
    def issue_ids(data: Any) -> list[str] | None:
        """The issue ids of a changelog bulkfetch response (or a list of them), in
        order; None when it holds none."""
        ids: list[str] | None = None
        for page in data if isinstance(data, list) else [data]:
            if isinstance(page, dict) and isinstance(page.get("issueChangeLogs"), list):
                ids = ids if ids is not None else []
                ids.extend(str(entry.get("issueId")) for entry in page["issueChangeLogs"])
        return ids

    def note(self, path: Path, issue_ids: list[str], *, parsed: bool = True) -> None:
        number = len(self.files)
        if not parsed:
            self.unparsed.add(number)
        for issue_id in issue_ids:
            files = self.where.setdefault(issue_id, [])
            if not files or files[-1] != number:
                files.append(number)
        self.files.append(path)

    def for_issues(self, issues: Iterable[dict[str, Any]]) -> dict[str, list[Any]] | None:
        """What ``JiraMapper.map_issues`` looks up for these issues (None when the
        folder has no changelog response at all, as :func:`_jira_changelogs`)."""
        if not self.files:
            return None
        where = self.where
        out: dict[str, list[Any]] = {}
        for issue in issues:
            native_id = issue.get("id")
            for ident in (native_id, str(native_id), issue.get("key")):
                if ident.__class__ is str and ident in where and ident not in out:
                    histories: list[Any] = []
                    for number in where[ident]:
                        histories.extend(self._file(number).get(ident, ()))
                    out[ident] = histories
        return out

    def _file(self, number: int) -> dict[str, list[Any]]:
        parsed = self._parsed.get(number)
        if parsed is not None:
            self._parsed.move_to_end(number)
            return parsed
        parsed = {}
        unparsed = number in self.unparsed
        report = MappingReport() if unparsed else None
        data = _read_json(self.files[number], None, report)
        for page in data if isinstance(data, list) else [data]:
            if isinstance(page, dict) and isinstance(page.get("issueChangeLogs"), list):
                for entry in page["issueChangeLogs"]:
                    parsed.setdefault(str(entry.get("issueId")), []).extend(
                        entry.get("changeHistories") or []
                    )
        if unparsed:
            self._check(number, data, parsed, report)
        self._parsed[number] = parsed
        while len(self._parsed) > CHANGELOG_FILES_KEPT:
            self._parsed.popitem(last=False)
        return parsed

    def parse_to_check(self, number: int) -> None:
        """Parse file ``number`` (ids read off its text) only to check it: no page will."""
        self._file(number)
        self._parsed.pop(number, None)

    def _check(
        self, number: int, data: Any, parsed: dict[str, list[Any]], report: MappingReport | None
    ) -> None:
        """The first pass read this file's ids off its text; what its parse shows must
        be what that reading assumed, or the whole-batch load answers instead: no read
        warning (the first pass would have reported it), no search or request export in
        it, and each issue noted where it is (an id noted but not there costs a lookup)."""
        path = self.files[number]
        if report is not None and report.warnings:
            raise NeedsBatch(f"{path}: a value the safe reader could not read")
        if _is_jira_search(data) or _is_jsm_requests(data):
            raise NeedsBatch(f"{path}: not only a changelog response")
        where = self.where
        for ident in parsed:
            if number not in where.get(ident, ()):
                raise NeedsBatch(f"{path}: issue id {ident!r} not read off the text")
        self.unparsed.discard(number)


_CHANGELOG_TEXT = re.compile(r'[ \t\n\r]*\{[ \t\n\r]*"issueChangeLogs"[ \t\n\r]*:[ \t\n\r]*\[')
_CHANGELOG_KEY = re.compile(
    r'"(issueId|issues|values)"[ \t\n\r]*:(?:[ \t\n\r]*(?:"([^"\\]*)"|(-?[0-9]+)[,}\s]))?'
)
"""The keys a changelog's text is read for, in one scan (one pattern per key scanned the
text once each: three times the time): an ``issueId`` with the id, when it is a string
without escapes or an integer; ``issues`` or ``values``, the key of another export."""


def _changelog_ids_of_text(text: str) -> list[str] | None:
    """The issue ids of a changelog bulkfetch response as Jira writes one, read off its
    text without building it (changelog files are about a quarter of a Jira export's
    bytes, and the first pass parsed each only for its ids). None, and the file is
    parsed, unless the text begins ``{"issueChangeLogs": [`` and holds no ``\\u`` escape
    (a key could be spelt with one) and no ``"issues"`` or ``"values"`` key (a search or
    request export).

    A key in JSON text is a string after ``{`` or ``,`` and followed by ``:``; a quote
    inside a string is escaped, so ``"issueId":`` after ``{``, ``,`` or whitespace is
    always a key. It may be a key deeper than the response's entries: an id noted where
    it is not costs a lookup and nothing else. :meth:`_Changelogs._check` checks the
    rest when the second pass parses the file (or :meth:`_JiraFolder.plan` does, when no
    page will)."""
    # The opening first: a search page (most of the files) fails it at once, before a
    # scan of its whole text. A backslash is looked for before an escape: one character
    # is found with memchr (~0.03 ms a megabyte), two with a slower search (~0.8 ms).
    if not _CHANGELOG_TEXT.match(text) or ("\\" in text and "\\u" in text):
        return None
    ids: list[str] = []
    for match in _CHANGELOG_KEY.finditer(text):
        key, string_id, number_id = match.groups()
        if key != "issueId":
            return None  # a search or request export
        if text[match.start() - 1] in "{, \t\n\r":
            ident = string_id if string_id is not None else number_id
            if ident is not None:
                ids.append(ident)
    return ids


def _pages_per_task(pages: int, changelog_files: int, jobs: int) -> int:
    """Search files a task of the second pass maps in a row. On workers, about as many
    as share a changelog file (bulkfetch pages follow the search order): a worker given
    every other page parses every changelog file, one given a run of pages parses each
    about once. Runs stay short enough for :data:`TASKS_PER_JOB` tasks a worker, so that
    the workers finish together."""
    if jobs < 2 or not changelog_files:
        return 1
    run = -(-pages // changelog_files)
    return max(1, min(run, pages // (jobs * TASKS_PER_JOB)))


TASKS_PER_JOB = 8
SCAN_CHUNKS_PER_JOB = 8
"""The first pass sends each worker about this many runs of files (a file takes a few
milliseconds: sent one by one, the workers wait on the messages)."""
CHANGELOG_FILES_KEPT = 2
SEARCH_BYTES_KEPT = 16 * 2**20
"""Search files up to this size in all (the first ones of a folder) are kept parsed from
the first pass to the second: a small export is parsed once, a large one holds at most
this much more (about four times as much once parsed)."""


def _jira_first_deployment(issues: list[dict[str, Any]]) -> str | None:
    """:func:`_jira_deployment`, None when no issue names a person (the next page may)."""
    for issue in issues:
        fields = issue.get("fields")
        if not isinstance(fields, dict):
            continue
        for role in ("assignee", "reporter", "creator"):
            person = fields.get(role)
            if isinstance(person, dict):
                return "Cloud" if "accountId" in person else "DataCenter"
    return None
