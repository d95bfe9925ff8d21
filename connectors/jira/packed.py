"""Review issues held between streams, packed: compact bytes instead of dict trees.

A planned run searches the review issues once for the incident and the change stream
(:mod:`.issues`) and holds them until the second stream has read. Held as parsed JSON
(nested dicts and strings) they cost about ten times their text, and their number grows
with the site: at 100,000 records about 35 MB stayed resident for the whole Jira read.
Each issue is kept packed (:mod:`ticketlint.packing`) beside its search order instead, and
unpacked only when a stream hands it on (one at a time, in order). Pickle keeps the
values exactly as read (the same types a fresh search returns to the mapper).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from ticketlint.packing import unpack

Issue = dict[str, Any]
Order = tuple[datetime, str, int]
"""An issue's place in the search's ``ORDER BY updated ASC, key ASC``."""


class PackedReviews(Sequence[Issue]):
    """Review issues in search order, unpacked on access; :attr:`orders` needs none."""

    def __init__(self, entries: list[tuple[Order, bytes]]) -> None:
        self.orders: list[Order] = [order for order, _ in entries]
        self._blobs = [blob for _, blob in entries]

    def __len__(self) -> int:
        return len(self._blobs)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [unpack(blob) for blob in self._blobs[index]]
        return unpack(self._blobs[index])

    def __iter__(self) -> Iterator[Issue]:
        return (unpack(blob) for blob in self._blobs)
