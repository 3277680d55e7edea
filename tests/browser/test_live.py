"""The web UI keeps up without a reload: the projects page, an upload with per-file errors,
drag-and-drop, Cancel and failure toasts, and a dropped connection that resumes where it stopped."""

from __future__ import annotations

import base64
from urllib.parse import quote

from playwright.async_api import expect

from darkroom.kernel.definitions import TaskDefinition
from darkroom.kernel.events import PhotoKeepChanged, Step
from darkroom.kernel.natsd import free_port
from tests.browser.conftest import Tab, start
from tests.browser.test_ui import SLOW, all_thumbnails_loaded, card, project_url
from tests.conftest import PHOTOS, System, create_project, photo_bytes, upload
from tests.jobtypes import JOB_TYPES

EXTRA = {
    "slow_items": TaskDefinition(
        label="Slow items", user_relevant=True, steps=[Step(type="items", priority=90), Step(type="noop", priority=90)]
    ),
    "doomed": TaskDefinition(
        label="Doomed", user_relevant=True, steps=[Step(type="noop", priority=90), Step(type="fail", priority=90)]
    ),
}


async def test_projects_page_creates_a_project_and_follows_its_counts(system: System, tab: Tab) -> None:
    await start(system)
    page = tab.page
    await page.goto(system.url + "/")
    await expect(page.get_by_text("No projects yet")).to_be_visible()
    await page.get_by_label("Name").fill("Wedding 2026")
    await page.get_by_role("button", name="Create project").click()
    await page.wait_for_url("**/projects/Wedding%202026")
    await expect(page.locator("#project-name")).to_have_text("Wedding 2026")
    await page.locator("#file-input").set_input_files(
        [PHOTOS / "cameras" / "Canon_40D.jpg", PHOTOS / "cameras" / "Nikon_D70.jpg"]
    )
    await all_thumbnails_loaded(page, 2)

    await page.get_by_role("link", name="Darkroom").click()
    wedding = page.locator('li.project[data-folder="Wedding 2026"]')
    await expect(wedding).to_contain_text("2 photos")
    await expect(wedding).to_contain_text("0 pending")
    status, body, _ = await system.request(
        "PUT",
        f"/api/projects/{quote('Wedding 2026')}/keep",
        {"updates": [{"filename": "Canon_40D", "keep_jpg": False}]},
    )
    assert status == 200, body
    await expect(wedding).to_contain_text("1 pending")  # live
    await expect(wedding).to_contain_text("1 JPG · 0 RAW")
    await tab.screens("projects-page")


async def test_a_selection_is_one_upload_with_per_file_errors(system: System, tab: Tab) -> None:
    await start(system)
    project = await create_project(system, "Batches")
    page = tab.page
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST" and r.url.endswith("/upload") else None)
    await page.goto(project_url(system, project["folder"]))
    await expect(page.locator("body.ready")).to_have_count(1)
    photos = sorted((PHOTOS / "orientation").glob("*.jpg")) + sorted((PHOTOS / "cameras").glob("*.jpg"))
    assert len(photos) == 22
    files = [{"name": p.name, "mimeType": "image/jpeg", "buffer": p.read_bytes()} for p in photos]
    files.append({"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": b"this is no JPEG at all"})
    files.append({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"shot list"})
    await page.locator("#file-input").set_input_files(files)

    uploads_panel = page.get_by_role("list", name="Uploads")
    await expect(uploads_panel).to_contain_text("notes.txt: not an accepted photo file")  # never sent
    await expect(uploads_panel).to_contain_text("fake.jpg:", timeout=SLOW)  # refused by the server
    await expect(uploads_panel).to_contain_text("22 files uploaded, 2 refused", timeout=SLOW)
    await tab.wait_toasts("Upload processing completed", 1)
    assert len(uploads) == 1  # 23 files sent: one request, one task, one toast
    await expect(page.locator("li.photo")).to_have_count(22)
    await expect(page.locator("#photo-count")).to_have_text("22 photos")
    await expect(page.locator("li.photo .placeholder")).to_have_count(0, timeout=SLOW)
    assert (await tab.toasts()).count("Upload processing completed") == 1  # once per selection, never again


async def test_dropping_files_on_the_page_uploads_them(system: System, tab: Tab) -> None:
    await start(system)
    project = await create_project(system, "Dropped")
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await expect(page.locator("body.ready")).to_have_count(1)
    data = base64.b64encode(photo_bytes("cameras/Pentax_K10D.jpg")).decode()
    transfer = await page.evaluate_handle(
        """data => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], 'IMGP0001.JPG', { type: 'image/jpeg' }));
        return transfer; }""",
        data,
    )
    await page.dispatch_event("body", "dragenter", {"dataTransfer": transfer})
    await expect(page.locator("body.dragging")).to_have_count(1)
    await page.dispatch_event("body", "drop", {"dataTransfer": transfer})
    await expect(page.locator("body.dragging")).to_have_count(0)
    await all_thumbnails_loaded(page, 1)
    await expect(card(page, "IMGP0001")).to_contain_text("PENTAX K10D")


