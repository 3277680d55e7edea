"""Route tables that also say what each route takes and answers: the OpenAPI document is made from
them (api/openapi.py), and the origin check knows the one route that takes a multipart form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web
from aiohttp.web_routedef import _Deco

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"


@dataclass(frozen=True)
class Route:
    """What a route takes and answers beyond its path: a JSON body, a multipart form or query parameters
    (each a Struct the handler reads them through), and what it answers when that is not JSON."""

    body: type | None = None
    form: type | None = None
    query: type | None = None
    media: str = JSON


ROUTES = web.AppKey("routes", dict)  # handler -> Route, for every route of the app


class Routes(web.RouteTableDef):
    """aiohttp's route table, with each handler's Route: `@routes.post(path, body=Struct)`."""

    def __init__(self) -> None:
        super().__init__()
        self.described: dict[Handler, Route] = {}

    def route(
        self,
        method: str,
        path: str,
        *,
        body: type | None = None,
        form: type | None = None,
        query: type | None = None,
        media: str = JSON,
        **kwargs: Any,
    ) -> _Deco:
        register = super().route(method, path, **kwargs)

        def inner(handler: Handler) -> Handler:
            self.described[handler] = Route(body, form, query, media)
            return register(handler)

        return inner


def described(request: web.Request) -> Route:
    """The Route of the handler a request was routed to (a bare Route for aiohttp's own answers)."""
    routes: dict[Handler, Route] = request.app[ROUTES]
    return routes.get(request.match_info.route.handler, Route())
