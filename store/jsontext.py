"""How the store writes its JSON columns: compact ASCII text, and pre-encoded text as is.

SQLAlchemy's JSON type encodes every bound value with the engine's ``json_serializer``
(``json.dumps`` by default). A record's normalised data is encoded faster by pydantic
(``model_dump_json``, in Rust) than by dumping it to a dict and that dict to text, so the
repository hands such text over wrapped in :class:`EncodedJSON`, and :func:`serialize`
(the engine's serializer) passes it through.

Everything else (above all the source JSON stored with each record, several KB per Jira
issue) is encoded compactly by ``pydantic_core.to_json`` (Rust; ~1.7x the speed of the
C encoder of ``json``, which a first sync spent ~13% of its CPU in). ``ensure_ascii``
stays on: the text is ASCII JSON of the same value as ``json.dumps(value,
separators=(",", ":"))``, and the same text but for the spelling of some floats
(``1e-7``, ``0.00001``) and a raw U+007F. What it cannot encode (a lone UTF-16 surrogate
from a source value, an object of no type pydantic knows) goes to ``json``'s encoder,
which escapes the surrogate (every database accepts the escape) or raises as before.
Only values of JSON's own types are handed to it; one nested inside that pydantic knows
and ``json`` does not (a datetime, a Decimal) is written as pydantic writes it.
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
            return to_json(value, ensure_ascii=True).decode("ascii")
        except (PydanticSerializationError, ValueError, TypeError):
            pass  # a lone surrogate or an exotic value inside: the reference encoder
    return _encode(value)
