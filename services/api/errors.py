"""JSON errors everywhere: `{"error": "<what is wrong>"}` with the right status."""

from __future__ import annotations

import errno
import logging
from typing import Mapping

import msgspec
import nats.errors
from aiohttp import hdrs, web

from ..kernel.publish import PublishError

log = logging.getLogger("darkroom.api")

MAX_BODY = 1 << 20  # a JSON request body; uploads stream and have their own limit


class ApiError(web.HTTPError):
    """An error answer: any status, the body `{"error": message}`."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status  # aiohttp's own classes fix it per class, some with required arguments
        super().__init__(
            text=msgspec.json.encode({"error": message}).decode(), content_type="application/json", headers=headers
        )


def error(status: int, message: str) -> ApiError:
    return ApiError(status, message)


def _message(request: web.Request, exc: web.HTTPException) -> str:
    """What aiohttp's own exceptions mean, said to the client."""
    if exc.status == 404:
        return f"no route {request.method} {request.path}"
    if exc.status == 405:
        return f"{request.method} is not allowed on {request.path}; allowed: {exc.headers.get(hdrs.ALLOW, 'none')}"
    if exc.status == 413:
        return f"request body is larger than {MAX_BODY >> 20} MiB"
    return exc.reason


@web.middleware
async def json_errors(request: web.Request, handler):
    """The one error path: whatever a handler raises leaves as JSON with a status a client can read."""
    try:
        return await handler(request)
    except ApiError:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        allow: dict[str, str] | None = {hdrs.ALLOW: exc.headers[hdrs.ALLOW]} if hdrs.ALLOW in exc.headers else None
        raise ApiError(exc.status, _message(request, exc), allow) from None
    except (nats.errors.Error, PublishError) as exc:
        log.warning("%s %s: the event log did not answer: %s", request.method, request.path, exc)
        raise error(503, f"the event log (NATS) is not answering: {exc}") from None
    except ConnectionResetError:
        log.warning("%s %s: the client went away before the request was whole", request.method, request.path)
        raise error(400, "the request ended before it was whole") from None
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            log.warning("%s %s: the disk is full", request.method, request.path)
            raise error(507, "the disk is full") from None
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
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json", headers=headers)
