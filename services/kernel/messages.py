"""What goes into the log and comes back out of it: plain values, no NATS (the pure decisions use them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from .clock import iso


class Conflict(Exception):
    """An expected-last-sequence check failed: someone else wrote to that aggregate first."""


@dataclass(frozen=True)
class Expect:
    """Optimistic concurrency: the last stream sequence stored on `subject` (wildcards allowed)."""

    subject: str
    last_seq: int


@dataclass
class Outgoing:
    """A message to store: its subject and bytes, deduplicated by `msg_id`, guarded by `expect`."""

    subject: str
    data: bytes
    msg_id: str | None = None
    expect: Expect | None = None

    def headers(self) -> dict[str, str] | None:
        headers: dict[str, str] = {}
        if self.msg_id:
            headers["Nats-Msg-Id"] = self.msg_id
        if self.expect is not None:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(self.expect.last_seq)
            headers["Nats-Expected-Last-Subject-Sequence-Subject"] = self.expect.subject
        return headers or None


class Accepted(NamedTuple):
    """JetStream stored a message: its sequence, or the earlier one's when the message id was a duplicate."""

    seq: int
    duplicate: bool


class Stored(msgspec.Struct, array_like=True, gc=False):
    """A message read back from the log; `at` is when the stream stored it (RFC 3339, ms). A Struct
    read from an array, so a rebuild decodes the reader's frames straight into it (no cycles: gc=False)."""

    seq: int
    subject: str
    data: bytes
    _at: str | int = ""  # or the stream's nanosecond timestamp, formatted when asked for

    @property
    def at(self) -> str:
        if isinstance(self._at, int):
            self._at = iso(datetime.fromtimestamp(self._at / 1_000_000_000.0, UTC))
        return self._at

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Stored):
            return NotImplemented
        return (self.seq, self.subject, self.data, self.at) == (other.seq, other.subject, other.data, other.at)

    def __repr__(self) -> str:
        return f"Stored(seq={self.seq}, subject={self.subject!r}, data={self.data!r}, at={self.at!r})"
