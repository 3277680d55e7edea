"""Which lanes are paused: each lane's newest lane.paused or lane.resumed is its state (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import Event, LaneEvent, LanePaused


@dataclass
class LaneStates:
    """Folded in stream order from any mix of reads (a lane's newest event at start, then live ones):
    an event older than what a lane already holds changes nothing."""

    seqs: dict[str, int] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)

    def apply(self, seq: int, event: Event) -> bool:
        """Fold in one event; whether the lane's state changed."""
        if not isinstance(event, LaneEvent) or seq <= self.seqs.get(event.lane, 0):
            return False
        self.seqs[event.lane] = seq
        was = event.lane in self.paused
        if isinstance(event, LanePaused):
            self.paused.add(event.lane)
        else:
            self.paused.discard(event.lane)
        return was != (event.lane in self.paused)
