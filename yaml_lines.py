"""Where a key sits in a YAML file: ``file:line key.path`` for error messages.

Configuration, waiver and declarative-rule errors name the file, the line and the key
path the user wrote (``ticketlint.yaml:14 rules.params.INC06: ...``), and suggest the
nearest known name (:func:`did_you_mean`, difflib).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

Key = str | int


def line_of(text: str, keys: Sequence[Key]) -> int | None:
    """The 1-based line of the node at ``keys`` (mapping keys and list indexes), or of
    its nearest existing ancestor; None when the text is not YAML."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            match = next(
                ((k, v) for k, v in node.value if str(getattr(k, "value", None)) == str(key)),
                None,
            )
            if match is None:
                return line
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                return line
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def key_path(keys: Sequence[Key]) -> str:
    """``('rules', 'select', 2)`` -> ``rules.select[2]``."""
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def locate(path: Path | str | None, keys: Sequence[Key], text: str | None = None) -> str:
    """``file:line key.path`` (``key.path`` alone when there is no file)."""
    where = key_path(keys)
    if path is None:
        return where
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError:
            return f"{path}: {where}"
    line = line_of(text, keys)
    return f"{path}:{line} {where}" if line else f"{path}: {where}"


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """`` (did you mean 'CHG005'?)`` for the nearest known names, or ``""``."""
    candidates = sorted(set(known))
    close = difflib.get_close_matches(word, candidates, n=3, cutoff=0.6)
    if not close:
        upper = {c.upper(): c for c in candidates}
        close = [upper[c] for c in difflib.get_close_matches(word.upper(), list(upper), n=3)]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
