"""A Darkroom plugin (`pipeline.plugins`) whose one job type, `noop`, does nothing: what the bench runs."""

from __future__ import annotations

from darkroom.worker.context import Handler, JobContext


async def noop(ctx: JobContext) -> None:
    return None


HANDLERS: dict[str, Handler] = {"noop": noop}
