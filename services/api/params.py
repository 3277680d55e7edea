"""Query parameters: each route's are a Struct, read through it and documented from it (OpenAPI)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from .deps import Deps
from .errors import error

Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]


class ReadYourWrites(msgspec.Struct, kw_only=True):
    """What every GET takes: wait until the read model has applied this stream sequence."""

    min_seq: Annotated[int, msgspec.Meta(ge=0)] | None = None


def query_of(request: web.Request, params: type):
    """The request's query as `params`, a Struct; a value that does not fit is a 400 that names it.
    An empty value means the default; parameters the route does not take are ignored."""
    values = {name: value for name, value in request.query.items() if value != ""}
    try:
        return msgspec.convert(values, params, strict=False)  # lax: `?limit=5`, `?overwrite=true`
    except msgspec.ValidationError as exc:
        raise error(400, f"invalid query: {exc}") from None


def maintenance_shown(d: Deps, asked: bool | None) -> bool:
    """`show_maintenance` as asked, else the server's default (ui.include_maintenance_jobs)."""
    return d.config.ui.include_maintenance_jobs if asked is None else asked
