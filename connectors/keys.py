"""Ticket keys a user gives (``check --key``): checked against the source's key pattern
before any query is built, and encoded-query values escaped.

A key is an identifier, never query text: ``INC0010012^NQactive=true`` is refused, not
passed on as an ``^NQ`` OR'ed query that reads every active record.

- Jira: ``PROJ-123`` (project key, hyphen, number) or a numeric issue id;
- ServiceNow: a record number (``INC0010012``, ``CHG0030001``, ``RITM0000042``: letters
  then digits) or a 32-digit hexadecimal ``sys_id``. Configuration items are named by
  ``name``, free text: a CI name may not hold the encoded-query separators ``^`` and
  ``,`` (an ``IN`` list cannot escape them), nor control characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

JIRA_KEY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]{0,254}-[0-9]{1,18}|[0-9]{1,18})$")
SERVICENOW_NUMBER = re.compile(r"^[A-Za-z][A-Za-z_]{0,19}[0-9]{1,20}$")
SYS_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_CI_NAME_FORBIDDEN = re.compile(r"[\^,\x00-\x1f\x7f]")
MAX_KEY_LENGTH = 255


class KeyError_(ValueError):
    """A key that is not a key of the source (the CLI reports it as a usage error)."""


def invalid_key(source_type: str, key: str, *, process: str | None = None) -> str | None:
    """Why ``key`` is not a key of a ``source_type`` source, or None when it is one."""
    text = key.strip()
    if not text or len(text) > MAX_KEY_LENGTH:
        return f"{key!r} is empty or longer than {MAX_KEY_LENGTH} characters"
    if source_type == "jira":
        if JIRA_KEY.match(text):
            return None
        return f"{key!r} is not a Jira issue key (PROJ-123) or issue id"
    if source_type == "servicenow":
        if process == "ci":
            return (
                None
                if not _CI_NAME_FORBIDDEN.search(text)
                else f"{key!r}: a configuration item name may not hold ^ , or control characters"
            )
        if SERVICENOW_NUMBER.match(text) or SYS_ID.match(text):
            return None
        return (
            f"{key!r} is not a ServiceNow record number (INC0010012) or sys_id "
            "(32 hexadecimal digits); encoded-query operators are not keys"
        )
    return None


def validate_keys(source_type: str, keys: Sequence[str]) -> list[str]:
    """The keys, stripped, when every one is a key of the source; else :class:`KeyError_`
    naming each bad one."""
    problems = [why for k in keys if (why := invalid_key(source_type, k)) is not None]
    if problems:
        raise KeyError_("; ".join(problems))
    return [k.strip() for k in keys]


def encoded_query_value(value: str) -> str:
    """A value for a ServiceNow encoded query condition: ``^`` is the condition separator
    and is escaped by doubling it (``^^``); line breaks and NUL are dropped."""
    return re.sub(r"[\x00\r\n]", "", value).replace("^", "^^")
