"""`GET /api/openapi.json`: the OpenAPI document of every route the app serves, made from the route
table and the Route each handler is registered with (api/routes.py), so a new route is documented as
it is added; the summary is the docstring's first line."""

from __future__ import annotations

import re
from typing import Any, Iterable

import msgspec
from aiohttp import web

from .deps import deps
from .errors import respond
from .params import ReadYourWrites
from .routes import ROUTES, Handler, Route, Routes

routes = Routes()

REF = "#/components/schemas/{name}"
SECURED = "/api/"
PUBLIC = ("/api/session",)
ERROR = {
    "description": "what is wrong",
    "content": {"application/json": {"schema": {"$ref": REF.format(name="Error")}}},
}


class Error(msgspec.Struct):
    error: str


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    """This document: every route the API serves."""
    return respond(
        document(request.app.router.routes(), request.app[ROUTES], token=bool(deps(request).config.api.token))
    )


def document(app_routes: Iterable[web.AbstractRoute], described: dict[Handler, Route], token: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes; with a token, /api needs it (bearer or session cookie)."""
    paths: dict[str, dict] = {}
    structs: list[type] = [Error]
    for route in app_routes:
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        path = route.resource.canonical
        operation = _operation(route.method, path, route.handler, described.get(route.handler, Route()), structs)
        if token and path.startswith(SECURED) and path not in PUBLIC:
            operation["security"] = [{"bearer": []}, {"session": []}]
        paths.setdefault(path, {})[route.method.lower()] = operation
    _, schemas = msgspec.json.schema_components(structs, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Darkroom",
            "version": "1",
            "description": 'Errors answer JSON {"error": message} with their status (CONTRACT §3).',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "api.token"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "darkroom_session",
                    "description": "from POST /api/session",
                },
            },
        },
    }


def _operation(method: str, path: str, handler: Any, route: Route, structs: list[type]) -> dict[str, Any]:
    name = handler.__name__
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{name}",
        "summary": (handler.__doc__ or name).strip().splitlines()[0],
        "responses": {"2XX": _success(route.media), "4XX": ERROR, "5XX": ERROR},
    }
    parameters = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in re.findall(r"{(\w+)", path)
    ]
    for params in (route.query, ReadYourWrites if method == "GET" else None):
        if params is not None:
            parameters += _query_parameters(params)
    if parameters:
        operation["parameters"] = parameters
    if (body := route.body) is not None:
        structs.append(body)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(name=body.__name__)}}},
        }
    if (form := route.form) is not None:
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": _form(form)}}}
    return operation


def _success(media: str) -> dict[str, Any]:
    schema = {"type": "object"} if media == "application/json" else {"type": "string"}
    return {"description": "done", "content": {media: {"schema": schema}}}


def _query_parameters(params: type) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "query", "required": False, "schema": _not_null(prop)}
        for name, prop in _inline(params)["properties"].items()
    ]


def _form(struct: type) -> dict[str, Any]:
    """A multipart form's schema: its bytes are files, sent as they are (not base64 as in JSON)."""
    schema = msgspec.json.encode(_inline(struct)).replace(
        b'"contentEncoding":"base64"', b'"contentMediaType":"application/octet-stream"'
    )
    return msgspec.json.decode(schema)


def _inline(struct: type) -> dict[str, Any]:
    _, components = msgspec.json.schema_components([struct], ref_template=REF)
    return components[struct.__name__]


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: `X | None = None` is documented as X."""
    options = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    if len(options) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**options[0], **rest}
