"""services/worker/policy.py: which lanes each slot serves, and how long it waits on each."""

from __future__ import annotations

import pytest

from darkroom.worker import policy
from darkroom.worker.policy import NORMAL_FIRST, PRIORITY_ONLY, serving, slot_lanes


def test_default_slots_one_priority_only_one_normal_first():
    assert slot_lanes(2, 1) == [("priority",), ("normal", "priority")]


@pytest.mark.parametrize("jobs, priority_slots", [(1, 0), (1, 1), (4, 0), (4, 2), (4, 4), (8, 3)])
def test_slot_count_and_split(jobs, priority_slots):
    slots = slot_lanes(jobs, priority_slots)
    assert len(slots) == jobs
    assert slots.count(PRIORITY_ONLY) == priority_slots
    assert slots.count(NORMAL_FIRST) == jobs - priority_slots
    # Every slot can take priority work, so it never waits behind a maintenance sweep.
    assert all("priority" in lanes for lanes in slots)
    # Normal-first slots look at normal work before priority work (no starvation of normal work).
    assert all(lanes[0] == "normal" for lanes in slots if lanes != PRIORITY_ONLY)


def test_serving_leaves_priority_work_to_idle_priority_slots():
    serving = policy.serving
    assert serving(NORMAL_FIRST, idle_priority_only=1) == ("normal",)
    assert serving(NORMAL_FIRST, idle_priority_only=0) == NORMAL_FIRST
    assert serving(PRIORITY_ONLY, idle_priority_only=0) == PRIORITY_ONLY
    assert serving(PRIORITY_ONLY, idle_priority_only=2) == PRIORITY_ONLY


def test_lane_wait_is_short_only_for_a_normal_first_slot_of_a_busy_worker():
    wait = policy.lane_wait
    assert wait(NORMAL_FIRST, last=False, idle_s=0.0, idle_priority_only=0) == 0.0  # only looked at
    assert wait(NORMAL_FIRST, last=False, idle_s=3600.0, idle_priority_only=5) == 0.0
    # Work flowing (or a job running) and every priority-only slot busy, or all but one: it turns to
    # priority work within SWITCH_S of the lanes filling.
    assert wait(NORMAL_FIRST, last=True, idle_s=0.0, idle_priority_only=0) == policy.SWITCH_S
    assert wait(NORMAL_FIRST, last=True, idle_s=policy.AT_REST_AFTER_S - 1, idle_priority_only=1) == policy.SWITCH_S
    # At rest it asks once per REST_S: a job that comes meanwhile is still delivered at once.
    assert wait(NORMAL_FIRST, last=True, idle_s=policy.AT_REST_AFTER_S, idle_priority_only=0) == policy.REST_S
    assert wait(PRIORITY_ONLY, last=True, idle_s=0.0, idle_priority_only=0) == policy.REST_S
    assert policy.SWITCH_S < policy.REST_S


def test_a_normal_first_slot_waits_longer_the_more_priority_only_slots_are_idle():
    waits = [policy.lane_wait(NORMAL_FIRST, True, 0.0, idle) for idle in range(0, 70)]
    assert waits == sorted(waits)  # never shorter with more idle priority-only slots
    assert waits[2] == pytest.approx(2 * policy.SWITCH_S)
    # The default slots (63 priority-only): while one job runs, the normal lane is asked once a second.
    assert waits[62] == policy.REST_S


def test_a_slot_serves_no_paused_lane():
    assert serving(PRIORITY_ONLY, 0, paused={"priority"}) == ()
    assert serving(PRIORITY_ONLY, 0, paused={"normal"}) == PRIORITY_ONLY
    # Normal paused: a normal-first slot helps with priority work only when it would anyway.
    assert serving(NORMAL_FIRST, 1, paused={"normal"}) == ()
    assert serving(NORMAL_FIRST, 0, paused={"normal"}) == ("priority",)
    assert serving(NORMAL_FIRST, 0, paused={"priority"}) == ("normal",)
    assert serving(NORMAL_FIRST, 1, paused={"priority"}) == ("normal",)
    assert serving(NORMAL_FIRST, 0, paused={"normal", "priority"}) == ()
    assert serving(NORMAL_FIRST, 0) == NORMAL_FIRST
