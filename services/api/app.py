"""The aiohttp application: middlewares (request counts, errors, same origin, auth, min_seq) and routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import AsyncIterator

import msgspec
from aiohttp import web

from . import assets, changes, controls, lifecycle, openapi, ops, projects, sse, tasks, ui, upload
from .deps import DEPS, Deps, deps
from .errors import MAX_BODY, error, json_errors, read_json, respond
from .fanout import Fanout
from .origin import same_origin
from .params import ReadYourWrites, query_of
from .routes import ROUTES, Routes

SESSION_COOKIE = "darkroom_session"
MIN_SEQ_WAIT_S = 5.0

session_routes = Routes()


class Session(msgspec.Struct, forbid_unknown_fields=True):
    token: str


def session_value(token: str) -> str:
    return hashlib.sha256(f"darkroom-session:{token}".encode()).hexdigest()


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison of what the client sent, whatever its bytes (a header may hold any)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


CLIENT_GONE = 499  # the client closed the connection before the answer ended (an SSE stream left)
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


@web.middleware
async def count_requests(request: web.Request, handler):
    """Every answer counted by route pattern (never the raw path: one series per route), method and status."""
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_GONE
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        deps(request).http.answered(route, method, status)


@web.middleware
async def require_token(request: web.Request, handler):
    token = deps(request).config.api.token
    if token and request.path.startswith("/api/") and request.path != "/api/session":
        bearer = request.headers.get("Authorization", "")
        ok = _same(bearer, f"Bearer {token}") or _same(request.cookies.get(SESSION_COOKIE, ""), session_value(token))
        if not ok:
            raise error(401, "this server needs a token: Authorization: Bearer <token>, or POST /api/session")
    return await handler(request)


@web.middleware
async def wait_min_seq(request: web.Request, handler):
    seq = query_of(request, ReadYourWrites).min_seq if request.method == "GET" else None
    if seq is not None and seq > deps(request).read.checkpoint:
        d = deps(request)
        last = await d.bus.last_seq()
        if seq > last:  # every X-Darkroom-Seq is in the log: this one was never given out
            raise error(400, f"min_seq {seq} is past the end of the log ({last})")
        if not await d.read.wait_for(seq, MIN_SEQ_WAIT_S):
            raise error(503, f"read model has not reached sequence {seq} within {MIN_SEQ_WAIT_S:g}s")
    return await handler(request)


@session_routes.post("/api/session", body=Session)
async def create_session(request: web.Request) -> web.Response:
    """Exchange the API token for a session cookie (what the browser UI uses)."""
    body = await read_json(request, Session)
    token = deps(request).config.api.token
    if not token or not _same(body.token, token):
        raise error(401, "wrong token")
    response = respond({"ok": True})
    response.set_cookie(SESSION_COOKIE, session_value(token), httponly=True, samesite="Strict", path="/")
    return response


def build_app(d: Deps) -> web.Application:
    app = web.Application(
        middlewares=[count_requests, json_errors, same_origin(SESSION_COOKIE), require_token, wait_min_seq],
        client_max_size=MAX_BODY,
    )
    app[DEPS] = d
    app[ROUTES] = {}
    for table in (
        ops.routes,
        openapi.routes,
        tasks.routes,
        controls.routes,
        projects.routes,
        upload.routes,
        changes.routes,
        lifecycle.routes,
        assets.routes,
        sse.routes,
        session_routes,
        ui.routes,
    ):
        app.add_routes(table)
        app[ROUTES].update(table.described)

    fanout = app[sse.FANOUT] = Fanout(d.http.sse_behind.inc)

    async def feeding(_app: web.Application) -> AsyncIterator[None]:
        loops = fanout.start(d.read, d.read.loops)
        yield
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    async def on_shutdown(_app: web.Application) -> None:
        d.stopping.set()  # SSE streams end so the server can close
        fanout.wake_all()

    app.cleanup_ctx.append(feeding)
    app.on_shutdown.append(on_shutdown)
    return app
