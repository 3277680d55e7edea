"""Which lanes this worker process leaves alone: each lane's newest pause or resume, read from the
log at start and then followed live (an ordered consumer, made again after a reconnect), so every
worker stops taking a paused lane's jobs at once, and after a restart too."""

from __future__ import annotations

import asyncio

from ..kernel.bus import Bus
from ..kernel.events import PoisonEvent
from ..kernel.follow import Follower
from ..kernel.lanes import LaneStates
from ..kernel.messages import Stored
from ..kernel.subjects import LANE_EVENTS, lane_events
from ..kernel.supervise import Loops
from ..kernel.vocabulary import LANES


class LanePauses:
    def __init__(self, bus: Bus, loops: Loops) -> None:
        self.bus = bus
        self.loops = loops
        self.states = LaneStates()
        self._changed = asyncio.Event()
        self._follower: Follower | None = None

    async def start(self) -> None:
        end = await self.bus.last_seq()
        for lane in LANES:  # each lane's newest event, then everything after `end` as it comes
            stored = await self.bus.last_on(lane_events(lane))
            if stored is not None:
                self._fold(stored)
        self._follower = Follower(self.bus, end + 1, self._fold, self.loops, name="lane pauses", subject=LANE_EVENTS)
        await self._follower.start()

    async def stop(self) -> None:
        if self._follower is not None:
            await self._follower.stop()

    def paused(self, lane: str) -> bool:
        return lane in self.states.paused

    async def changed(self, timeout: float) -> None:
        """Returns when a lane is paused or resumed, or after `timeout` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    def _fold(self, stored: Stored) -> None:
        try:
            event = self.bus.codec.decode(stored.data)
        except PoisonEvent:
            return  # set aside by the projector; a lane's state is what readable events say
        if self.states.apply(stored.seq, event):
            self._changed.set()
            self._changed = asyncio.Event()
