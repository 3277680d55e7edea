"""The project lifecycle in headless Chromium against real services (CONTRACT §7.4): select photos and
regenerate or move them, rename the project (the open page follows its folder), delete it (with a
confirmation) and restore it from the projects page; an upload whose photos live elsewhere moves them
here. Screenshots of each screen at 1440×900 and 390×844 go to tests/artifacts."""

from __future__ import annotations

import os
import re
import time
from urllib.parse import quote

from playwright.async_api import expect

from tests.browser.conftest import Tab, start
from tests.browser.test_ui import SLOW, all_thumbnails_loaded, card, project_url
from tests.conftest import PHOTOS, System, create_project, photo_bytes, upload


async def _shoot(system: System, name: str, n: int) -> dict:
    project = await create_project(system, name)
    files = [(p.name, p.read_bytes()) for p in sorted((PHOTOS / "orientation").glob("*.jpg"))[:n]]
    status, body = await upload(system, project["folder"], files)
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=60)
    return project


async def _tasks(system: System, folder: str, task_type: str) -> list[dict]:
    status, body, _ = await system.request("GET", f"/api/projects/{quote(folder)}/tasks?type={task_type}")
    assert status == 200, body
    return body["tasks"]


async def test_select_regenerate_move_rename_delete_and_restore_a_project(system: System, tab: Tab) -> None:
    await start(system, maintenance__trash_ttl_s=86_400)
    await _shoot(system, "Shoot", 4)
    archive = await create_project(system, "Archive")
    page = tab.page
    await page.goto(project_url(system, "Shoot"))
    await all_thumbnails_loaded(page, 4)

    # Select two photos (a click, and S on the card with the focus): the selection bar says so.
    await card(page, "landscape_1").get_by_label("Select landscape_1").check()
    await card(page, "landscape_2").focus()
    await page.keyboard.press("s")
    bar = page.locator("#selection-bar")
    await expect(bar.locator("#selected-count")).to_have_text("2 selected")
    await expect(card(page, "landscape_2")).to_have_class(re.compile(r"\bselected\b"))
    await tab.screens("lifecycle-selection")

    # Regenerate them: thumbnails and previews only.
    await bar.get_by_role("button", name="Regenerate").click()
    dialog = page.get_by_role("dialog", name="Regenerate")
    await expect(dialog).to_contain_text("Make these again for 2 selected photos")
    await tab.screens("lifecycle-regenerate-dialog")
    await dialog.get_by_label("Date, camera and size").uncheck()
    await dialog.get_by_role("button", name="Regenerate").click()
    await tab.wait_toasts("Regeneration completed", 1)
    [task] = await _tasks(system, "Shoot", "regenerate")
    status, view, _ = await system.request("GET", f"/api/tasks/{task['id']}")
    assert view["jobs"][0]["lane"] == "normal" and view["jobs"][0]["progress_total"] == 2
    await expect(bar).to_be_hidden()

    # Move one to Archive: it leaves this grid; Archive has it, with its thumbnail.
    await card(page, "landscape_3").get_by_label("Select landscape_3").check()
    await bar.get_by_role("button", name="Move to…").click()
    dialog = page.get_by_role("dialog", name="Move 1 photo")
    await expect(dialog.get_by_label("Project")).to_have_value("Archive")
    await tab.screens("lifecycle-move-dialog")
    await dialog.get_by_role("button", name="Move").click()
    await tab.wait_toasts("Moved 1 photo to “Archive”", 1, timeout=SLOW)
    await expect(card(page, "landscape_3")).to_have_count(0)
    status, moved, _ = await system.request("GET", f"/api/projects/{archive['folder']}/photos")
    assert [(p["filename"], p["thumbnail_status"]) for p in moved["photos"]] == [("landscape_3", "generated")]

    # Rename: the page follows the project into its new folder, thumbnails and all.
    await page.get_by_role("button", name="Project").click()
    await expect(page.get_by_role("menu", name="Project").get_by_role("menuitem")).to_have_text(
        ["Regenerate all…", "Rename…", "Delete project…"]
    )
    await tab.screens("lifecycle-project-menu")
    await page.get_by_role("menuitem", name="Rename…").click()
    dialog = page.get_by_role("dialog", name="Rename project")
    await dialog.get_by_label("Name").fill("Shoot: day one")
    await tab.screens("lifecycle-rename-dialog")
    await dialog.get_by_role("button", name="Rename").click()
    await tab.wait_toasts("Project renamed", 1)
    await expect(page).to_have_url(project_url(system, "Shoot day one"))
    await expect(page.locator("#project-name")).to_have_text("Shoot: day one")
    await all_thumbnails_loaded(page, 3)
    srcs = await page.locator("li.photo .thumb img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert all(src.startswith("/api/projects/Shoot%20day%20one/thumbnail/") for src in srcs), srcs
    await tab.screens("lifecycle-renamed")

    # Delete, after saying yes: the projects page, with Undo, and the project among the deleted ones.
    await page.get_by_role("button", name="Project").click()
    await page.get_by_role("menuitem", name="Delete project…").click()
    dialog = page.get_by_role("dialog", name="Delete “Shoot: day one”?")
    await expect(dialog).to_contain_text("The project and its 3 photos go to the trash")
    await expect(dialog).to_contain_text("restore it from the projects page for 24 h")
    await tab.screens("lifecycle-delete-dialog")
    await dialog.get_by_role("button", name="Delete project").click()
    await expect(page).to_have_url(f"{system.url}/", timeout=SLOW)
    await tab.wait_toasts("Deleted “Shoot: day one”", 1)
    deleted = page.locator("#deleted")
    await expect(deleted.locator("li")).to_have_count(1)
    await expect(deleted.locator("li")).to_contain_text("3 photos · restorable until")
    await expect(page.locator("#projects li.project")).to_have_count(1)  # Archive
    await tab.screens("lifecycle-deleted")

    # Restore: it is back, with its photos, and no longer among the deleted.
    await deleted.get_by_role("button", name="Restore Shoot: day one").click()
    await tab.wait_toasts("Project restored", 1)
    await expect(page.locator("#projects li.project")).to_have_count(2)
    await expect(deleted).to_be_hidden()
    status, got, _ = await system.request("GET", "/api/projects/Shoot day one")
    assert got["counts"]["photos"] == 3


async def test_projects_page_renames_deletes_and_shows_folders_it_could_not_adopt(system: System, tab: Tab) -> None:
    await start(system)
    await _shoot(system, "Dunes", 1)
    odd = system.data_dir / "projects" / "Odd: folder"
    odd.mkdir()
    past = time.time() - 3600
    os.utime(odd, (past, past))
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "projects_maintenance"})
    await system.wait_task(body["task"]["id"], timeout=30)
    page = tab.page
    await page.goto(f"{system.url}/")
    unadopted = page.locator("#unadopted")
    await expect(unadopted.locator("li")).to_contain_text("Odd: folder")
    await expect(unadopted.locator("li")).to_contain_text("rename the folder")

    await page.get_by_role("button", name="Rename Dunes").click()
    dialog = page.get_by_role("dialog", name="Rename project")
    await dialog.get_by_label("Name").fill("Dunes 2026")
    await dialog.get_by_role("button", name="Rename").click()
    await tab.wait_toasts("Project renamed", 1)
    await expect(page.locator('li.project[data-folder="Dunes 2026"]')).to_have_count(1)
    await tab.screens("lifecycle-projects")

    await page.get_by_role("button", name="Delete Dunes 2026").click()
    await page.get_by_role("dialog").get_by_role("button", name="Delete project").click()
    await tab.wait_toasts("Deleted “Dunes 2026”", 1)
    await expect(page.locator("li.project")).to_have_count(0)
    await page.locator(".toast").get_by_role("button", name="Undo").click()  # Undo restores it
    await expect(page.locator('li.project[data-folder="Dunes 2026"]')).to_have_count(1, timeout=SLOW)


