"""The Operations page in headless Chromium against real services: a lane paused and resumed (also
across a restart), its job counts live, a failed task retried, dead letters discarded, all without a
reload; screenshots at 1440×900 and 390×844."""

from __future__ import annotations

from urllib.parse import quote

from playwright.async_api import expect

from darkroom.kernel.definitions import TaskDefinition
from darkroom.kernel.events import Step
from darkroom.worker.handlers import plain
from tests.browser.conftest import Tab, open_tab, start
from tests.conftest import System, create_project, photo_bytes, upload
from tests.integration.test_dead_letters import LATER, ProjectCreatedV2
from tests.integration.test_retry import Fixable
from tests.jobtypes import DEFINITIONS, JOB_TYPES

SLOW = 45_000


def _definitions() -> dict:
    return DEFINITIONS | {
        "share_copy": TaskDefinition(
            label="Copy from the share",
            user_relevant=True,
            steps=[Step(type="noop", priority=90), Step(type="fixable", priority=90), Step(type="noop", priority=90)],
        )
    }


async def _run(system: System, fixable: Fixable):
    return await start(system, definitions=_definitions(), job_types=JOB_TYPES | plain({"fixable": fixable}))


async def test_the_operations_page_pauses_a_lane_retries_a_failed_task_and_discards_a_dead_letter(
    system: System, browser, tab: Tab
) -> None:
    fixable = Fixable()
    await _run(system, fixable)
    project = await create_project(system, "Beach shoot")
    status, body = await upload(system, "Beach%20shoot", [("DSC01.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    await system.wait_task(body["task_id"], timeout=30)
    status, body, _ = await system.request("POST", "/api/projects/Beach%20shoot/tasks", {"type": "share_copy"})
    assert status == 202, body
    broken = body["task"]
    await system.wait_task(broken["id"], "failed")
    await system.bus.js.publish(
        "darkroom.project.P2.created", LATER.encode(ProjectCreatedV2(project_id="P2", name="Later", folder="Later"))
    )
    junk = (await system.bus.js.publish("darkroom.project.P3.created", b"{not json")).seq

    page = tab.page
    await page.goto(system.url + "/")
    await page.get_by_role("link", name="Operations").click()
    await page.wait_for_url("**/operations")
    await expect(page.locator("body.ready")).to_have_count(1)
    normal = page.locator('.lane-card[data-lane="normal"]')
    await expect(normal.locator(".lane-head .status")).to_have_text("running")

    # Pause the normal lane: its jobs wait, counted live; the priority lane goes on.
    await normal.get_by_role("button", name="Pause").click()
    await expect(normal.locator(".lane-head .status")).to_have_text("paused")
    await expect(normal.get_by_role("button", name="Resume")).to_be_visible()
    lanes = (await system.request("GET", "/api/lanes"))[1]["lanes"]
    assert [lane["paused"] for lane in lanes] == [False, True]
    waiting = [(await system.start_task("quick_normal"))["id"] for _ in range(3)]
    row = normal.locator('tr[data-type="noop"]')
    await expect(row.locator("td").first).to_have_text("3")  # queued, without a reload

    # The failed task, across projects, with its step and error; and both dead letters.
    failed = page.locator(f'li.failed-task[data-task-id="{broken["id"]}"]')
    await expect(failed).to_contain_text("Copy from the share")
    await expect(failed).to_contain_text("Beach shoot")
    await expect(failed).to_contain_text("the share is not mounted")
    letters = page.locator("li.dead-letter")
    await expect(letters).to_have_count(2)
    await expect(page.locator(f'li.dead-letter[data-seq="{junk}"]')).to_contain_text("not valid JSON")
    await expect(letters.first.get_by_role("button", name="Apply")).to_be_disabled()  # nothing here reads it
    await tab.screens("operations", full_page=True)

    # Retry, once the share is back: the row goes, the retry runs from the failed step and completes.
    fixable.fixed = True
    await system.request("POST", "/api/lanes/priority/pause")  # to look at the retry before it runs
    await failed.get_by_role("button", name="Retry").click()
    await tab.wait_toasts("Retrying Copy from the share", 1)
    await expect(failed).to_have_count(0)
    async with open_tab(browser) as other:  # the project's page: the step it does not run again is not run
        await other.page.goto(f"{system.url}/projects/{quote(project['folder'])}")
        await other.page.get_by_role("button", name="Processes").click()
        retried = other.page.locator(f'#processes li.task[data-task-id="{broken["id"]}r1"]')
        await expect(retried.locator("li.job .status")).to_have_text(["not run", "waiting", "waiting"])
    await system.request("POST", "/api/lanes/priority/resume")
    done = await system.wait_task(f"{broken['id']}r1", timeout=30)
    assert done["task"]["status"] == "completed" and [j["step_index"] for j in done["jobs"]] == [1, 2]
    assert fixable.runs == [[], []]

    # Discard a dead letter after saying yes.
    await page.locator(f'li.dead-letter[data-seq="{junk}"]').get_by_role("button", name="Discard").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text(f"The message at sequence {junk}")
    await dialog.get_by_role("button", name="Discard").click()
    await expect(page.locator(f'li.dead-letter[data-seq="{junk}"]')).to_have_count(0)
    await expect(letters).to_have_count(1)
    assert [letter["seq"] for letter in (await system.request("GET", "/api/dead-letters"))[1]["dead_letters"]] != [junk]

    # Every service starts again: the page, reloaded, still shows the lane paused and its jobs waiting.
    await page.goto("about:blank")  # the services come back on another port
    for runtime in list(system.runtimes):
        await runtime.stop()
    system.runtimes.clear()
    await _run(system, fixable)
    await page.goto(system.url + "/operations")
    await expect(page.locator("body.ready")).to_have_count(1)
    normal = page.locator('.lane-card[data-lane="normal"]')
    await expect(normal.locator(".lane-head .status")).to_have_text("paused")
    await expect(normal.locator('tr[data-type="noop"] td').first).to_have_text("3")
    await normal.get_by_role("button", name="Resume").click()
    await expect(normal.locator(".lane-head .status")).to_have_text("running")
    await expect(normal.locator(".empty-counts")).to_be_visible(timeout=SLOW)  # every job done, live
    for task_id in waiting:
        assert (await system.wait_task(task_id))["task"]["status"] == "completed"
    await tab.screens("operations-resumed", full_page=True)
