"""Values held packed: pickled and zlib-compressed bytes instead of object trees.

Long runs hold some of their own values until later (review issues between two Jira
streams, a full sync read's findings until the read ends). As Python objects (nested
dicts, strings, dataclasses) they cost several times their text; packed, mostly the
text, compressed. Pickle keeps the values exactly, types included. Only for bytes this
process made itself: never unpack bytes read from outside.
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any


def pack(value: Any) -> bytes:
    """``value`` as compressed bytes (fast level: the saving is mostly the objects)."""
    return zlib.compress(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), 1)


def unpack(blob: bytes) -> Any:
    """The value :func:`pack` packed, a fresh copy each call."""
    return pickle.loads(zlib.decompress(blob))  # our own bytes, never read from outside
