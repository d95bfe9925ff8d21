"""Jira Cloud REST (v3 and v2) and JSM servicedeskapi endpoints over :class:`JiraData`.

Shapes follow Atlassian's OpenAPI description (SearchAndReconcileResults, IssueBean,
BulkChangelogResponseBean, FieldDetails, ServerInfo, User, StatusDetails) and the JSM
approval DTO. ``/rest/api/{2,3}/search`` answers 410 as Cloud does since its removal.

With ``deployment="Server"`` the same data is served as a Data Center site: ``serverInfo``
says so and ``POST /rest/api/2/search`` pages by ``startAt`` (offsets over the current
order, with ``total``, as DC does: a record updated mid-read moves and shifts the offsets).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from functools import partial
from typing import Any

from ticketlint.sandbox import jql as J
from ticketlint.sandbox.data import jira_text
from ticketlint.sandbox.http import Credentials, Request, Response, json_response
from ticketlint.sandbox.jira_data import (
    CUSTOM_FIELDS,
    SEARCH_COMMENT_LIMIT,
    STATUSES,
    SYSTEM_FIELDS,
    JiraData,
)

EMBEDDED_CHANGELOG = 40
DEFAULT_MAX = 50
FULL_CAP = 100
ID_CAP = 5000
REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


def errors(status: int, *messages: str, **field_errors: str) -> Response:
    return json_response(status, {"errorMessages": list(messages), "errors": field_errors})


def adf_text(value: Any) -> str:
    """Plain text of an ADF document (or a plain string, as v2 accepts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("type") == "text":
            return str(value.get("text", ""))
        return "".join(adf_text(c) for c in value.get("content", []) or [])
    if isinstance(value, list):
        return "".join(adf_text(c) for c in value)
    return ""


class JiraApi:
    def __init__(self, data: JiraData, creds: Credentials, deployment: str = "Cloud") -> None:
        self.data, self.creds, self.deployment = data, creds, deployment
        v = r"/rest/api/(?P<v>[23])"
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response], bool]] = [
            ("GET", re.compile(v + r"/serverInfo"), self.server_info, False),
            ("GET", re.compile(v + r"/myself"), self.myself, True),
            ("GET", re.compile(v + r"/field"), self.fields, True),
            ("GET", re.compile(v + r"/status"), self.statuses, True),
            ("GET", re.compile(v + r"/issuetype"), self.issue_types, True),
            ("GET", re.compile(v + r"/search"), self.removed, True),
            ("POST", re.compile(v + r"/search"), self.removed, True),
            ("GET", re.compile(v + r"/search/jql"), self.search, True),
            ("POST", re.compile(v + r"/search/jql"), self.search, True),
            ("POST", re.compile(v + r"/changelog/bulkfetch"), self.bulkfetch, True),
            ("GET", re.compile(v + r"/issue/(?P<key>[^/]+)"), self.get_issue, True),
            ("PUT", re.compile(v + r"/issue/(?P<key>[^/]+)"), self.edit_issue, True),
            ("GET", re.compile(v + r"/issue/(?P<key>[^/]+)/changelog"), self.issue_changelog, True),
            ("GET", re.compile(v + r"/issue/(?P<key>[^/]+)/comment"), self.list_comments, True),
            ("POST", re.compile(v + r"/issue/(?P<key>[^/]+)/comment"), self.add_comment, True),
            (
                "PUT",
                re.compile(v + r"/issue/(?P<key>[^/]+)/comment/(?P<cid>\d+)"),
                self.edit_comment,
                True,
            ),
            (
                "GET",
                re.compile(r"/rest/servicedeskapi/request/(?P<key>[^/]+)/approval"),
                self.approvals,
                True,
            ),
        ]

    @staticmethod
    def owns(path: str) -> bool:
        return path.startswith("/rest/")

    def route(self, req: Request) -> str:
        for method, pattern, _handler, _ in self.routes:
            if method == req.method and pattern.fullmatch(req.path):
                return f"{method} {pattern.pattern.replace('(?P<v>[23])', '{v}')}"
        return f"{req.method} jira-other"

    def handle(self, req: Request) -> Response:
        for method, pattern, handler, auth in self.routes:
            m = pattern.fullmatch(req.path)
            if m and method == req.method:
                if auth and not self._authorised(req):
                    return errors(401, "Client must be authenticated to access this resource.")
                args = m.groupdict()
                v2 = args.pop("v", "3") == "2"
                try:
                    return handler(req, v2=v2, **args)
                except (ValueError, KeyError, TypeError) as exc:
                    return errors(400, f"Invalid request payload: {exc}")
        if any(p.fullmatch(req.path) for _, p, _, _ in self.routes):
            return Response(
                405,
                b"",
                {"Allow": ", ".join(m for m, p, _, _ in self.routes if p.fullmatch(req.path))},
            )
        return errors(404, "null for uri: " + req.path)

    def _authorised(self, req: Request) -> bool:
        basic = req.basic_auth()
        if basic:
            return basic == (self.creds.jira_email, self.creds.jira_token)
        return req.bearer() == self.creds.jira_pat

    # -- metadata --------------------------------------------------------------------
    def server_info(self, req: Request, v2: bool) -> Response:
        d = self.data
        now = d.ds.clock()
        return json_response(
            200,
            {
                "baseUrl": d.ds.base_url,
                "displayUrl": d.ds.base_url,
                "version": "1001.0.0-SNAPSHOT",
                "versionNumbers": [1001, 0, 0],
                "deploymentType": self.deployment,
                "buildNumber": 100289,
                "buildDate": jira_text(d.ds.anchor - 7 * 86_400_000, d.zone),
                "serverTime": jira_text(now, d.zone),
                "scmInfo": "a3f1c2e9d0b4f6a8c7e5d3b1a9f7e5c3d1b9a7f5",
                "serverTitle": "Jira",
                "defaultLocale": {"locale": "en_US"},
                "serverTimeZone": "Etc/UTC",
            },
        )

    def myself(self, req: Request, v2: bool) -> Response:
        d = self.data
        me = d.user(0, v2=v2) or {}
        me.update(
            {
                "locale": "en_US",
                "groups": {"size": 2, "items": []},
                "applicationRoles": {"size": 1, "items": []},
                "expand": "groups,applicationRoles",
            }
        )
        return json_response(200, me)

    def fields(self, req: Request, v2: bool) -> Response:
        out = []
        for fid, name, stype in SYSTEM_FIELDS:
            schema: dict[str, Any] = {"type": stype, "system": fid}
            if fid in ("labels", "issuelinks"):
                schema["items"] = "string" if fid == "labels" else "issuelinks"
            out.append(
                {
                    "id": fid,
                    "key": fid,
                    "name": name,
                    "custom": False,
                    "orderable": fid not in ("status", "created", "updated"),
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": [fid],
                    "schema": schema,
                }
            )
        for name, stype, custom, items in CUSTOM_FIELDS:
            fid = self.data.field_ids[name]
            num = int(fid.split("_")[1])
            schema = {"type": stype, "custom": custom, "customId": num}
            if items:
                schema["items"] = items
            out.append(
                {
                    "id": fid,
                    "key": fid,
                    "name": name,
                    "untranslatedName": name,
                    "custom": True,
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": [f"cf[{num}]", name],
                    "schema": schema,
                }
            )
        return json_response(200, out)

    def statuses(self, req: Request, v2: bool) -> Response:
        out = []
        for name, _ in STATUSES:
            s = self.data.status(name)
            s["untranslatedName"] = name
            out.append(s)
        return json_response(200, out)

    def removed(self, req: Request, v2: bool) -> Response:
        if self.deployment != "Cloud":
            return self.dc_search(req)
        return errors(410, REMOVED)

    # -- search ----------------------------------------------------------------------
    def _labels(self, idx: int) -> list[str]:
        """An issue's labels, asked by the JQL matcher only when the query names labels."""
        labels: list[str] = self.data.issue(idx)["fields"].get("labels") or []
        return labels

    def dc_search(self, req: Request) -> Response:
        """Data Center's ``/rest/api/2/search``: offset paging (``startAt``) with ``total``."""
        payload = req.json() if req.method == "POST" else None
        if not isinstance(payload, dict):
            payload = {
                "jql": req.param("jql"),
                "startAt": req.param("startAt", "0"),
                "maxResults": req.param("maxResults", str(DEFAULT_MAX)),
                "fields": [f for v in req.query.get("fields", []) for f in v.split(",")],
                "expand": req.param("expand", "") or "",
            }
        d = self.data
        try:
            q = J.parse(payload.get("jql"), d.zone)
            start = int(payload.get("startAt") or 0)
            limit = max(1, min(int(payload.get("maxResults") or DEFAULT_MAX), 1000))
        except J.JqlError as exc:
            return errors(400, str(exc))
        expand = payload.get("expand") or ""
        expands = set(expand if isinstance(expand, list) else str(expand).split(","))
        fields = payload.get("fields") or ["*navigable"]

        def labels_of(idx: int) -> Callable[[], list[str]]:
            return lambda: d.issue(idx)["fields"].get("labels") or []

        with d.lock:
            matching = [
                idx
                for idx in (row[-1] for row in self._candidates(q))
                if idx not in d.deleted
                and J.matches(
                    q,
                    d.key(idx),
                    d.project(idx),
                    d.type_name(idx),
                    d.updated[idx],
                    labels=labels_of(idx),
                )
            ]
        issues = []
        for idx in matching[start : start + limit]:
            issue = self._render(idx, fields, expands - {"changelog"}, True)
            if "changelog" in expands:
                histories = d.changelog(idx)
                issue["changelog"] = {
                    "startAt": 0,
                    "maxResults": len(histories),
                    "total": len(histories),
                    "histories": histories,
                }
            issues.append(issue)
        result: dict[str, Any] = {
            "startAt": start,
            "maxResults": limit,
            "total": len(matching),
            "issues": issues,
        }
        return json_response(200, result)

    def search(self, req: Request, v2: bool) -> Response:
        if req.method == "POST":
            payload = req.json() or {}
            if not isinstance(payload, dict):
                return errors(
                    400,
                    "Invalid request payload. Refer to the REST API documentation and try again.",
                )
            jql_text = payload.get("jql")
            token = payload.get("nextPageToken")
            max_results = payload.get("maxResults", DEFAULT_MAX)
            fields = payload.get("fields") or ["id"]
            expand = payload.get("expand") or ""
            if isinstance(expand, list):
                expand = ",".join(expand)
        else:
            jql_text = req.param("jql")
            token = req.param("nextPageToken")
            max_results = req.param("maxResults", str(DEFAULT_MAX))
            fields = [f for v in req.query.get("fields", []) for f in v.split(",")] or ["id"]
            expand = req.param("expand", "") or ""
        try:
            max_results = int(max_results)
        except (TypeError, ValueError):
            return errors(400, "The value of 'maxResults' is not valid.")
        d = self.data
        try:
            q = J.parse(jql_text, d.zone)
        except J.JqlError as exc:
            return errors(400, str(exc))
        if q.types is not None:
            known = {t["name"].lower() for t in d.issue_types()}
            for name in sorted(q.types - known):  # as a real site answers an unknown type
                return errors(400, f"The value '{name}' does not exist for the field 'issuetype'.")
        if not q.bounded:
            return errors(
                400,
                "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
            )
        fields = [f.strip() for f in fields if f and f.strip()]
        id_only = all(f in ("id", "key") for f in fields)
        cap = ID_CAP if id_only else FULL_CAP
        limit = max(1, min(max_results if max_results > 0 else DEFAULT_MAX, cap))
        digest = _digest(jql_text or "")
        after = None
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode() + b"==").decode())
                if state["h"] != digest:
                    raise ValueError("token belongs to another query")
                after = _untuple(state["a"])
            except (ValueError, KeyError, TypeError):
                return errors(400, "The provided next page token is invalid or expired.")
        expands = {e.strip() for e in expand.split(",") if e.strip()}
        with d.lock:
            rows = self._candidates(q)
            import bisect

            pos = 0 if after is None else bisect.bisect_right(rows, after)
            picked: list[tuple[Any, ...]] = []
            more = False
            for row in rows[pos:]:
                idx = row[-1]
                if idx in d.deleted:
                    continue
                if not J.matches(
                    q,
                    d.key(idx),
                    d.project(idx),
                    d.type_name(idx),
                    d.updated[idx],
                    labels=partial(self._labels, idx),
                ):
                    continue
                if len(picked) == limit:
                    more = True
                    break
                picked.append(row)
        issues = [self._render(row[-1], fields, expands, v2) for row in picked]
        body: dict[str, Any] = {"issues": issues, "isLast": not more}
        if more:
            state = {"h": digest, "a": _jsonable(picked[-1])}
            body["nextPageToken"] = (
                base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")
            )
        if "names" in expands or "schema" in expands:
            chosen = self._chosen(fields)
            meta: dict[str, tuple[str, dict[str, Any]]] = {
                f[0]: (f[1], {"type": f[2], "system": f[0]}) for f in SYSTEM_FIELDS
            }
            for name, stype, custom, items in CUSTOM_FIELDS:
                fid = d.field_ids[name]
                meta[fid] = (
                    name,
                    {
                        "type": stype,
                        "custom": custom,
                        "customId": int(fid.split("_")[1]),
                        **({"items": items} if items else {}),
                    },
                )
            keep = [f for f in meta if chosen is None or f in chosen]
            if "names" in expands:
                body["names"] = {f: meta[f][0] for f in keep}
            if "schema" in expands:
                body["schema"] = {f: meta[f][1] for f in keep}
        return json_response(200, body)

    def _candidates(self, q: J.Jql) -> list[tuple[Any, ...]]:
        d = self.data
        if q.keys is not None:
            idxs = [i for i in (d.index_of(k) for k in q.keys) if i is not None]
            return sorted(d._order_tuple(i, q.order) for i in idxs)
        return d.ordered(q.order)

    def _chosen(self, fields: list[str]) -> set[str] | None:
        """Field ids to return; None = all."""
        if any(f in ("*all", "*navigable") for f in fields):
            excluded = {f[1:] for f in fields if f.startswith("-")}
            return None if not excluded else {f for f in self._all_ids() if f not in excluded}
        return {f for f in fields if f not in ("id", "key") and not f.startswith("-")}

    def _all_ids(self) -> set[str]:
        return {f[0] for f in SYSTEM_FIELDS} | set(self.data.field_ids.values())

    def issue_types(self, req: Request, v2: bool) -> Response:
        return json_response(200, self.data.issue_types())

    def _render(self, idx: int, fields: list[str], expands: set[str], v2: bool) -> dict[str, Any]:
        d = self.data
        chosen = self._chosen(fields)
        if chosen is not None and not chosen:
            return {
                "expand": "",
                "id": d.issue_id(idx),
                "self": f"{d.ds.base_url}/rest/api/{2 if v2 else 3}/issue/{d.issue_id(idx)}",
                "key": d.key(idx),
            }
        issue = d.issue(idx, v2=v2)
        if chosen is not None:
            issue["fields"] = {k: v for k, v in issue["fields"].items() if k in chosen}
        page = issue["fields"].get("comment")
        if (
            d.real_shapes
            and isinstance(page, dict)
            and len(page["comments"]) > SEARCH_COMMENT_LIMIT
        ):
            # a search gives the first comments only; ``total`` tells the list is longer
            page["comments"] = page["comments"][:SEARCH_COMMENT_LIMIT]
            page["maxResults"] = SEARCH_COMMENT_LIMIT
        if "transitions" in expands:
            issue["transitions"] = d.transitions(idx)
        if "changelog" in expands:
            histories = d.changelog(idx)
            issue["changelog"] = {
                "startAt": 0,
                "maxResults": min(len(histories), EMBEDDED_CHANGELOG),
                "total": len(histories),
                "histories": histories[:EMBEDDED_CHANGELOG],
            }
        return issue

    # -- changelog ---------------------------------------------------------------------
    def bulkfetch(self, req: Request, v2: bool) -> Response:
        body = req.json() or {}
        ids = body.get("issueIdsOrKeys") or []
        if not ids:
            return errors(400, "issueIdsOrKeys must not be empty.")
        if len(ids) > 1000:
            return errors(400, "The number of issueIdsOrKeys must be at most 1000.")
        field_ids = set(body.get("fieldIds") or [])
        max_results = max(1, min(int(body.get("maxResults") or 1000), 10000))
        start = 0
        if body.get("nextPageToken"):
            try:
                start = int(
                    base64.urlsafe_b64decode(str(body["nextPageToken"]).encode() + b"==").decode()
                )
            except ValueError:
                return errors(400, "The provided next page token is invalid or expired.")
        d = self.data
        logs: list[dict[str, Any]] = []
        seen = 0
        emitted = 0
        next_token = None
        for ref in ids:
            idx = d.index_of(str(ref))
            if idx is None:
                continue
            histories = []
            for h in d.changelog(idx):
                if field_ids:
                    items = [
                        it
                        for it in h["items"]
                        if it.get("fieldId") in field_ids or it.get("field") in field_ids
                    ]
                    if not items:
                        continue
                    h = {**h, "items": items}
                histories.append(h)
            take = []
            for h in histories:
                if seen >= start:
                    if emitted == max_results:
                        next_token = (
                            base64.urlsafe_b64encode(str(seen).encode()).decode().rstrip("=")
                        )
                        break
                    take.append(h)
                    emitted += 1
                seen += 1
            if take:
                logs.append({"issueId": d.issue_id(idx), "changeHistories": take})
            if next_token:
                break
        out: dict[str, Any] = {"issueChangeLogs": logs}
        if next_token:
            out["nextPageToken"] = next_token
        return json_response(200, out)

    def issue_changelog(self, req: Request, v2: bool, key: str) -> Response:
        idx = self._issue(key)
        if idx is None:
            return self._missing()
        start = int(req.param("startAt", "0") or 0)
        limit = min(int(req.param("maxResults", "100") or 100), 100)
        histories = self.data.changelog(idx)
        page = histories[start : start + limit]
        return json_response(
            200,
            {
                "self": f"{self.data.ds.base_url}{req.target}",
                "maxResults": limit,
                "startAt": start,
                "total": len(histories),
                "isLast": start + len(page) >= len(histories),
                "values": page,
            },
        )

    # -- single issue, writes ------------------------------------------------------------
    def _issue(self, key: str) -> int | None:
        return self.data.index_of(key)

    def _missing(self) -> Response:
        return errors(404, "Issue does not exist or you do not have permission to see it.")

    def get_issue(self, req: Request, v2: bool, key: str) -> Response:
        idx = self._issue(key)
        if idx is None:
            return self._missing()
        fields = [f for v in req.query.get("fields", []) for f in v.split(",")] or ["*all"]
        expands = {e for e in (req.param("expand", "") or "").split(",") if e}
        return json_response(200, self._render(idx, fields, expands, v2))

    def edit_issue(self, req: Request, v2: bool, key: str) -> Response:
        idx = self._issue(key)
        if idx is None:
            return self._missing()
        body = req.json() or {}
        d = self.data
        labels = list(d.issue(idx)["fields"].get("labels") or [])
        changed = False
        for op in (body.get("update") or {}).get("labels", []):
            if "add" in op and op["add"] not in labels:
                labels.append(str(op["add"]))
                changed = True
            if "remove" in op and op["remove"] in labels:
                labels.remove(op["remove"])
                changed = True
            if "set" in op:
                labels = list(op["set"])
                changed = True
        values = dict(body.get("fields") or {})
        if "labels" in values:
            labels = list(values.pop("labels") or [])
            changed = True
        spaced = next((str(x) for x in labels if " " in str(x)), None)
        if changed and spaced is not None:  # as Jira Cloud: a label is one word
            return errors(400, labels=f"The label '{spaced}' contains spaces which is invalid.")
        bad = [name for name in values if name not in d.field_ids.values() and name != "summary"]
        if bad:
            return errors(
                400,
                **dict.fromkeys(
                    bad, "Field cannot be set. It is not on the appropriate screen, or unknown."
                ),
            )
        if changed:
            values["labels"] = labels
        if values:
            d.set_fields(idx, values)
        return Response(204)

    def list_comments(self, req: Request, v2: bool, key: str) -> Response:
        idx = self._issue(key)
        if idx is None:
            return self._missing()
        comments = self.data.comment_list(idx, v2=v2)
        if (req.param("orderBy", "") or "").strip() == "-created":
            comments = comments[::-1]  # newest first, as Jira's orderBy=-created gives them
        start = int(req.param("startAt", "0") or 0)
        limit = min(int(req.param("maxResults", "5000") or 5000), 5000)
        page = comments[start : start + limit]
        return json_response(
            200, {"startAt": start, "maxResults": limit, "total": len(comments), "comments": page}
        )

    def add_comment(self, req: Request, v2: bool, key: str) -> Response:
        idx = self._issue(key)
        if idx is None:
            return self._missing()
        body = req.json() or {}
        if not v2 and not _is_doc(body.get("body")):
            return errors(400, NOT_ADF)
        text = adf_text(body.get("body"))
        if not text.strip():
            return errors(400, body="Comment body can not be empty!")
        cid = self.data.add_comment(idx, text)
        return json_response(201, self._one_comment(idx, cid, v2))

    def edit_comment(self, req: Request, v2: bool, key: str, cid: str) -> Response:
        idx = self._issue(key)
        if idx is None:
            return self._missing()
        body = (req.json() or {}).get("body")
        if not v2 and not _is_doc(body):
            return errors(400, NOT_ADF)
        text = adf_text(body)
        if not self.data.update_comment(idx, int(cid), text):
            return errors(404, f"Can not find a comment for the id: {cid}.")
        return json_response(200, self._one_comment(idx, int(cid), v2))

    def _one_comment(self, idx: int, cid: int, v2: bool) -> dict[str, Any]:
        return next(c for c in self.data.comment_list(idx, v2=v2) if c["id"] == str(cid))

    def approvals(self, req: Request, v2: bool, key: str) -> Response:
        idx = self._issue(key)
        if idx is None:
            return json_response(
                404,
                {
                    "errorMessage": "The request could not be found.",
                    "i18nErrorMessage": {"i18nKey": "sd.request.error.not.found", "parameters": []},
                },
            )
        values = self.data.approvals(idx)
        start = int(req.param("start", "0") or 0)
        limit = int(req.param("limit", "50") or 50)
        page = values[start : start + limit]
        base = f"{self.data.ds.base_url}/rest/servicedeskapi"
        return json_response(
            200,
            {
                "_expands": [],
                "size": len(page),
                "start": start,
                "limit": limit,
                "isLastPage": start + len(page) >= len(values),
                "_links": {"base": base, "context": "", "self": f"{base}/request/{key}/approval"},
                "values": page,
            },
        )


NOT_ADF = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"


def _is_doc(value: Any) -> bool:
    """REST v3 takes rich text only as an ADF document; v2 takes a plain string."""
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and isinstance(value.get("content"), list)
    )


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _jsonable(row: tuple[Any, ...]) -> list[Any]:
    return [list(v) if isinstance(v, tuple) else v for v in row]


def _untuple(values: list[Any]) -> tuple[Any, ...]:
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)
