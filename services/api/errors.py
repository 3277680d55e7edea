"""JSON errors everywhere: `{"error": "<what is wrong>"}` with the right status."""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web

log = logging.getLogger("darkroom.api")


def error(status: int, message: str) -> web.HTTPException:
    cls = web.HTTPException
    for candidate in (web.HTTPBadRequest, web.HTTPUnauthorized, web.HTTPNotFound, web.HTTPConflict,
                      web.HTTPRequestEntityTooLarge, web.HTTPServiceUnavailable, web.HTTPInsufficientStorage,
                      web.HTTPMethodNotAllowed, web.HTTPUnsupportedMediaType, web.HTTPForbidden,
                      web.HTTPInternalServerError):
        if candidate.status_code == status:
            cls = candidate
            break
    return cls(text=msgspec.json.encode({"error": message}).decode(), content_type="application/json")


@web.middleware
async def json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json" or exc.status < 400:
            raise
        message = exc.reason if exc.status != 404 else f"no route {request.method} {request.path}"
        raise error(exc.status, message) from None
    except ConnectionResetError:
        log.warning("%s %s: the client went away before the request was whole", request.method, request.path)
        raise error(400, "the request ended before it was whole") from None
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        raise error(500, "internal error; see the server log") from None


async def read_json(request: web.Request, body_type: type):
    """Decode a request body into its Struct; any problem is a 400 that names it."""
    data = await request.read()
    if not data:
        raise error(400, "request body must be a JSON object")
    try:
        return msgspec.json.decode(data, type=body_type)
    except msgspec.ValidationError as exc:
        raise error(400, f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise error(400, f"malformed JSON: {exc}") from None


def respond(body, status: int = 200, seq: int | None = None) -> web.Response:
    headers = {"X-Darkroom-Seq": str(seq)} if seq is not None else None
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json",
                        headers=headers)