async def test_an_upload_whose_photo_lives_elsewhere_can_move_it_here(system: System, tab: Tab) -> None:
    await start(system)
    here = await create_project(system, "Here")
    there = await create_project(system, "There")
    jpg = photo_bytes("cameras/Canon_40D.jpg")
    status, body = await upload(system, there["folder"], [("B1.jpg", jpg), ("B1.ARW", b"RAWDATA" * 500)])
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    page = tab.page
    await page.goto(project_url(system, here["folder"]))
    await page.wait_for_selector("body.ready")
    await page.locator("#file-input").set_input_files([{"name": "B1.jpg", "mimeType": "image/jpeg", "buffer": jpg}])
    panel = page.locator("li.upload")
    await expect(panel.locator(".conflict.elsewhere")).to_contain_text("1 file already in project “There”")
    await panel.get_by_label("Move these photos here, with all their files").check()
    await tab.screens("lifecycle-upload-move")
    await panel.get_by_role("button", name="Move here and send 1 file").click()
    await tab.wait_toasts("Upload processing completed", 1, timeout=SLOW)
    await expect(card(page, "B1").locator("img")).to_have_count(1, timeout=SLOW)
    await expect(card(page, "B1").get_by_label("Keep RAW")).to_be_checked()  # its RAW came along
    folder = system.data_dir / "projects"
    assert (folder / "Here" / "B1.ARW").is_file() and not (folder / "There" / "B1.jpg").exists()
