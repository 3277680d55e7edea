"""Requests a browser sends on the user's behalf must come from Darkroom's own pages: another site
(or another port on the same host) cannot post with the user's session cookie. A bearer token is
never sent by a browser on its own, so requests that carry one are not checked."""

from __future__ import annotations

from typing import Mapping
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from .errors import error
from .routes import described

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = "application/json"
MULTIPART = "multipart/form-data"
CORS_SAFELISTED = frozenset({"application/x-www-form-urlencoded", MULTIPART, "text/plain"})


def cross_origin(headers: Mapping[str, str], host: str) -> str | None:
    """Why a request is not from a page of `host` (None when it is, or no browser says otherwise)."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None:  # what the browser itself found; a proxy's Host rewriting does not matter
        return None if site in ("same-origin", "none") else f"Sec-Fetch-Site is {site}"
    origin = headers.get(hdrs.ORIGIN)
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return f"Origin {origin} is not {host}"
    return None


def wrong_body(content_type: str | None, has_body: bool, multipart: bool) -> str | None:
    """Why a cookie-authenticated request's body is refused. Darkroom's pages send JSON (multipart to
    upload); a form, or another site's script that does not ask first (CORS), can send only the
    three safelisted types: those are refused even when empty. No body and no such type passes."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    wanted = (JSON, MULTIPART) if multipart else (JSON,)
    if kind in wanted or (not has_body and kind not in CORS_SAFELISTED):
        return None
    return f"the body must be {' or '.join(wanted)}, not {content_type or 'untyped'}"


def same_origin(session_cookie: str):
    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.method in SAFE_METHODS or hdrs.AUTHORIZATION in request.headers:
            return await handler(request)
        why = cross_origin(request.headers, request.host)
        if why is not None:
            raise error(403, f"cross-origin request refused: {why}")
        if session_cookie in request.cookies:
            multipart = described(request).form is not None  # the upload
            why = wrong_body(request.headers.get(hdrs.CONTENT_TYPE), request.body_exists, multipart)
            if why is not None:
                raise error(415, why)
        return await handler(request)

    return middleware
