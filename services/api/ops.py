"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client.core import Metric

from ..kernel.metrics import CONTENT_TYPE, gauge
from ..kernel.vocabulary import LANES
from ..projector.queries import ReadModel
from .deps import deps
from .errors import error, respond
from .routes import Routes

routes = Routes()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers and can go on (503 once a loop of it has failed for good)."""
    health = deps(request).health
    broken = health.broken() if health is not None else None
    if broken:
        raise error(503, broken)
    return respond({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: NATS connected, every loop of this process running, and the read model within a second
    of the log (and, with a worker, projector or orchestrator in the process, what they need)."""
    d = deps(request)
    problems = await d.health.problems() if d.health is not None else []
    if problems:
        raise error(503, "; ".join(problems))
    if not d.bus.nc.is_connected:
        raise error(503, "not connected to NATS")
    try:
        last = await d.bus.last_seq()
    except Exception as exc:
        raise error(503, f"JetStream not answering: {exc}") from None
    if not await d.read.wait_for(last, timeout=1.0):
        raise error(503, f"read model at {d.read.checkpoint}, log at {last}")
    return respond({"status": "ready", "seq": last, "checkpoint": d.read.checkpoint})


@routes.get("/metrics", media="text/plain")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text: this process's families (docs/operating.md lists them)."""
    body = await deps(request).metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE, "X-Content-Type-Options": "nosniff"})


def read_model_families(read: ReadModel) -> tuple[Callable[[], Awaitable[list[Metric]]], Callable[[], list[Metric]]]:
    """The api's view of the work, from its read model: jobs not finished (and failed) by lane, type and
    status, paused lanes, dead letters. Queries over a partial index and small tables only."""

    def families(
        counts: list[tuple[str, str, str, int]] | None = None, paused: dict | None = None, dead: int | None = None
    ) -> list[Metric]:
        return [
            gauge(
                "darkroom_jobs",
                "Jobs queued, running, retrying or failed, by lane, job type and status",
                labels=["lane", "type", "status"],
                samples=[((lane, job_type, status), n) for lane, job_type, status, n in counts or []],
            ),
            gauge(
                "darkroom_lane_paused",
                "1 while a lane is paused",
                labels=["lane"],
                samples=[([lane], int(lane in paused and paused[lane].paused)) for lane in LANES]
                if paused is not None
                else [],
            ),
            gauge("darkroom_dead_letters", "Messages set aside as unreadable and not yet handled", dead),
        ]

    async def read_now() -> list[Metric]:
        return families(await read.job_counts(), await read.lanes(), await read.dead_letter_count())

    return read_now, families
