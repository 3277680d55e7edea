"""services/kernel/lanes.py: which lanes are paused (pure)."""

from __future__ import annotations

from darkroom.kernel.events import LanePaused, LaneResumed, TaskStarted
from darkroom.kernel.lanes import LaneStates


def test_a_lanes_newest_event_is_its_state_whatever_order_they_are_read_in():
    states = LaneStates()
    assert states.apply(5, LanePaused(lane="normal")) is True
    assert states.paused == {"normal"}
    assert states.apply(3, LaneResumed(lane="normal")) is False  # older: read late, changes nothing
    assert states.apply(5, LaneResumed(lane="normal")) is False  # the same one again
    assert states.paused == {"normal"}
    assert states.apply(7, LanePaused(lane="normal")) is False  # paused again: no change
    assert states.apply(8, LanePaused(lane="priority")) is True
    assert states.apply(9, LaneResumed(lane="normal")) is True
    assert states.paused == {"priority"} and states.seqs == {"normal": 9, "priority": 8}


def test_other_events_change_no_lane():
    states = LaneStates()
    assert states.apply(1, TaskStarted(task_id="T")) is False
    assert states.paused == set() and states.seqs == {}
