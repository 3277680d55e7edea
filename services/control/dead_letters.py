"""Dead letters: each listed with why it was set aside and whether this version can read it now;
discarded (let go) or applied (once an upcaster makes it readable), each as an event in the log."""

from __future__ import annotations

import asyncio

import msgspec

from ..kernel import subjects
from ..kernel.bus import Bus
from ..kernel.events import DeadLetterApplied, DeadLetterDiscarded, PoisonEvent
from ..kernel.messages import Conflict, Expect
from ..projector.queries import ReadModel
from ..projector.views import DeadLetter
from .refused import Refused, caught_up


class Listed(DeadLetter, kw_only=True):
    readable: bool  # this version reads it now: it can be applied


async def listed(bus: Bus, read: ReadModel, limit: int) -> list[Listed]:
    letters = await read.dead_letters(limit)
    readable = await asyncio.gather(*(_readable(bus, letter.seq) for letter in letters))
    return [Listed(**msgspec.structs.asdict(letter), readable=ok) for letter, ok in zip(letters, readable)]


async def _readable(bus: Bus, seq: int) -> bool:
    stored = await bus.stored(seq)
    if stored is None:
        return False
    try:
        bus.codec.decode(stored.data)
    except PoisonEvent:
        return False
    return True


async def discard(bus: Bus, read: ReadModel, seq: int) -> int:
    """Let a dead letter go: stored as dead_letter.discarded; the sequence of that event."""
    await _listed(bus, read, seq)
    return await _handle(bus, DeadLetterDiscarded(seq=seq, source="user"))


async def apply(bus: Bus, read: ReadModel, seq: int) -> int:
    """Have a dead letter that this version reads applied now, at this point of the log."""
    await _listed(bus, read, seq)
    stored = await bus.stored(seq)
    if stored is None:
        raise Refused(409, f"the message at sequence {seq} is no longer in the log")
    try:
        bus.codec.decode(stored.data)
    except PoisonEvent as exc:
        raise Refused(409, f"the message at sequence {seq} is still unreadable: {exc}") from None
    return await _handle(bus, DeadLetterApplied(seq=seq, source="user"))


async def _listed(bus: Bus, read: ReadModel, seq: int) -> None:
    await caught_up(bus, read)
    if await read.dead_letter(seq) is None:
        raise Refused(404, f"no dead letter at sequence {seq}")


async def _handle(bus: Bus, event: DeadLetterDiscarded | DeadLetterApplied) -> int:
    """Stored only after the dead letter's newest event seen here: two operators at once handle it once."""
    events = subjects.dead_letter_events(event.seq)
    newest = await bus.last_on(events)
    try:
        return await bus.publish(event, expect=Expect(events, newest.seq if newest else 0))
    except Conflict:
        raise Refused(409, f"the dead letter at sequence {event.seq} was handled meanwhile") from None
