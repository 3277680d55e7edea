"""Job types and task definitions the tests register (also loadable as a worker plugin)."""

from __future__ import annotations

import asyncio

from darkroom.kernel.definitions import TaskDefinition
from darkroom.kernel.events import Step
from darkroom.worker.context import JobContext, PermanentError
from darkroom.worker.handlers import plain


async def noop(ctx: JobContext) -> None:
    await ctx.progress(1, 1)


async def fail(ctx: JobContext) -> None:
    raise PermanentError("this step always fails")


async def flaky(ctx: JobContext) -> None:
    raise RuntimeError(f"transient trouble on attempt {ctx.attempt}")


async def sleep(ctx: JobContext) -> None:
    """Sleeps the seconds named by its first item, reporting progress so it never times out."""
    seconds = float(ctx.items[0]) if ctx.items else 1.0
    steps = max(1, int(seconds / 0.05))
    for _ in range(steps):
        await asyncio.sleep(seconds / steps)
        ctx.alive()
    await ctx.progress(1, 1)


async def items(ctx: JobContext) -> None:
    """Works through its items, 0.1 s each, stopping at the next item once its task is canceled."""
    for done, _item in enumerate(ctx.items, start=1):
        ctx.check_canceled()
        await asyncio.sleep(0.1)
        await ctx.progress(done, len(ctx.items))


async def hang(ctx: JobContext) -> None:
    await asyncio.sleep(3600)


async def block(ctx: JobContext) -> None:
    """Runs until its process is killed, heartbeating all along."""
    while True:
        await asyncio.sleep(0.05)
        ctx.alive()


HANDLERS = {"noop": noop, "fail": fail, "flaky": flaky, "sleep": sleep, "items": items, "hang": hang}
BLOCKING_HANDLERS = {"crashy": block}
JOB_TYPES = plain(HANDLERS)


def _task(label: str, *steps: tuple[str, int], user_relevant: bool = True) -> TaskDefinition:
    return TaskDefinition(
        label=label, user_relevant=user_relevant, scope="global", steps=[Step(type=t, priority=p) for t, p in steps]
    )


DEFINITIONS = {
    "three": _task("Three no-ops", ("noop", 90), ("noop", 95), ("noop", 80)),
    "fails_second": _task("Fails at step 2", ("noop", 90), ("fail", 90), ("noop", 90)),
    "slow_items": _task("Slow items", ("items", 90), ("noop", 90)),
    "flaky": _task("Flaky", ("flaky", 90)),
    "hang": _task("Hang", ("hang", 90)),
    "sleep_then_two": _task("Sleep then two", ("sleep", 90), ("noop", 90), ("noop", 90)),
    "long_normal": _task("Long normal", ("sleep", 50)),
    "long_priority": _task("Long priority", ("sleep", 95)),
    "quick_priority": _task("Quick priority", ("noop", 95)),
    "quick_normal": _task("Quick normal", ("noop", 50)),
    "sweep": _task("Sweep", ("noop", 100), ("noop", 95), user_relevant=False),
    "crash_once": _task("Crash once", ("crashy", 90)),
}
