"""How the store writes its JSON columns: compact text, and pre-encoded text as is.

SQLAlchemy's JSON type encodes every bound value with the engine's ``json_serializer``
(``json.dumps`` by default). A record's normalised data is encoded faster by pydantic
(``model_dump_json``, in Rust) than by dumping it to a dict and that dict to text, so the
repository hands such text over wrapped in :class:`EncodedJSON`, and :func:`serialize`
(the engine's serializer) passes it through. Everything else is encoded compactly (no
spaces after separators; about half the time of ``json.dumps``'s default for the raw
source JSON stored with each record). ``ensure_ascii`` stays on: a lone UTF-16 surrogate
in a source value is written as an escape, which every database accepts.
"""

from __future__ import annotations

import json
from typing import Any

_encode = json.JSONEncoder(separators=(",", ":")).encode


class EncodedJSON(str):
    """JSON text that is already encoded: :func:`serialize` binds it unchanged."""

    __slots__ = ()


def serialize(value: Any) -> str:
    """The engine's ``json_serializer``."""
    if isinstance(value, EncodedJSON):
        return str.__str__(value)
    return _encode(value)
