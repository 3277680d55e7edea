"""The web UI's routes: pages and static files for anyone, settings behind the token, nothing else."""

from __future__ import annotations

from tests.conftest import System


async def test_pages_and_static_files_are_served_with_their_types(system: System) -> None:
    await system.start(ui__include_maintenance_jobs=True)
    for path, kind in (
        ("/", "text/html"),
        ("/projects/Any%20folder", "text/html"),
        ("/static/project.js", "text/javascript"),
        ("/static/style.css", "text/css"),
        ("/static/favicon.svg", "image/svg+xml"),
    ):
        status, body, headers = await system.request("GET", path)
        assert status == 200, (path, body)
        assert headers["Content-Type"].startswith(kind) and headers["Cache-Control"] == "no-cache", (path, headers)
    _, page, headers = await system.request("GET", "/projects/x")
    assert (
        '<script type="module" src="/static/project.js">' in page
        and "default-src 'self'" in headers["Content-Security-Policy"]
    )
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/nope.js", "/static/", "/static/x.py"):
        status, body, _ = await system.request("GET", path)
        assert status == 404, (path, body)
    status, body, _ = await system.request("GET", "/api/ui-config")
    assert status == 200 and body == {"include_maintenance_jobs": True, "max_upload_mb": 200, "trash_ttl_s": 86400}


async def test_with_a_token_the_pages_load_and_the_settings_need_it(system: System) -> None:
    await system.start(api__token="t0ken")
    status, _, _ = await system.request("GET", "/")
    assert status == 200
    status, body, _ = await system.request("GET", "/api/ui-config")
    assert status == 401 and "token" in body["error"]
    status, body, _ = await system.request("GET", "/api/ui-config", headers={"Authorization": "Bearer t0ken"})
    assert status == 200 and body["include_maintenance_jobs"] is False
