"""Thumbnails, previews and originals: correct types, ETags, immutable caching with `?v=`."""

from __future__ import annotations

import mimetypes
from pathlib import Path

import msgspec
from aiohttp import web

from ..kernel.folders import projects_root
from ..kernel.photos import derivative_names, kind_of, unsafe_name
from .deps import deps, project_of
from .errors import error
from .routes import Routes

routes = Routes()

CONTENT_TYPES = {"thumbnail": "image/webp", "preview": "image/jpeg"}
IMMUTABLE = "public, max-age=31536000, immutable"


class Version(msgspec.Struct, kw_only=True):
    v: str | None = None  # the photo's updated_at: the answer may be cached for good


@routes.get("/api/projects/{folder}/thumbnail/{filename}", query=Version, media="image/webp")
async def thumbnail(request: web.Request) -> web.StreamResponse:
    """A photo's thumbnail (WebP); 404 until it is generated."""
    return await _derivative(request, "thumbnail")


@routes.get("/api/projects/{folder}/preview/{filename}", query=Version, media="image/jpeg")
async def preview(request: web.Request) -> web.StreamResponse:
    """A photo's preview (JPEG); 404 until it is generated."""
    return await _derivative(request, "preview")


async def _derivative(request: web.Request, which: str) -> web.StreamResponse:
    project = await project_of(request)
    filename = request.match_info["filename"]
    photo = await deps(request).read.photo(project.id, filename)
    status = getattr(photo, f"{which}_status", None)
    if photo is None or status != "generated":
        raise error(404, f"no {which} for {filename!r}" + (f": it is {status}" if status else ""))
    names = derivative_names(filename)
    relative = names.thumbnail if which == "thumbnail" else names.preview
    path = projects_root(deps(request).data_dir) / project.folder / relative
    return _send(request, path, CONTENT_TYPES[which], f"{which} of {filename!r}")


@routes.get("/api/projects/{folder}/files/{name}", media="application/octet-stream")
async def original(request: web.Request) -> web.StreamResponse:
    """An original file, as uploaded."""
    project = await project_of(request)
    name = request.match_info["name"]
    if unsafe_name(name) or kind_of(name) is None:
        raise error(404, f"no file {name!r}")
    path = projects_root(deps(request).data_dir) / project.folder / name
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return _send(request, path, content_type, f"file {name!r}")


def _send(request: web.Request, path: Path, content_type: str, what: str) -> web.StreamResponse:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise error(404, f"{what} is not on disk") from None
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {
        "ETag": etag,
        "Cache-Control": IMMUTABLE if "v" in request.query else "no-cache",
        "Content-Type": content_type,
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.FileResponse(path, headers=headers)
