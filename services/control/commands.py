"""`darkroom retry`, `darkroom lanes` and the actions of `darkroom dead-letters`: the operator
controls from a terminal, through the same code as the API, with their answers as text."""

from __future__ import annotations

from ..audit import text_table
from ..kernel.bus import Bus
from ..kernel.vocabulary import COUNTED_STATES
from ..projector.queries import ReadModel
from . import dead_letters
from .lanes import Lane, lanes, set_paused
from .retry import retry


async def retry_task(bus: Bus, read: ReadModel, task_id: str) -> str:
    task, seq = await retry(bus, read, task_id)
    step = task.steps[task.start_step].type
    return f"task {task.id} runs task {task.retry_of} again from step {task.start_step} ({step}); seq {seq}\n"


async def lane_command(bus: Bus, read: ReadModel, action: str | None, lane: str | None) -> str:
    said = ""
    if action is not None and lane is not None:
        seq = await set_paused(bus, lane, action == "pause")
        if seq is not None:
            await read.wait_for(seq, 2.0)
        said = f"lane {lane} {'paused' if action == 'pause' else 'resumed'}" + (f"; seq {seq}" if seq else "") + "\n\n"
    return said + lanes_table(await lanes(bus, read))


def lanes_table(found: list[Lane]) -> str:
    """The lanes, then their job counts by type and state (pure)."""
    out = text_table(
        [("LANE", "STATE", "DEPTH", "IN_FLIGHT", "BUSY_SLOTS")]
        + [
            (
                lane.lane,
                "paused" if lane.paused else "running",
                str(lane.depth),
                str(lane.in_flight),
                str(lane.busy_slots),
            )
            for lane in found
        ]
    )
    counts = [
        (lane.lane, job_type, *(str(getattr(n, state)) for state in COUNTED_STATES))
        for lane in found
        for job_type, n in lane.jobs.items()
    ]
    if counts:
        out += "\n" + text_table([("LANE", "JOB_TYPE", *(state.upper() for state in COUNTED_STATES)), *counts])
    return out


async def dead_letter_command(bus: Bus, read: ReadModel, action: str, seq: int) -> str:
    handle = dead_letters.discard if action == "discard" else dead_letters.apply
    stored = await handle(bus, read, seq)
    return f"dead letter {seq} {'discarded' if action == 'discard' else 'applied'}; seq {stored}\n"
