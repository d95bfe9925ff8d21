"""JSON parsing with limits: nesting depth, integer size, text size.

``json.loads`` raises ``RecursionError`` on a 100,000-deep array and ``ValueError`` past
4,300 integer digits; neither is an ordinary "not JSON" error, and a ``RecursionError``
reaching a web handler is a 500 with a traceback. Here:

- :func:`loads` refuses a document nested deeper than ``max_depth`` or longer than
  ``max_bytes`` with :class:`JSONLimitError` (a ``ValueError``) before parsing it, and
  reads an integer of more than ``max_int_digits`` digits as ``None`` (unknown) instead
  of failing the document; the caller learns how many through ``limits``;
- both replace a lone UTF-16 surrogate (``"\\udc80"``: valid JSON that no UTF-8
  writer, database or chat API accepts) by U+FFFD (:func:`lone_surrogates_fixed`);
- :func:`loads_salvaging` (exported files) parses what it can: a value nested too deep
  is replaced by ``null`` and counted, so one bad value costs that value, not the file.

The depth scan is one regular-expression pass over strings and brackets; it runs only
where the stakes need it (webhook bodies are bounded by ``serve.max_body_bytes``; files
are scanned only after ``json.loads`` failed on them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pydantic_core

MAX_DEPTH = 64
"""Deeper than any Jira or ServiceNow payload (ADF documents nest about 10 levels)."""
MAX_INT_DIGITS = 4300
"""Python's own limit (``sys.get_int_max_str_digits()``), which pydantic-core's reader
keeps too; no identifier or count has more."""

_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogates_fixed(value: Any, raw: str | bytes) -> Any:
    """``value`` parsed from ``raw`` with every lone UTF-16 surrogate (``"\\udc80"`` in
    the JSON: valid JSON, but no UTF-8 encoder, database or chat API accepts it) replaced
    by U+FFFD. The walk happens only when ``raw`` holds a surrogate escape at all."""
    return fix_lone_surrogates(value) if has_surrogate_escape(raw) else value


def has_surrogate_escape(raw: str | bytes) -> bool:
    """Whether ``raw`` holds a ``\\u`` escape of a UTF-16 surrogate (paired or not)."""
    if isinstance(raw, str):
        # Searched in the text itself (no encoded copy of a large file), after a search
        # for any backslash at all (memchr speed).
        return "\\" in raw and _SURROGATE_ESCAPE_TEXT.search(raw) is not None
    return _SURROGATE_ESCAPE.search(raw) is not None


def fix_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings and keys replaced by U+FFFD."""
    return _fix(value)


def _fix(value: Any) -> Any:
    if isinstance(value, str):
        if _LONE_SURROGATE.search(value):
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_fix(k): _fix(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix(v) for v in value]
    return value


class JSONLimitError(ValueError):
    """The document is nested too deep or too large to read."""


@dataclass
class Limits:
    """What parsing had to give up on (counted, so the caller can report it)."""

    big_integers: int = 0
    deep_values: int = 0


def max_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (strings skipped)."""
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        token = m.group(0)
        if token in ("[", "{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def int_parser(limits: Limits, max_int_digits: int = MAX_INT_DIGITS) -> Any:
    """A ``parse_int`` for ``json`` that reads an integer of more than ``max_int_digits``
    digits as None, counted in ``limits.big_integers``."""
    return _int_parser(limits, max_int_digits)


def _int_parser(limits: Limits, max_int_digits: int) -> Any:
    def parse_int(text: str) -> int | None:
        if len(text.lstrip("-")) > max_int_digits:
            limits.big_integers += 1
            return None
        return int(text)

    return parse_int


def loads(
    text: str | bytes,
    *,
    depth: int = MAX_DEPTH,
    max_bytes: int | None = None,
    max_int_digits: int = MAX_INT_DIGITS,
    limits: Limits | None = None,
) -> Any:
    """``json.loads`` within the limits (see the module docstring)."""
    if max_bytes is not None and len(text) > max_bytes:
        raise JSONLimitError(f"document larger than {max_bytes} bytes")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if max_depth(text) > depth:
        raise JSONLimitError(f"nested deeper than {depth} levels")
    limits = limits if limits is not None else Limits()
    try:
        value = json.loads(text, parse_int=_int_parser(limits, max_int_digits))
    except RecursionError:  # pragma: no cover - the depth scan comes first
        raise JSONLimitError(f"nested deeper than {depth} levels") from None
    return lone_surrogates_fixed(value, text)


def loads_salvaging(
    text: str,
    *,
    depth: int = MAX_DEPTH,
    max_int_digits: int = MAX_INT_DIGITS,
    limits: Limits | None = None,
) -> Any:
    """Parse ``text``; a value nested deeper than ``depth`` becomes ``null`` (counted in
    ``limits.deep_values``) and an oversized integer ``None`` (``limits.big_integers``).
    Raises ``json.JSONDecodeError`` for text that is not JSON at all.

    pydantic-core's reader (``from_json``, in Rust) reads an export a third faster than
    ``json`` and gives the same values for any JSON text it accepts (a differential test
    holds it to that); it refuses, with ``ValueError``, exactly what needs the reader
    below: lone surrogate escapes, nesting past ~200 levels, integers of more than
    4,300 digits, and text that is not JSON (whose error ``json`` words)."""
    limits = limits if limits is not None else Limits()
    if max_int_digits >= MAX_INT_DIGITS:  # (values are cut at ``depth`` only past json's limit)
        try:
            return pydantic_core.from_json(text)
        except ValueError:
            pass  # read below, which salvages or says why
    parse_int = _int_parser(limits, max_int_digits)
    try:
        value = json.loads(text, parse_int=parse_int)
    except RecursionError:
        value = json.loads(_cut_deep(text, depth, limits), parse_int=parse_int)
    return lone_surrogates_fixed(value, text)


def loads_body(content: bytes) -> Any:
    """A response body's JSON, as ``json.loads(content)`` with lone surrogates fixed
    (:func:`lone_surrogates_fixed`) reads it, through pydantic-core's reader where it
    agrees (see :func:`loads_salvaging`): a page is parsed about a third faster. Raises
    ``ValueError`` (or ``RecursionError``) where ``json.loads`` does."""
    try:
        return pydantic_core.from_json(content)
    except ValueError:
        pass  # json's answer: another encoding, a BOM, a lone surrogate, or not JSON
    return lone_surrogates_fixed(json.loads(content), content)


def _cut_deep(text: str, depth: int, limits: Limits) -> str:
    """``text`` with every array or object that opens deeper than ``depth`` replaced by
    ``null`` (a bracket inside a string is not a bracket)."""
    out: list[str] = []
    level = 0
    cut_from: int | None = None
    last = 0
    for m in _TOKENS.finditer(text):
        token = m.group(0)
        if token in ("[", "{"):
            level += 1
            if level == depth + 1 and cut_from is None:
                out.append(text[last : m.start()])
                cut_from = m.start()
        elif token in ("]", "}"):
            if level == depth + 1 and cut_from is not None:
                out.append("null")
                limits.deep_values += 1
                cut_from = None
                last = m.end()
            level -= 1
    if cut_from is not None:  # unbalanced: keep the rest so json reports where
        out.append(text[cut_from:])
    else:
        out.append(text[last:])
    return "".join(out)
