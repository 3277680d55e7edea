"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from aiohttp import web

from ..kernel.subjects import STREAM, lane_consumer
from ..kernel.vocabulary import LANES
from .deps import deps
from .errors import error, respond
from .routes import Routes

routes = Routes()

DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600)


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
    """Prometheus text: events, projector lag, lane depth, job durations."""
    d = deps(request)
    lines = [
        "# TYPE darkroom_events_published_total counter",
        f"darkroom_events_published_total {d.bus.counters.published}",
        "# TYPE darkroom_events_duplicate_total counter",
        f"darkroom_events_duplicate_total {d.bus.counters.duplicates}",
        "# TYPE darkroom_projector_checkpoint gauge",
        f"darkroom_projector_checkpoint {d.read.checkpoint}",
    ]
    try:
        last = await d.bus.last_seq()
        lines += [
            "# TYPE darkroom_stream_last_seq gauge",
            f"darkroom_stream_last_seq {last}",
            "# TYPE darkroom_projector_lag gauge",
            f"darkroom_projector_lag {max(0, last - d.read.checkpoint)}",
            "# TYPE darkroom_lane_depth gauge",
            "# TYPE darkroom_lane_in_flight gauge",
        ]
        for lane in LANES:
            info = await d.bus.jsm.consumer_info(STREAM, lane_consumer(lane))
            lines.append(f'darkroom_lane_depth{{lane="{lane}"}} {info.num_pending}')
            lines.append(f'darkroom_lane_in_flight{{lane="{lane}"}} {info.num_ack_pending}')
    except Exception as exc:  # metrics still answer while NATS is away
        lines.append(f"# nats unavailable: {exc}")
    lines.append("# TYPE darkroom_lane_paused gauge")
    paused = await d.read.lanes()
    lines += [f'darkroom_lane_paused{{lane="{lane}"}} {int(lane in paused and paused[lane].paused)}' for lane in LANES]
    lines.append("# TYPE darkroom_jobs gauge")
    lines += [
        f'darkroom_jobs{{lane="{lane}",type="{job_type}",status="{status}"}} {n}'
        for lane, job_type, status, n in await d.read.job_counts()
    ]
    lines += _histogram("darkroom_job_duration_seconds", await d.read.job_durations())
    lines += ["# TYPE darkroom_dead_letters gauge", f"darkroom_dead_letters {len(await d.read.dead_letters())}"]
    for source in d.metrics_sources:
        lines += source()
    return web.Response(
        text="\n".join(lines) + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def _histogram(name: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# TYPE {name} histogram"]
    by_type: dict[str, list[float]] = {}
    for job_type, seconds in samples:
        by_type.setdefault(job_type, []).append(seconds)
    for job_type, values in sorted(by_type.items()):
        for bound in DURATION_BUCKETS:
            count = sum(1 for v in values if v <= bound)
            lines.append(f'{name}_bucket{{type="{job_type}",le="{bound}"}} {count}')
        lines.append(f'{name}_bucket{{type="{job_type}",le="+Inf"}} {len(values)}')
        lines.append(f'{name}_sum{{type="{job_type}"}} {sum(values):.6f}')
        lines.append(f'{name}_count{{type="{job_type}"}} {len(values)}')
    return lines
