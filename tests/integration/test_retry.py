"""Retry: a failed or canceled task runs again as a new task from the step it stopped at, linked to
it, through the API and `darkroom retry`, once at a time, and in the log for audit and replay."""

from __future__ import annotations

import asyncio
import re

from darkroom.kernel.definitions import TaskDefinition
from darkroom.kernel.events import Step
from darkroom.worker.context import JobContext, PermanentError
from darkroom.worker.handlers import plain
from tests.conftest import System, run_cli
from tests.jobtypes import DEFINITIONS, JOB_TYPES


class Fixable:
    """A step that fails for good until it is fixed; it records the items of every run."""

    def __init__(self) -> None:
        self.fixed = False
        self.runs: list[list[str]] = []

    async def __call__(self, ctx: JobContext) -> None:
        self.runs.append(list(ctx.items))
        if not self.fixed:
            raise PermanentError("the share is not mounted")
        await ctx.progress(1, 1)


def _definitions() -> dict:
    steps = [Step("noop", 90), Step("fixable", 90), Step("noop", 90)]
    return DEFINITIONS | {
        "mounted": TaskDefinition(label="Needs the share", user_relevant=True, scope="global", steps=steps)
    }


async def _start(system: System, fixable: Fixable):
    return await system.start(job_types=JOB_TYPES | plain({"fixable": fixable}), definitions=_definitions())


async def test_a_failed_task_is_retried_from_its_failed_step_once_at_a_time(system: System) -> None:
    fixable = Fixable()
    await _start(system, fixable)
    first = await system.start_task("mounted", items=["DSC01", "DSC02"])
    failed = await system.wait_task(first["id"], "failed")
    assert failed["task"]["step_index"] == 1 and failed["task"]["error"].endswith("the share is not mounted")

    # Paused, its retry stays queued: a second retry meanwhile is refused.
    status, body, _ = await system.request("POST", "/api/lanes/priority/pause")
    assert status == 200, body
    status, body, headers = await system.request("POST", f"/api/tasks/{first['id']}/retry")
    assert status == 202, body
    retry = body["task"]
    assert retry["id"] == f"{first['id']}r1" and int(headers["X-Darkroom-Seq"]) > 0
    assert (retry["retry_of"], retry["start_step"], retry["step_index"], retry["status"]) == (
        first["id"],
        1,
        1,
        "queued",
    )
    assert (retry["type"], retry["source"], retry["steps"]) == ("mounted", "user", failed["task"]["steps"])
    status, body, _ = await system.request("POST", f"/api/tasks/{first['id']}/retry")
    assert status == 409, body
    assert re.fullmatch(
        f"task {first['id']} was retried: task {retry['id']} is running it again "
        r"\((queued|running)\)",
        body["error"],
    ), body
    assert (await system.wait_job(retry["id"], 1, "queued"))["attempts"] == 0  # running, its job still waiting
    old = (await system.task(first["id"]))["task"]
    assert old["retried_by"] == retry["id"] and old["status"] == "failed"

    fixable.fixed = True
    await system.request("POST", "/api/lanes/priority/resume")
    done = await system.wait_task(retry["id"], timeout=20)
    assert done["task"]["status"] == "completed"
    assert [(j["step_index"], j["status"]) for j in done["jobs"]] == [(1, "completed"), (2, "completed")]
    assert fixable.runs == [[], []]  # a later step works on the whole project: no items, as the first time

    # The same items, linked both ways in the log: task.requested names the old task and its ending.
    ((_, _, requested),) = await system.log(f"darkroom.task._.{retry['id']}.requested")
    ((_, _, ended),) = await system.log(f"darkroom.task._.{first['id']}.failed")
    assert (requested["retry_of"], requested["start_step"], requested["items"]) == (first["id"], 1, ["DSC01", "DSC02"])
    assert (requested["causation_id"], requested["source"]) == (ended["id"], "user")

    # Retried and completed: neither is retried again, nor listed among the failed ones to see to.
    for task_id in (first["id"], retry["id"]):
        status, body, _ = await system.request("POST", f"/api/tasks/{task_id}/retry")
        assert status == 409, body
    status, body, _ = await system.request("GET", "/api/tasks?status=failed&retried=false")
    assert [t["id"] for t in body["tasks"]] == []
    status, body, _ = await system.request("GET", "/api/tasks?status=failed&retried=true")
    assert [t["id"] for t in body["tasks"]] == [first["id"]]

    code, out, err = await run_cli(system, "audit", "task", retry["id"])
    assert code == 0, err
    assert f"retry of {first['id']} from step 1" in out.splitlines()[1]


