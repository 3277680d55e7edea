"""Operator controls: retry a task, the lanes (pause, resume, depth, job counts), dead letters."""

from __future__ import annotations

from typing import Annotated, Awaitable, Callable, TypeVar

import msgspec
from aiohttp import web

from ..control import dead_letters as letters
from ..control import lanes as lane_control
from ..control.refused import Refused
from ..control.retry import retry
from ..kernel.bus import Bus
from ..projector.queries import ReadModel
from .deps import deps
from .errors import error, respond
from .params import query_of
from .routes import Routes

routes = Routes()

T = TypeVar("T")


class DeadLetters(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000


async def _done(action: Awaitable[T]) -> T:
    try:
        return await action
    except Refused as exc:
        raise error(exc.status, exc.message) from None


@routes.post("/api/tasks/{task_id}/retry")
async def retry_task(request: web.Request) -> web.Response:
    """Run a failed or canceled task again, from the step it stopped at, as a new task linked to it."""
    d = deps(request)
    task, seq = await _done(retry(d.bus, d.read, request.match_info["task_id"]))
    return respond({"task": task}, status=202, seq=seq)


@routes.get("/api/lanes")
async def list_lanes(request: web.Request) -> web.Response:
    """Each lane: paused or not, its depth, jobs in flight, busy slots, and its job counts by type and state."""
    d = deps(request)
    return respond({"lanes": await lane_control.lanes(d.bus, d.read)})


async def _set_paused(request: web.Request, paused: bool) -> web.Response:
    d = deps(request)
    name = request.match_info["lane"]
    seq = await _done(lane_control.set_paused(d.bus, name, paused))
    if seq is not None:
        await d.read.wait_for(seq, 2.0)  # the answer shows the lane as it now is
    lane = next(lane for lane in await lane_control.lanes(d.bus, d.read) if lane.lane == name)
    return respond({"lane": msgspec.structs.replace(lane, paused=paused)}, seq=seq)


@routes.post("/api/lanes/{lane}/pause")
async def pause_lane(request: web.Request) -> web.Response:
    """Pause a lane: no worker takes a new job from it (running ones finish), until it is resumed."""
    return await _set_paused(request, True)


@routes.post("/api/lanes/{lane}/resume")
async def resume_lane(request: web.Request) -> web.Response:
    """Resume a paused lane: workers take its jobs again."""
    return await _set_paused(request, False)


@routes.get("/api/dead-letters", query=DeadLetters)
async def dead_letters(request: web.Request) -> web.Response:
    """Messages set aside as unreadable, with why, and whether this version reads them now."""
    d = deps(request)
    return respond({"dead_letters": await letters.listed(d.bus, d.read, query_of(request, DeadLetters).limit)})


@routes.post("/api/dead-letters/{seq}/discard")
async def discard_dead_letter(request: web.Request) -> web.Response:
    """Let a dead letter go: it is no longer listed, and never applied."""
    return await _handle(request, letters.discard, "discarded")


@routes.post("/api/dead-letters/{seq}/apply")
async def apply_dead_letter(request: web.Request) -> web.Response:
    """Apply a dead letter this version reads now (an upcaster shipped), at this point of the log."""
    return await _handle(request, letters.apply, "applied")


async def _handle(
    request: web.Request, handle: Callable[[Bus, ReadModel, int], Awaitable[int]], done: str
) -> web.Response:
    d = deps(request)
    value = request.match_info["seq"]
    if not value.isdigit() or len(value) > 18:
        raise error(404, f"no dead letter at sequence {value!r}")
    seq = int(value)
    return respond({done: seq}, seq=await _done(handle(d.bus, d.read, seq)))
