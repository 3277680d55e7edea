"""Pure decisions of the worker: which lanes a slot serves, how long it waits on each."""

from __future__ import annotations

from collections.abc import Collection

Lanes = tuple[str, ...]
PRIORITY_ONLY: Lanes = ("priority",)
NORMAL_FIRST: Lanes = ("normal", "priority")

SWITCH_S = 0.1  # a normal-first slot's wait on one lane while work flows: it turns to the other soon
REST_S = 1.0  # a wait otherwise: a job that comes meanwhile is delivered at once all the same
AT_REST_AFTER_S = 30.0  # a worker that took no job for this long is at rest


def slot_lanes(max_parallel_jobs: int, priority_lane_slots: int) -> list[Lanes]:
    """`priority_lane_slots` slots take only priority work; the rest take normal work first and
    priority work when the normal lane is empty, so no slot idles while work waits."""
    return [PRIORITY_ONLY] * priority_lane_slots + [NORMAL_FIRST] * (max_parallel_jobs - priority_lane_slots)


def serving(lanes: Lanes, idle_priority_only: int, paused: Collection[str] = ()) -> Lanes:
    """A normal-first slot leaves priority work to idle priority-only slots, staying free for
    normal work; it helps with priority work only while every priority-only slot is busy. No slot
    takes work from a paused lane."""
    if lanes == NORMAL_FIRST and idle_priority_only > 0:
        lanes = ("normal",)
    return tuple(lane for lane in lanes if lane not in paused)


def lane_wait(lanes: Lanes, last: bool, idle_s: float, idle_priority_only: int) -> float:
    """How long a slot waits on one lane of its round: a lane with another after it is only looked
    at; a slot of one lane waits long. A normal-first slot's wait bounds how soon it turns to
    priority work once every priority-only slot is busy: the closer that is, the shorter, SWITCH_S
    for each priority-only slot still idle (so at least SWITCH_S, at most REST_S), while work flows;
    REST_S once the worker is at rest. A worker with many idle priority-only slots then asks the
    server once a second instead of ten times, while a job runs as when it is at rest."""
    if not last:
        return 0.0
    if len(lanes) == 1 or idle_s >= AT_REST_AFTER_S:
        return REST_S
    return min(REST_S, SWITCH_S * max(1, idle_priority_only))
