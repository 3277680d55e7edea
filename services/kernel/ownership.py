"""Handing a basename to another project: a photo move takes its basename with it, through the same
`basename.claimed` subject an upload claims it on (services/api/claims.py), guarded the same way."""

from __future__ import annotations

from .bus import Bus
from .events import BasenameClaimed, PoisonEvent
from .messages import Conflict, Expect
from .subjects import subject_for

ATTEMPTS = 4


class Contested(Exception):
    """Other claims on the basename kept coming while it was being handed over."""


async def hand_over(bus: Bus, claim: BasenameClaimed) -> None:
    """Store `claim` (the project it names takes the basename) after the newest claim on the basename,
    unless that one is the same project's already; a claim stored in between is read and the claim
    stored after it."""
    subject = subject_for(claim)
    for _ in range(ATTEMPTS):
        stored = await bus.last_on(subject)
        last = stored_claim(bus, stored.data) if stored is not None else None
        if last is not None and last.project_id == claim.project_id:
            return
        try:
            await bus.publish(claim, expect=Expect(subject, stored.seq if stored is not None else 0))
            return
        except Conflict:
            continue
    raise Contested(f"{claim.filename} was claimed by others {ATTEMPTS} times while it was handed over")


def stored_claim(bus: Bus, data: bytes) -> BasenameClaimed | None:
    """A stored claim, or None for what is not one: it holds nothing."""
    try:
        event = bus.codec.decode(data)
    except PoisonEvent:
        return None
    return event if isinstance(event, BasenameClaimed) else None
