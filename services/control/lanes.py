"""Lanes: how deep each one is, what is running on it, its job counts; pausing and resuming it."""

from __future__ import annotations

import msgspec

from ..kernel import subjects, vocabulary
from ..kernel.bus import Bus
from ..kernel.events import LanePaused, LaneResumed, PoisonEvent
from ..kernel.messages import Conflict, Expect
from ..kernel.subjects import lane_consumer
from ..kernel.vocabulary import COUNTED_STATES, LANES
from ..projector.queries import ReadModel
from ..projector.views import LaneRow
from .refused import Refused

CONFLICTS = 5


class JobCounts(msgspec.Struct):
    """A lane's jobs of one type by state (those completed or canceled are not counted)."""

    queued: int = 0
    running: int = 0
    retrying: int = 0
    failed: int = 0


class Lane(msgspec.Struct, kw_only=True):
    lane: str
    paused: bool
    depth: int  # jobs waiting to be handed to a worker
    in_flight: int  # jobs handed out and not yet settled (running, waiting to be retried, held by a pause)
    busy_slots: int  # worker slots running one of its jobs now, in every worker process
    updated_at: str | None = None  # when it was last paused or resumed
    jobs: dict[str, JobCounts] = {}  # by job type


def lanes_of(
    states: dict[str, LaneRow], counts: list[tuple[str, str, str, int]], consumers: dict[str, tuple[int, int]]
) -> list[Lane]:
    """Every lane, from its pause state, the job counts (lane, type, state, n) and its consumer's
    (pending, ack pending) (pure)."""
    jobs: dict[str, dict[str, JobCounts]] = {lane: {} for lane in LANES}
    for lane, job_type, state, n in counts:
        if lane in jobs and state in COUNTED_STATES:
            setattr(jobs[lane].setdefault(job_type, JobCounts()), state, n)
    out = []
    for lane in LANES:
        row = states.get(lane) or LaneRow(lane=lane)
        depth, in_flight = consumers.get(lane, (0, 0))
        out.append(
            Lane(
                lane=lane,
                paused=row.paused,
                depth=depth,
                in_flight=in_flight,
                busy_slots=sum(c.running for c in jobs[lane].values()),
                updated_at=row.updated_at,
                jobs=dict(sorted(jobs[lane].items())),
            )
        )
    return out


async def lanes(bus: Bus, read: ReadModel) -> list[Lane]:
    consumers: dict[str, tuple[int, int]] = {}
    for lane in LANES:
        info = await bus.jsm.consumer_info(subjects.STREAM, lane_consumer(lane))
        consumers[lane] = (info.num_pending or 0, info.num_ack_pending or 0)
    return lanes_of(await read.lanes(), await read.job_counts(), consumers)


def known(lane: str) -> vocabulary.Lane:
    """The lane of this name, or a 404 that names the lanes."""
    for name in LANES:
        if name == lane:
            return name
    raise Refused(404, f"no lane {lane!r}; the lanes are {', '.join(LANES)}")


async def set_paused(bus: Bus, lane: str, paused: bool) -> int | None:
    """Pause or resume a lane: a lane.paused or lane.resumed stored unless the lane is so already.
    The sequence of the lane's newest event now (None: it never had one)."""
    name = known(lane)
    for _ in range(CONFLICTS):
        newest = await bus.last_on(subjects.lane_events(lane))
        try:
            now_paused = newest is not None and isinstance(bus.codec.decode(newest.data), LanePaused)
        except PoisonEvent:
            now_paused = not paused  # what cannot be read says nothing: this one is stored
        if newest is not None and now_paused == paused:
            return newest.seq
        if newest is None and not paused:
            return None  # never paused: resumed already
        event = (LanePaused if paused else LaneResumed)(lane=name, source="user")
        try:  # only after the newest one seen: two operators at once store one change, not two
            return await bus.publish(event, expect=Expect(subjects.lane_events(lane), newest.seq if newest else 0))
        except Conflict:
            continue
    raise Refused(409, f"lane {lane} kept changing; try again")
