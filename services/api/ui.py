"""The web UI: three pages, their static files (HTML, CSS, JavaScript modules; no build step) and the
few server settings the pages need. The pages themselves are public; the data they show comes from
`/api`, which the token guards."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from .deps import deps
from .errors import error, respond
from .routes import Routes

routes = Routes()

STATIC = (Path(__file__).parent / "static").resolve()
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Everything the pages load comes from this origin; nothing inline.
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


@routes.get("/", media="text/html")
async def projects_page(request: web.Request) -> web.StreamResponse:
    """The web UI: the projects."""
    return _file(STATIC / "index.html")


@routes.get("/projects/{folder}", media="text/html")
async def project_page(request: web.Request) -> web.StreamResponse:
    """The web UI: one project (its photos, culling, uploads and the Processes panel)."""
    return _file(STATIC / "project.html")


@routes.get("/operations", media="text/html")
async def operations_page(request: web.Request) -> web.StreamResponse:
    """The web UI: operations (lanes, failed tasks, dead letters, job counts)."""
    return _file(STATIC / "operations.html")


@routes.get("/static/{path:.+}", media="*/*")  # scripts, stylesheets, icons
async def static(request: web.Request) -> web.StreamResponse:
    """The web UI's stylesheet, scripts and icons."""
    path = (STATIC / request.match_info["path"]).resolve()
    if not path.is_relative_to(STATIC) or path.suffix not in TYPES or not path.is_file():
        raise error(404, f"no static file {request.match_info['path']!r}")
    return _file(path)


@routes.get("/api/ui-config")
async def ui_config(request: web.Request) -> web.Response:
    """The server settings the web UI follows: the default of show_maintenance, upload and trash limits."""
    config = deps(request).config
    return respond(
        {
            "include_maintenance_jobs": config.ui.include_maintenance_jobs,
            "max_upload_mb": config.api.max_upload_mb,
            "trash_ttl_s": config.maintenance.trash_ttl_s,
        }
    )


def _file(path: Path) -> web.StreamResponse:
    # `no-cache`: the browser revalidates (ETag) each time, so a new release is picked up at once.
    headers = {"Content-Type": TYPES[path.suffix], "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if path.suffix == ".html":
        headers["Content-Security-Policy"] = PAGE_POLICY
    return web.FileResponse(path, headers=headers)
