"""The web UI in headless Chromium against real services: upload, cull, commit, Processes, sign-in.
Everything happens without a reload: each test loads its page once and watches it change."""

from __future__ import annotations

import re
from urllib.parse import quote

from playwright.async_api import Page, expect

from tests.browser.conftest import Tab, start
from tests.conftest import PHOTOS, System, create_project, photo_bytes, upload

SLOW = 45_000  # ms: image work on a busy two-core machine


def project_url(system: System, folder: str) -> str:
    return f"{system.url}/projects/{quote(folder)}"


def card(page: Page, filename: str):
    return page.locator(f'li.photo[data-filename="{filename}"]')


async def all_thumbnails_loaded(page: Page, n: int) -> None:
    await expect(page.locator("li.photo .thumb img")).to_have_count(n, timeout=SLOW)
    await page.wait_for_function(
        """n => { const imgs = [...document.querySelectorAll('li.photo .thumb img')];
                  return imgs.length === n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        arg=n,
        timeout=SLOW,
    )


async def test_uploading_three_photos_shows_their_thumbnails_and_one_toast(system: System, tab: Tab) -> None:
    await start(system)
    project = await create_project(system, "Beach shoot")
    page = tab.page
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "POST" and r.url.endswith("/upload") else None)
    await page.goto(project_url(system, project["folder"]))
    await expect(page.locator("#project-name")).to_have_text("Beach shoot")
    await expect(page.locator("body.ready")).to_have_count(1)

    files = [PHOTOS / "cameras" / name for name in ("Canon_40D.jpg", "Nikon_D70.jpg", "DSCN0010.jpg")]
    await page.locator("#file-input").set_input_files(files)

    await all_thumbnails_loaded(page, 3)
    await tab.wait_toasts("Upload processing completed", 1)
    assert len(uploads) == 1  # one request, so one task and one toast for the selection
    for name in ("Canon_40D", "Nikon_D70", "DSCN0010"):
        src = await card(page, name).locator("img").get_attribute("src")
        assert re.fullmatch(rf"/api/projects/Beach%20shoot/thumbnail/{name}\?v=\d{{4}}-\d\d-\d\dT.+", src), src
        await expect(card(page, name).locator("img")).to_have_attribute("loading", "lazy")
        await expect(card(page, name).get_by_label("Keep JPG")).to_be_checked()
    await expect(page.locator("#photo-count")).to_have_text("3 photos")
    await expect(page.locator("#pending-count")).to_have_text("0 pending")
    await tab.screens("upload", full_page=True)
    assert await tab.toasts() == ["Upload processing completed"]


async def test_cull_and_commit_update_the_page_live_and_the_processes_panel_shows_the_steps(
    system: System, tab: Tab
) -> None:
    await start(system)
    project = await create_project(system, "Cull")
    status, body = await upload(
        system,
        project["folder"],
        [
            ("DSC01.JPG", photo_bytes("cameras/Canon_40D.jpg")),
            ("DSC01.ARW", b"RAWDATA" * 500),
            ("DSC02.JPG", photo_bytes("cameras/Nikon_D70.jpg")),
            ("DSC03.JPG", photo_bytes("cameras/Pentax_K10D.jpg")),
            ("DSC03.ARW", b"RAWDATA" * 501),
        ],
    )
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=45)
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await all_thumbnails_loaded(page, 3)
    await expect(page.locator("#pending-count")).to_have_text("0 pending")
    await expect(page.get_by_role("button", name="Commit")).to_be_disabled()

    # Un-keep the JPG of DSC01 (its RAW stays) and the only file of DSC02.
    await card(page, "DSC01").get_by_label("Keep JPG").uncheck()
    await expect(page.locator("#pending-count")).to_have_text("1 pending")
    await expect(page.locator("#pending-jpg")).to_have_text("1 JPG")
    await card(page, "DSC02").get_by_label("Keep JPG").uncheck()
    await expect(page.locator("#pending-count")).to_have_text("2 pending")
    await expect(page.locator("#pending-jpg")).to_have_text("2 JPG")
    await expect(page.locator("#pending-raw")).to_have_text("0 RAW")
    # Revert brings everything back; un-keep again.
    await page.get_by_role("button", name="Revert").click()
    await expect(page.locator("#pending-count")).to_have_text("0 pending")
    await expect(card(page, "DSC01").get_by_label("Keep JPG")).to_be_checked()
    await card(page, "DSC01").get_by_label("Keep JPG").uncheck()
    await card(page, "DSC02").get_by_label("Keep JPG").uncheck()
    await expect(page.locator("#pending-count")).to_have_text("2 pending")
    await tab.screens("project-page", full_page=True)

    await page.get_by_role("button", name="Commit").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("2 JPG files and 0 RAW files of 2 photos will be moved to the project's trash")
    await dialog.get_by_role("button", name="Commit").click()

    await expect(card(page, "DSC01").locator(".placeholder")).to_be_visible(timeout=SLOW)
    await expect(card(page, "DSC01").locator("img")).to_have_count(0)
    await expect(card(page, "DSC01").get_by_label("Keep RAW")).to_be_checked()
    await expect(card(page, "DSC01").get_by_label("Keep JPG")).to_have_count(0)
    await expect(card(page, "DSC02")).to_have_count(0)  # its only file went: the photo is gone
    await tab.wait_toasts("Files removed", 1)
    await expect(page.locator("#pending-count")).to_have_text("0 pending")
    await expect(page.locator("#photo-count")).to_have_text("2 photos")
    await tab.screens("project-page-committed", full_page=True)

    await page.get_by_role("button", name="Processes").click()
    panel = page.locator("#processes")
    commit = panel.locator('li.task[data-type="change_commit"]')
    await expect(commit).to_have_count(1)
    await expect(commit.locator("h3")).to_have_text("Commit · 2 photos")
    await expect(commit.locator(".task-head .status")).to_have_text("completed", timeout=SLOW)
    jobs = commit.locator("li.job")
    await expect(jobs.locator(".job-type")).to_have_text(  # in plain words, the job type in the tooltip
        ["Moving to the trash", "Checking the project file", "Checking the folder", "Tidying the records"]
    )
    await expect(jobs.first).to_have_attribute("title", "file_removal")
    await expect(jobs.locator(".status")).to_have_text(["completed"] * 4)
    await expect(jobs.locator(".count").first).to_have_text("2/2")
    await expect(commit).not_to_contain_text("attempt")
    await expect(panel.locator('li.task[data-type="upload_postprocess"]').first).to_be_visible()
    await expect(panel.get_by_label("Show maintenance")).not_to_be_checked()
    await tab.screens("processes-panel")
    toasts = await tab.toasts()
    assert toasts.count("Files removed") == 1 and "Upload processing completed" not in toasts, toasts


async def test_show_maintenance_reveals_maintenance_work_hidden_without_it(system: System, tab: Tab) -> None:
    await start(system)
    project = await create_project(system, "Sweep")
    folder = project["folder"]
    page = tab.page
    await page.goto(project_url(system, folder))
    await expect(page.locator("body.ready")).to_have_count(1)
    await page.get_by_role("button", name="Processes").click()
    panel = page.locator("#processes")
    await expect(panel.get_by_text("No tasks yet.")).to_be_visible()

    status, body, _ = await system.request("POST", f"/api/projects/{quote(folder)}/tasks", {"type": "maintenance"})
    assert status == 202 and body["task"]["source"] == "user" and not body["task"]["user_relevant"], body
    sweep = body["task"]["id"]
    await system.wait_task(sweep, timeout=45)
    # A user task after it: once the panel shows that one live, it has seen everything before it.
    status, body = await upload(system, folder, [("S1.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    assert status == 201, body
    await expect(panel.locator(f'li.task[data-task-id="{body["task_id"]}"]')).to_be_visible()
    await expect(panel.locator(f'li.task[data-task-id="{sweep}"]')).to_have_count(0)
    await expect(panel.locator('li.task[data-type="maintenance"]')).to_have_count(0)

    await panel.get_by_label("Show maintenance").check()
    maintenance = panel.locator(f'li.task[data-task-id="{sweep}"]')
    await expect(maintenance).to_be_visible()
    await expect(maintenance.locator("h3")).to_have_text("Maintenance")
    await expect(maintenance.locator(".tag")).to_have_text("maintenance")
    await expect(maintenance.locator("li.job .job-type")).to_have_text(
        [
            "Emptying old trash",
            "Checking the project file",
            "Checking the folder",
            "Tidying the records",
            "Checking thumbnails and previews",
        ]
    )
    # Live too: the stream was reopened with show_maintenance=true.
    status, body, _ = await system.request("POST", f"/api/projects/{quote(folder)}/tasks", {"type": "maintenance"})
    assert status == 202, body
    await expect(panel.locator(f'li.task[data-task-id="{body["task"]["id"]}"] .task-head .status')).to_have_text(
        "completed", timeout=SLOW
    )
    await tab.screens("processes-maintenance")

    await panel.get_by_label("Show maintenance").uncheck()
    await expect(panel.locator('li.task[data-type="maintenance"]')).to_have_count(0)
    await expect(panel.locator('li.task[data-type="upload_postprocess"]')).to_have_count(1)


async def test_show_maintenance_defaults_to_the_server_setting(system: System, tab: Tab) -> None:
    await start(system, ui__include_maintenance_jobs=True)
    project = await create_project(system, "Default")
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/tasks", {"type": "maintenance"})
    assert status == 202, body
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await page.get_by_role("button", name="Processes").click()
    await expect(page.get_by_label("Show maintenance")).to_be_checked()
    await expect(page.locator(f'li.task[data-task-id="{body["task"]["id"]}"]')).to_be_visible()


async def test_with_a_token_the_page_asks_for_it_once_and_then_works(system: System, tab: Tab) -> None:
    await start(system, api__token="darkroom-secret")
    status, body, _ = await system.request(
        "POST", "/api/projects", {"name": "Private"}, headers={"Authorization": "Bearer darkroom-secret"}
    )
    assert status == 201, body
    page = tab.page
    tab.expected.append("status of 401")  # the browser logs the answers that make it ask
    await page.goto(system.url + "/")
    dialog = page.get_by_role("dialog", name="Sign in")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Token").fill("wrong")
    await dialog.get_by_role("button", name="Sign in").click()
    await expect(dialog.get_by_role("alert")).to_have_text("wrong token")
    await dialog.get_by_label("Token").fill("darkroom-secret")
    await dialog.get_by_role("button", name="Sign in").click()
    await expect(dialog).to_have_count(0)
    await expect(page.locator("li.project h2")).to_have_text(["Private"])
    await expect(page.locator("li.project")).to_contain_text("0 photos")
    # Every page of this browser now uses the cookie: the project page asks nothing.
    await page.get_by_role("link", name=re.compile("Private")).click()
    await expect(page.locator("#project-name")).to_have_text("Private")
    await expect(page.locator("body.ready")).to_have_count(1)
    await expect(page.locator("#connection")).to_be_hidden()
    await expect(page.get_by_role("dialog", name="Sign in")).to_have_count(0)
