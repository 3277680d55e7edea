"""Pure decisions of the worker: which lanes a slot serves, how long a retry waits."""

from __future__ import annotations

import random

Lanes = tuple[str, ...]
PRIORITY_ONLY: Lanes = ("priority",)
NORMAL_FIRST: Lanes = ("normal", "priority")


def slot_lanes(max_parallel_jobs: int, priority_lane_slots: int) -> list[Lanes]:
    """`priority_lane_slots` slots take only priority work; the rest take normal work first and
    priority work when the normal lane is empty, so no slot idles while work waits."""
    return [PRIORITY_ONLY] * priority_lane_slots + [NORMAL_FIRST] * (max_parallel_jobs - priority_lane_slots)


def serving(lanes: Lanes, idle_priority_only: int) -> Lanes:
    """A normal-first slot leaves priority work to idle priority-only slots, staying free for
    normal work; it helps with priority work only while every priority-only slot is busy."""
    if lanes == NORMAL_FIRST and idle_priority_only > 0:
        return ("normal",)
    return lanes


def backoff(attempt: int, base_s: float, max_s: float, rand: random.Random | None = None) -> float:
    """Exponential backoff with jitter: retries of many jobs failing together spread out."""
    ceiling = min(max_s, base_s * 2 ** min(max(0, attempt - 1), 60))
    return round(ceiling * (0.5 + 0.5 * (rand or random).random()), 3)
