"""What the API's handlers need, passed in once when the app is built."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from aiohttp import web

from ..kernel.bus import Bus
from ..kernel.config import Config
from ..kernel.definitions import Definitions
from ..kernel.health import Health
from ..kernel.metrics import HttpMetrics, Metrics
from ..projector.queries import CATCH_UP_S, ReadModel


@dataclass
class Deps:
    bus: Bus
    read: ReadModel
    definitions: Definitions
    config: Config
    data_dir: Path
    metrics: Metrics  # this process's, every service in it included
    http: HttpMetrics
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # With the worker in this process: starts a saved photo's derivatives while the upload goes on.
    derive: Callable[[Path], None] | None = None
    # The process's loops and readiness checks (every service it runs), for /healthz and /readyz.
    health: Health | None = None
    # SSE: a comment line at least this often keeps proxies from closing an idle stream (CONTRACT §3: 15 s).
    sse_ping_s: float = 10.0
    # SSE: what may wait for one client that does not read; past it, it is served from the outbox.
    sse_queue_bytes: int = 256 * 1024


DEPS = web.AppKey("deps", Deps)


def deps(request: web.Request) -> Deps:
    return request.app[DEPS]


async def project_of(request: web.Request):
    """The project named by `{folder}` in the path, or a 404 that says so."""
    return await project_named(deps(request), request.match_info["folder"])


async def project_named(d: Deps, folder: str):
    """The project in this folder, or a 404 that says so."""
    from .errors import error

    project = await d.read.project_by_folder(folder)
    if project is None:
        await caught_up(d)  # made a moment ago, maybe through another replica: not applied here yet
        project = await d.read.project_by_folder(folder)
    if project is None:
        raise error(404, f"project {folder!r} not found")
    return project


async def caught_up(d: Deps, timeout: float = CATCH_UP_S) -> None:
    """Decisions made from the read model (what is pending, who owns a basename, whether a project
    exists) see every event stored before the request: wait until the model has applied the log's
    current end, or answer 503 rather than decide from an older state."""
    from .errors import error

    last = await d.bus.last_seq()
    if not await d.read.wait_for(last, timeout):
        raise error(503, f"the read model has not reached sequence {last} within {timeout:g}s; try again")