async def test_cancel_stops_a_running_task_and_a_failure_says_why(system: System, tab: Tab) -> None:
    await start(system, definitions=EXTRA, job_types=JOB_TYPES)
    project = await create_project(system, "Tasks")
    folder = quote(project["folder"])
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await page.get_by_role("button", name="Processes").click()
    status, body, _ = await system.request(
        "POST", f"/api/projects/{folder}/tasks", {"type": "slow_items", "items": [str(i) for i in range(300)]}
    )
    assert status == 202, body
    task = page.locator(f'li.task[data-task-id="{body["task"]["id"]}"]')
    await expect(task.locator(".task-head .status")).to_have_text("running")
    await expect(task.locator("li.job .status")).to_have_text(["running", "waiting"])
    await expect(task.locator("li.job .count").first).to_contain_text("/300")  # progress, live
    await expect(page.locator("#processes-button .badge")).to_have_text("1")
    await task.get_by_role("button", name="Cancel").click()
    await expect(task.locator(".task-head .status")).to_have_text("canceled", timeout=SLOW)
    await expect(task.get_by_role("button", name="Cancel")).to_have_count(0)
    await expect(page.get_by_text("Slow items canceled")).to_be_visible()
    await expect(page.locator("#processes-button .badge")).to_be_hidden()

    status, body, _ = await system.request("POST", f"/api/projects/{folder}/tasks", {"type": "doomed"})
    assert status == 202, body
    toast = page.get_by_role("alert").filter(has_text="Doomed failed")
    await expect(toast).to_be_visible(timeout=SLOW)
    await expect(toast).to_contain_text("this step always fails")
    doomed = page.locator(f'li.task[data-task-id="{body["task"]["id"]}"]')
    await expect(doomed.locator(".task-head .status")).to_have_text("failed")
    await expect(doomed.locator("li.job .status")).to_have_text(["completed", "failed"])


async def test_a_dropped_connection_says_reconnecting_and_resumes_without_missing_anything(
    system: System, tab: Tab
) -> None:
    await start(system, roles=("projector", "orchestrator", "worker"))
    port = free_port()
    api = await start(system, roles=("api",), api__port=port)
    project = await create_project(system, "Resume")
    status, body = await upload(
        system,
        project["folder"],
        [
            ("R1.jpg", photo_bytes("cameras/Canon_40D.jpg")),
            ("R2.jpg", photo_bytes("cameras/Nikon_D70.jpg")),
            ("R3.jpg", photo_bytes("cameras/Pentax_K10D.jpg")),
        ],
    )
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=45)
    page = tab.page
    tab.expected.append("ERR_CONNECTION_REFUSED")  # the browser logs its tries while the api is away
    refetches: list[str] = []
    page.on("request", lambda r: refetches.append(r.url) if "/photos?" in r.url else None)
    await page.goto(project_url(system, project["folder"]))
    await all_thumbnails_loaded(page, 3)
    await expect(page.locator("#connection")).to_be_hidden()

    async def away_while(filename: str):
        """Stop the api, change a keep flag straight on the bus meanwhile, start the api again."""
        nonlocal api
        await api.stop()
        await expect(page.locator("#connection")).to_have_text("Reconnecting…", timeout=SLOW)
        assert system.bus is not None
        await system.bus.publish(
            PhotoKeepChanged(project_id=project["project_id"], source="user", filename=filename, keep_jpg=False)
        )
        api = await start(system, roles=("api",), api__port=port)
        await expect(page.locator("#connection")).to_be_hidden(timeout=SLOW)

    # No message seen yet, so no id to resume from: the page refetches when it is back.
    await away_while("R1")
    await expect(page.locator("#pending-count")).to_have_text("1 pending")
    await expect(card(page, "R1").get_by_label("Keep JPG")).not_to_be_checked()
    assert len(refetches) == 2

    # With messages seen, the browser resumes from Last-Event-ID: what happened meanwhile arrives, no refetch.
    status, body, _ = await system.request(
        "PUT", f"/api/projects/{project['folder']}/keep", {"updates": [{"filename": "R3", "keep_jpg": False}]}
    )
    assert status == 200, body
    await expect(page.locator("#pending-count")).to_have_text("2 pending")
    await away_while("R2")
    await expect(page.locator("#pending-count")).to_have_text("3 pending")
    await expect(card(page, "R2").get_by_label("Keep JPG")).not_to_be_checked()
    assert len(refetches) == 2
    await expect(card(page, "R2").locator("img")).to_have_count(1)  # the page was never reloaded
