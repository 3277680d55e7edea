"""A page of another origin on the same host, in the same browser as a signed-in Darkroom page,
cannot make Darkroom act: Chromium sends the SameSite=Strict cookie along (same site), the
server turns the request away."""

from __future__ import annotations

from typing import AsyncIterator

import pytest
from aiohttp import web
from playwright.async_api import expect

from darkroom.kernel.natsd import free_port
from tests.browser.conftest import Tab, start
from tests.conftest import System

TOKEN = "darkroom-secret"

# What another page may send without asking the server first: a text/plain fetch and a form.
FORGING_PAGE = """<!doctype html><title>other</title>
<form id="form" method="post" action="{darkroom}/api/projects" enctype="text/plain">
  <input type="hidden" name='{{"name": "Forged by a form' value='"}}'>
</form>
<script>
fetch("{darkroom}/api/projects", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}, body: '{{"name": "Forged by fetch"}}'}})
  .then(() => document.title = "sent");
</script>"""


@pytest.fixture
async def other_origin(system: System) -> AsyncIterator[str]:
    async def forging_page(_request: web.Request) -> web.Response:
        return web.Response(text=FORGING_PAGE.format(darkroom=system.url), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", forging_page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _projects(system: System) -> list[str]:
    _, body, _ = await system.request("GET", "/api/projects", headers={"Authorization": f"Bearer {TOKEN}"})
    return sorted(p["name"] for p in body["projects"])


async def test_a_page_of_another_origin_cannot_post_with_the_session_cookie(
    system: System, tab: Tab, other_origin: str
) -> None:
    await start(system, api__token=TOKEN)
    page = tab.page
    tab.expected.append("status of 401")  # the browser logs the answer that makes the page ask
    await page.goto(system.url + "/")
    dialog = page.get_by_role("dialog", name="Sign in")
    await dialog.get_by_label("Token").fill(TOKEN)
    await dialog.get_by_role("button", name="Sign in").click()
    await expect(dialog).to_have_count(0)
    # The signed-in browser works from Darkroom's own origin.
    assert (
        await page.evaluate("""async () => (await fetch('/api/projects', {method: 'POST',
        headers: {'Content-Type': 'application/json'}, body: '{"name": "Mine"}'})).status""")
        == 201
    )

    other = await page.context.new_page()
    async with other.expect_navigation(url=f"{system.url}/api/projects"):
        await other.goto(other_origin)
        await other.wait_for_function("document.title === 'sent'")
        await other.evaluate("document.getElementById('form').submit()")
    assert await _projects(system) == ["Mine"]
    assert "cross-origin request refused" in await other.content()
