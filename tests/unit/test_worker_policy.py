"""services/worker/policy.py: which lanes each slot serves, and how long a retry waits."""

from __future__ import annotations

import random

import pytest

from darkroom.worker import policy
from darkroom.worker.policy import NORMAL_FIRST, PRIORITY_ONLY, backoff, serving, slot_lanes


class Fixed:
    """A stand-in for random.Random that always draws the same number."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


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
    assert wait(NORMAL_FIRST, last=False, idle_s=0.0) == 0.0  # the normal lane is only looked at
    assert wait(NORMAL_FIRST, last=False, idle_s=3600.0) == 0.0
    # Work flowing (or a job running): it turns to priority work within SWITCH_S of the lanes filling.
    assert wait(NORMAL_FIRST, last=True, idle_s=0.0) == policy.SWITCH_S
    assert wait(NORMAL_FIRST, last=True, idle_s=policy.AT_REST_AFTER_S - 1) == policy.SWITCH_S
    # At rest it asks once per REST_S: a job that comes meanwhile is still delivered at once.
    assert wait(NORMAL_FIRST, last=True, idle_s=policy.AT_REST_AFTER_S) == policy.REST_S
    assert wait(PRIORITY_ONLY, last=True, idle_s=0.0) == policy.REST_S
    assert policy.SWITCH_S < policy.REST_S


def test_backoff_ceiling_doubles_per_attempt_until_the_cap():
    top = Fixed(1.0)  # the top of the jitter range is the ceiling itself
    assert [backoff(a, 1.0, 60.0, top) for a in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(3, 0.5, 60.0, top) == 2.0


def test_backoff_first_attempt_waits_about_the_base():
    assert backoff(1, 2.0, 60.0, Fixed(1.0)) == 2.0
    assert backoff(0, 2.0, 60.0, Fixed(1.0)) == 2.0  # never below the base's range


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 7, 10, 30])
def test_backoff_jitter_stays_within_half_to_full_ceiling(attempt):
    ceiling = min(60.0, 1.0 * 2 ** (attempt - 1))
    rng = random.Random(attempt)
    delays = [backoff(attempt, 1.0, 60.0, rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 50  # actually jittered, not one value
    assert backoff(attempt, 1.0, 60.0, Fixed(0.0)) == ceiling / 2


def test_backoff_without_a_generator_uses_module_randomness():
    delays = {backoff(4, 1.0, 60.0) for _ in range(50)}
    assert all(4.0 <= d <= 8.0 for d in delays) and len(delays) > 1


def test_backoff_is_capped_for_any_attempt_count():
    assert backoff(2000, 1.0, 60.0, Fixed(1.0)) == 60.0


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