async def test_a_retry_that_fails_again_is_retried_in_turn_and_the_old_one_again_too(system: System) -> None:
    fixable = Fixable()
    await _start(system, fixable)
    first = await system.start_task("mounted")
    await system.wait_task(first["id"], "failed")
    status, body, _ = await system.request("POST", f"/api/tasks/{first['id']}/retry")
    retry = body["task"]
    assert (await system.wait_task(retry["id"]))["task"]["status"] == "failed"
    status, body, _ = await system.request("GET", "/api/tasks?status=failed&retried=false")
    assert [t["id"] for t in body["tasks"]] == [retry["id"]]  # only the newest of the line is left to see to

    status, body, _ = await system.request("POST", f"/api/tasks/{retry['id']}/retry")
    assert status == 202 and body["task"]["id"] == f"{retry['id']}r1", body
    await system.wait_task(body["task"]["id"])
    status, body, _ = await system.request("POST", f"/api/tasks/{first['id']}/retry")
    assert status == 202 and body["task"]["id"] == f"{first['id']}r2", body  # its first retry ended failed
    await system.wait_task(body["task"]["id"])


async def test_two_retries_at_once_store_one(system: System) -> None:
    fixable = Fixable()
    await _start(system, fixable)
    first = await system.start_task("mounted")
    await system.wait_task(first["id"], "failed")
    answers = await asyncio.gather(*(system.request("POST", f"/api/tasks/{first['id']}/retry") for _ in range(4)))
    assert sorted(status for status, _, _ in answers) == [202, 409, 409, 409], answers
    assert len(await system.log(f"darkroom.task._.{first['id']}r1.requested")) == 1
    assert await system.log(f"darkroom.task._.{first['id']}r2.>") == []
    await system.wait_task(f"{first['id']}r1")


async def test_a_canceled_task_is_retried_from_the_first_step_it_did_not_finish(system: System) -> None:
    await system.start()
    task = await system.start_task("slow_items", items=[str(i) for i in range(40)])
    await system.wait_job(task["id"], 0, "running")
    status, body, _ = await system.request("POST", f"/api/tasks/{task['id']}/cancel")
    assert status == 202, body
    await system.wait_task(task["id"], "canceled")

    code, out, err = await run_cli(system, "retry", task["id"])
    assert code == 0, err
    assert out.startswith(f"task {task['id']}r1 runs task {task['id']} again from step 0 (items)")
    done = await system.wait_task(f"{task['id']}r1", timeout=30)
    assert done["task"]["status"] == "completed"
    assert done["jobs"][0]["progress_total"] == 40  # the first step gets the task's items again


async def test_what_cannot_be_retried_is_refused_and_changes_nothing(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    before = await system.bus.last_seq()
    status, body, _ = await system.request("POST", f"/api/tasks/{task['id']}/retry")
    assert (status, body) == (
        409,
        {"error": f"task {task['id']} is completed: only a failed or canceled task can be retried"},
    )
    status, body, _ = await system.request("POST", "/api/tasks/NOPE/retry")
    assert (status, body) == (404, {"error": "task 'NOPE' not found"})
    code, out, err = await run_cli(system, "retry", task["id"])
    assert (
        code == 1
        and err.strip() == f"darkroom: task {task['id']} is completed: only a failed or canceled task can be retried"
        and out == ""
    )
    assert await system.bus.last_seq() == before
