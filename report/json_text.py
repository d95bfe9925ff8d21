"""``json.dumps(value, indent=2, ensure_ascii=False)``, the same bytes, about three times
as fast.

The standard library encodes with its C accelerator only without ``indent``; with it,
every value goes through a chain of Python generators, which made rendering the
findings of a large ``check -f json`` cost half as much as parsing its input. This
writer appends to one list with a direct recursion and the C string encoder. It accepts
what ``json.dumps`` accepts for plain data (dicts, lists, tuples, str, int, float,
bool, None; keys str, int, float, bool or None) and hands anything else (and circular
data) to ``json.dumps`` itself, so errors are the standard library's too.
"""

from __future__ import annotations

import json
from itertools import islice, takewhile
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

__all__ = ["dumps_indent2"]

_INDENT = "  "


class _Unsupported(Exception):
    """A value outside plain JSON data: ``json.dumps`` decides what happens to it."""


def dumps_indent2(value: Any) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``."""
    parts: list[str] = []
    try:
        _encode(value, parts.append, "\n", 0)
    except (_Unsupported, RecursionError):
        return json.dumps(value, indent=2, ensure_ascii=False)
    return "".join(parts)


_MAX_DEPTH = 200
"""Deeper than this is handed to ``json.dumps`` (circular data included)."""


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == float("inf"):
        return "Infinity"
    if value == -float("inf"):
        return "-Infinity"
    return float.__repr__(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return encode_basestring(key)
    if isinstance(key, float):
        return encode_basestring(_float(key))
    if key is True:
        return '"true"'
    if key is False:
        return '"false"'
    if key is None:
        return '"null"'
    if isinstance(key, int):
        return encode_basestring(int.__repr__(key))
    raise _Unsupported


_KEYS: dict[str, str] = {}
"""Encoded ``"key": `` of string keys seen (a report repeats a few dozen keys)."""


def _scalar(value: Any) -> str | None:
    """The JSON of a str, None, bool, int or float; None for a container or other."""
    cls = value.__class__
    if cls is str:
        return encode_basestring(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    return None


_FLAT = (
    frozenset({str, int, float, bool, type(None)}) if c_make_encoder is not None else frozenset()
)
"""Value classes the C encoder writes exactly as :func:`_scalar` does."""
_FLAT_ENCODERS: dict[str, Any] = {}
_STR = {str}


def _flat(inner: str) -> Any:
    """The C encoder of a dict or list of flat values one per line, ``inner`` between:
    ``"".join(encoder(value, 0))`` is its JSON."""
    encoder = _FLAT_ENCODERS.get(inner)
    if encoder is None:
        encoder = c_make_encoder(
            None, _no_default, encode_basestring, None, ": ", "," + inner, False, False, True
        )
        _FLAT_ENCODERS[inner] = encoder
    return encoder


def _no_default(value: Any) -> Any:
    raise _Unsupported


def _encode(value: Any, put: Any, newline: str, depth: int) -> None:
    cls = value.__class__
    if cls is not dict and cls is not list:
        text = _scalar(value)
        if text is not None:
            put(text)
            return
    if depth > _MAX_DEPTH:
        raise _Unsupported
    inner = newline + _INDENT
    if cls is list or isinstance(value, (list, tuple)):
        if not value:
            put("[]")
            return
        if set(map(type, value)) <= _FLAT:
            put("[" + inner + "".join(_flat(inner)(value, 0))[1:-1] + newline + "]")
            return
        separator = "," + inner
        lead = "[" + inner
        for item in value:
            text = _scalar(item)
            if text is None:
                put(lead)
                _encode(item, put, inner, depth + 1)
            else:
                put(lead + text)
            lead = separator
        put(newline + "]")
    elif isinstance(value, dict):
        if not value:
            put("{}")
            return
        # The leading items that the C encoder writes in one go (C-level scans: a
        # report is mostly dicts of flat values).
        flat = (
            len(list(takewhile(_FLAT.__contains__, map(type, value.values()))))
            if set(map(type, value)) == _STR
            else 0
        )
        lead = "{" + inner
        rest: Any = value.items()
        if flat:
            whole = flat == len(value)
            head = value if whole else dict(islice(value.items(), flat))
            put(lead + "".join(_flat(inner)(head, 0))[1:-1])
            lead = "," + inner
            if whole:
                put(newline + "}")
                return
            rest = islice(value.items(), flat, None)
        keys = _KEYS
        for key, item in rest:
            encoded = keys.get(key) if key.__class__ is str else None
            if encoded is None:
                encoded = _key(key) + ": "
                if key.__class__ is str and len(keys) < 10_000:
                    keys[key] = encoded
            cls = item.__class__
            text = None if cls is dict or cls is list else _scalar(item)
            if text is None:
                put(lead + encoded)
                _encode(item, put, inner, depth + 1)
            else:
                put(lead + encoded + text)
            lead = "," + inner
        put(newline + "}")
    else:
        raise _Unsupported
