"""`/healthz`, `/readyz` and `/metrics` for a worker, orchestrator or projector (`--health-port`):
that process alone, as the api's own routes are for the api's process."""

from __future__ import annotations

import msgspec
from aiohttp import web

from .kernel.health import Health
from .kernel.metrics import CONTENT_TYPE, Metrics


def health_app(health: Health, metrics: Metrics) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        broken = health.broken()
        return _json({"error": broken} if broken else {"status": "ok"}, 503 if broken else 200)

    async def readyz(_request: web.Request) -> web.Response:
        problems = await health.problems()
        return _json({"error": "; ".join(problems)} if problems else {"status": "ready"}, 503 if problems else 200)

    async def prometheus(_request: web.Request) -> web.Response:
        return web.Response(body=await metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    return app


def _json(body: dict, status: int) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")
