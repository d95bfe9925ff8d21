"""How the store writes its JSON columns: compact UTF-8 text, and pre-encoded text as is.

SQLAlchemy's JSON type encodes every bound value with the engine's ``json_serializer``
(``json.dumps`` by default). A record's normalised data is encoded faster by pydantic
(``model_dump_json``, in Rust) than by dumping it to a dict and that dict to text, so the
repository hands such text over wrapped in :class:`EncodedJSON`, and :func:`serialize`
(the engine's serializer) passes it through.

Everything else (above all the source JSON stored with each record, several KB per Jira
issue) is encoded compactly by ``pydantic_core.to_json`` (Rust; the C encoder of
``json`` took ~13% of a first sync's CPU). The text is JSON of the same value as
``json.dumps(value, separators=(",", ":"), ensure_ascii=False)``, and the same text but
for the spelling of some floats (``1e-7``, ``0.00001``). Non-ASCII characters are
written as themselves, not as ``\\u`` escapes, as ``model_dump_json`` writes the data
column beside it: the database holds that text in any case, and escaping cost the
encoder 1.5x the time (a 20,000-record first sync: 0.33 s -> 0.23 s of the one writer
thread). What it cannot encode (a lone UTF-16 surrogate from a source value, which has no
UTF-8 form, or an object of no type pydantic knows) goes to ``json``'s encoder, which
escapes the surrogate (every database accepts the escape) or raises as before. Only
values of JSON's own types are handed to it; one nested inside that pydantic knows and
``json`` does not (a datetime, a Decimal) is written as pydantic writes it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

_encode = json.JSONEncoder(separators=(",", ":")).encode
_JSON_TYPES = (dict, list, str, int, float, bool, type(None))


class EncodedJSON(str):
    """JSON text that is already encoded: :func:`serialize` binds it unchanged."""

    __slots__ = ()


def serialize(value: Any) -> str:
    """The engine's ``json_serializer``."""
    if isinstance(value, EncodedJSON):
        return str.__str__(value)
    if type(value) in _JSON_TYPES:
        try:
            # serialize_unknown stays off: a value of no JSON type raises (then json's
            # encoder decides), never becomes its str().
            return to_json(value).decode("utf-8")
        except (PydanticSerializationError, ValueError, TypeError):
            pass  # a lone surrogate or an exotic value inside: the reference encoder
    return _encode(value)
