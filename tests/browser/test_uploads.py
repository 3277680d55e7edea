"""Uploading as one operation, in headless Chromium against real services: 300 files in one panel with
progress, speed and time left, and one toast; the conflict step before sending; a connection that drops
half-way and resumes with what had not landed. Screenshots at 1440×900 and 390×844 in tests/artifacts."""

from __future__ import annotations

import collections
import re

from playwright.async_api import expect

from tests.browser.conftest import Tab, small_jpegs, start
from tests.browser.proxy import Proxy
from tests.browser.test_ui import SLOW, card, project_url
from tests.conftest import System, create_project, eventually, photo_bytes, upload

# The upload panel's lines as they change, kept after the panel has moved on.
RECORD_PANEL = """
window.__panel = [];
new MutationObserver(() => {
  const meta = document.querySelector('li.upload .upload-meta')?.textContent;
  if (meta && window.__panel.at(-1) !== meta) window.__panel.push(meta);
}).observe(document, { childList: true, subtree: true, characterData: true });
"""


async def test_three_hundred_files_are_one_upload_with_one_panel_and_one_toast(system: System, tab: Tab) -> None:
    await start(system)
    project = await create_project(system, "Three hundred")
    page = tab.page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.method == "POST" and r.url.endswith("/upload") else None)
    await page.add_init_script(RECORD_PANEL)
    await page.goto(project_url(system, project["folder"]))
    await expect(page.locator("body.ready")).to_have_count(1)
    # A slow uplink (640 kbit/s), so the panel has time to show speed and time left.
    cdp = await page.context.new_cdp_session(page)
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 80_000},
    )
    files = small_jpegs(300)
    await page.locator("#file-input").set_input_files(files)

    panel = page.get_by_role("list", name="Uploads").locator("li.upload")
    await expect(panel.locator("strong")).to_have_text("Uploading 300 files")
    await expect(panel.locator(".upload-meta")).to_have_text(re.compile(r"KB of .* · .*/s · .* left"), timeout=SLOW)
    await tab.screens("upload-progress")
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    await expect(panel.locator("strong")).to_have_text("300 files uploaded", timeout=SLOW)
    await page.get_by_role("button", name="Processes").click()
    group = page.locator("#processes li.task.group")
    await expect(group).to_have_count(1)  # the selection's requests are one card
    await expect(group.locator("h3")).to_have_text("Upload · 300 files")
    await tab.wait_toasts("Upload processing completed", 1, timeout=120_000)
    await expect(group.locator("li.job .count").first).to_have_text("300/300")
    await expect(group.locator(".task-head .status")).to_have_text("completed")
    await tab.screens("processes-upload")
    await page.keyboard.press("Escape")

    await expect(page.locator("li.photo")).to_have_count(300)
    await expect(page.locator("#photo-count")).to_have_text("300 photos")
    assert len(requests) > 1  # in several requests, shown as one
    most = await tab.most()
    assert most["uploads"] == 1 and most["toasts"] <= 3, most
    assert (await tab.toasts()).count("Upload processing completed") == 1
    assert any(re.search(r"/s · .* left", line) for line in await page.evaluate("window.__panel"))
    await expect(page.locator(".toast").filter(has_text="Upload processing completed")).to_contain_text("300 files")
    await panel.get_by_role("button", name="Show them").click()
    await expect(page.get_by_label("Sort by")).to_have_value("recent")
    await tab.screens("upload-done")


async def test_the_conflict_step_skips_the_identical_asks_about_the_different_and_names_the_other_project(
    system: System, tab: Tab
) -> None:
    await start(system)
    here = await create_project(system, "Here")
    there = await create_project(system, "There")
    first, other = photo_bytes("cameras/Canon_40D.jpg"), photo_bytes("cameras/Nikon_D70.jpg")
    status, body = await upload(system, here["folder"], [("A1.jpg", first), ("A2.jpg", first)])
    assert status == 201, body
    status, body = await upload(system, there["folder"], [("B1.jpg", other)])
    assert status == 201, body
    page = tab.page
    await page.goto(project_url(system, here["folder"]))
    await expect(card(page, "A2").locator("img")).to_have_count(1, timeout=SLOW)
    new = small_jpegs(2, prefix="N")
    await page.locator("#file-input").set_input_files(
        [
            {"name": "A1.jpg", "mimeType": "image/jpeg", "buffer": first},  # identical: skipped
            {"name": "A2.jpg", "mimeType": "image/jpeg", "buffer": other},  # different: asked
            {"name": "B1.jpg", "mimeType": "image/jpeg", "buffer": other},  # lives in There
            *new,
        ]
    )

    panel = page.locator("li.upload")
    await expect(panel.locator("strong")).to_have_text("Before uploading")
    await expect(panel).to_contain_text("2 new files will be uploaded. 1 file already here is skipped.")
    await expect(panel.locator(".conflict.different")).to_contain_text(
        "1 file differs from the one here with the same name"
    )
    await expect(panel.locator(".conflict.elsewhere")).to_contain_text("1 file already in project “There”")
    await expect(panel.locator(".conflict.elsewhere")).to_contain_text("B1.jpg")
    await expect(panel.get_by_role("button", name="Send 2 files")).to_be_visible()
    await tab.screens("upload-conflicts")
    await panel.get_by_label("Replace A2.jpg").check()
    await panel.get_by_role("button", name="Send 3 files").click()

    await expect(panel.locator("strong")).to_have_text("3 files uploaded, 2 skipped", timeout=SLOW)
    await expect(panel.locator(".file-errors")).to_contain_text("B1.jpg: lives in project “There”")
    await tab.wait_toasts("Upload processing completed", 1)
    folder = system.data_dir / "projects" / here["folder"]
    assert (folder / "A2.jpg").read_bytes() == other  # replaced
    assert (folder / ".trash" / "A2.jpg").read_bytes() == first  # the one it replaced, in the trash
    assert not (folder / "B1.jpg").exists()
    await expect(page.get_by_role("button", name="Trash")).to_contain_text("1")
    await expect(card(page, "A2")).to_contain_text("NIKON D70")
    assert (await tab.toasts()).count("Upload processing completed") == 1


