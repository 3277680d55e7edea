"""An operator control that cannot be done as asked: the status an API answers, and why."""

from __future__ import annotations

from ..kernel.bus import Bus
from ..projector.queries import CATCH_UP_S, ReadModel


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def caught_up(bus: Bus, read: ReadModel, timeout: float = CATCH_UP_S) -> None:
    """A control decides from a read model that has applied everything stored before it was asked
    (a retry made a moment ago, a dead letter just handled), or refuses with 503."""
    last = await bus.last_seq()
    if not await read.wait_for(last, timeout):
        raise Refused(503, f"the read model has not reached sequence {last} within {timeout:g}s; try again")
