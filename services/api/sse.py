"""`GET /api/events`: Server-Sent Events read from the projector's outbox (live and resume alike)."""

from __future__ import annotations

import time

import msgspec
from aiohttp import web

from ..projector.queries import AFTER_EVERYTHING, parse_event_id
from .deps import Deps, deps, project_named
from .fanout import Fanout, Kind, Position, encode
from .params import maintenance_shown, query_of
from .routes import Routes

routes = Routes()
FANOUT = web.AppKey("sse fan-out", Fanout)

OUTBOX_PAGE = 500  # a shorter page had every row up to the checkpoint read before it


class Stream(msgspec.Struct, kw_only=True):
    project: str | None = None  # a folder: only its messages
    show_maintenance: bool | None = None
    last_event_id: str | None = None  # for clients that cannot send the Last-Event-ID header


@routes.get("/api/events", query=Stream, media="text/event-stream")
async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: task_update, job_update (and item events); resumable with Last-Event-ID."""
    d = deps(request)
    query = query_of(request, Stream)
    # An unknown project is a 404, not a stream that stays empty; a known one is followed by its id,
    # through a rename (`project_renamed` tells the page its new folder).
    project_id = (await project_named(d, query.project)).id if query.project is not None else None
    show_maintenance = maintenance_shown(d, query.show_maintenance)
    last_event_id = request.headers.get("Last-Event-ID") or query.last_event_id
    resume = await _resume_point(d, last_event_id) if last_event_id else None

    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")

    fanout = request.app[FANOUT]
    queue = fanout.open(project_id, show_maintenance, d.sse_queue_bytes)
    try:
        with d.http.sse_clients.track_inprogress():
            if resume is None:
                seen = d.read.checkpoint
                cursor = (seen, AFTER_EVERYTHING)
                # The position as an id: the browser remembers it, so even a drop before any message resumes.
                position = f"id: {seen}.{AFTER_EVERYTHING}\n"
                opening = position + "event: reset\ndata: {}\n\n" if last_event_id else position + "\n"
                await response.write(opening.encode())
            else:
                cursor = resume
            cursor = await _catch_up(d, response, queue.kind, cursor)  # what came before it was opened
            last_write = time.monotonic()
            while not d.stopping.is_set():
                if queue.behind:  # its queue overflowed: served from the outbox, from where it is
                    queue.restart()
                    cursor = await _catch_up(d, response, queue.kind, cursor)
                    last_write = time.monotonic()
                chunk, cursor = queue.take(cursor)
                if chunk:
                    await response.write(chunk)
                    last_write = time.monotonic()
                elif time.monotonic() - last_write >= d.sse_ping_s:
                    await response.write(b": ping\n\n")
                    last_write = time.monotonic()
                # Woken by what the fan-out queues or when the next comment is due, whichever comes first.
                queue.due = last_write + d.sse_ping_s
                await queue.wait()
    finally:
        fanout.close(queue)
    return response


async def _catch_up(d: Deps, response: web.StreamResponse, kind: Kind, cursor: Position) -> Position:
    """Writes the stream's messages after `cursor` from the outbox, up to its end; the new position.
    A point pruned meanwhile (a client that read nothing for very long) gets a `reset`."""
    project_id, show_maintenance = kind
    while True:
        rows = await d.read.outbox_after(
            cursor, project_id=project_id, show_maintenance=show_maintenance, limit=OUTBOX_PAGE
        )
        # Pruning and its mark are one transaction: a mark not past the cursor now was not when read.
        pruned = 0 if d.read.tail is not None and d.read.tail.covers(cursor) else await d.read.pruned_through()
        if cursor[0] < pruned:
            cursor = (max(d.read.checkpoint, pruned), AFTER_EVERYTHING)
            await response.write(f"id: {cursor[0]}.{AFTER_EVERYTHING}\nevent: reset\ndata: {{}}\n\n".encode())
            continue
        if rows:
            await response.write(b"".join(encode(row) for row in rows))
            cursor = rows[-1].position
        if len(rows) < OUTBOX_PAGE:
            return cursor


async def _resume_point(d: Deps, last_event_id: str) -> tuple[int, int] | None:
    """Where a reconnecting client resumes, or None when it cannot: an id that is not one of ours,
    that was pruned, or that is ahead of the log (as after a restore); that client gets a `reset`."""
    point = parse_event_id(last_event_id)
    if point is None or point[0] < await d.read.pruned_through() or point[0] > await d.bus.last_seq():
        return None
    return point