async def test_an_upload_resumes_after_the_connection_drops_and_sends_only_what_had_not_landed(
    system: System, tab: Tab
) -> None:
    await start(system)
    project = await create_project(system, "Resume")
    proxy = await Proxy(int(system.url.rsplit(":", 1)[1])).start()
    page = tab.page
    tab.expected += ["ERR_CONNECTION_RESET", "ERR_EMPTY_RESPONSE", "ERR_CONNECTION_CLOSED", "Failed to load resource"]
    failed: set[str] = set()

    async def first_try_fails(route) -> None:
        """Every thumbnail's first load breaks off, as loads do when a network goes away."""
        if route.request.url in failed:
            await route.continue_()
        else:
            failed.add(route.request.url)
            await route.abort("connectionreset")

    await page.route("**/thumbnail/**", first_try_fails)
    try:
        await page.goto(f"{proxy.url}/projects/{project['folder']}")
        await expect(page.locator("body.ready")).to_have_count(1)
        files = small_jpegs(120, prefix="R")
        # The network goes away half-way through the second request of the upload, once the api has
        # saved what arrived before.
        proxy.hold_after(b"/upload HTTP/1.1\r\n", nth=2, then=sum(len(f["buffer"]) + 200 for f in files[50:75]))
        await page.locator("#file-input").set_input_files(files)
        await proxy.held.wait()
        saved = system.data_dir / "projects" / project["folder"]

        async def some_saved() -> bool:
            return (saved / "R0060.jpg").exists()

        await eventually(some_saved, 15, "the api to save the first files of the second request")
        proxy.cut()
        panel = page.locator("li.upload")
        await expect(panel.locator(".upload-meta")).to_contain_text("Connection lost", timeout=SLOW)
        await expect(page.locator("#connection")).to_have_text("Reconnecting…")
        await expect(panel).to_have_attribute("data-state", "waiting")
        await tab.screens("upload-connection-lost")

        async def tried_again() -> bool:
            return proxy.dropped > 0

        await eventually(tried_again, 15, "the page to try again while the network is away")
        proxy.restore()
        await expect(panel.locator("strong")).to_have_text("120 files uploaded", timeout=SLOW)
        await expect(page.locator("#connection")).to_be_hidden(timeout=SLOW)
        await tab.wait_toasts("Upload processing completed", 1, timeout=90_000)
        # Thumbnails whose load broke off are loaded again: none stays "failed".
        await expect(page.locator("li.photo .thumb img")).to_have_count(120, timeout=SLOW)
        await page.get_by_role("button", name="Processes").click()
        # The request cut off still started a task for what had landed: it is counted with the rest.
        await expect(page.locator("#processes li.task")).to_have_count(1)
        await expect(page.locator("#processes li.task.group li.job .count").first).to_have_text("120/120")
        assert (await tab.toasts()).count("Upload processing completed") == 1
    finally:
        await proxy.close()

    # Every file arrived once: what had landed before the drop was not sent again.
    added = collections.Counter(
        e["name"] for _, _, e in await system.log("darkroom.photo.>") if e["type"] == "photo.file_added"
    )
    assert sorted(added) == sorted(f["name"] for f in files) and set(added.values()) == {1}, added
    status, body, _ = await system.request("GET", f"/api/projects/{project['folder']}")
    assert body["project"]["photo_count"] == 120
    # Four tasks: the request cut off started one for what it had saved (the page counted it with the
    # selection), and the one sent again after the drop carried only the rest of its files.
    sizes = [len(e["items"]) for _, _, e in await system.log("darkroom.task.>") if e["type"] == "task.requested"]
    assert len(sizes) == 4 and sizes[0] == 50 and 0 < sizes[1] < 50 and sizes[1] + sizes[2] == 50, sizes
