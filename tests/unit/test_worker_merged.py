"""services/worker/merge.py: checks of one project (a merged JobType) share a run that began after they were asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from darkroom.kernel.config import Config
from darkroom.kernel.events import JobRequested
from darkroom.worker.context import JobContext, Resources
from darkroom.worker.jobtype import JobType


def context(resources: Resources, job_id: str, project: str = "p1", seq: int = 0) -> JobContext:
    job = JobRequested(
        project_id=project,
        task_id=f"t-{job_id}",
        job_id=job_id,
        source="user",
        task_type="t",
        job_type="manifest_check",
        step_index=1,
        priority=95,
        lane="priority",
        items=[],
    )

    async def report(done: int, total: int) -> None:
        pass

    async def publish(events: list) -> int:
        return 0

    async def nothing() -> None:
        pass

    return JobContext(
        job=job,
        attempt=1,
        config=Config(),
        data_dir=Path("."),
        report=report,
        is_canceled=lambda: False,
        publish=publish,
        catch_up=nothing,
        resources=resources,
        seq=seq,
    )


class Model:
    """The read model as far as a shared run looks: how much of the log it has applied."""

    def __init__(self, checkpoint: int) -> None:
        self.checkpoint = checkpoint


class Check:
    """A handler that counts its runs and holds each until released."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self, ctx: JobContext) -> None:
        self.runs.append(ctx.job.job_id)
        self.entered.set()
        await self.release.wait()
        self.release.clear()
        self.entered.clear()
        if self.fail:
            raise RuntimeError("disk on fire")


async def turn() -> None:
    """One turn of the event loop: tasks just created reach their first wait."""
    await asyncio.sleep(0)


KEY = ("manifest_check", "p1")


async def test_jobs_asked_while_a_run_waits_share_it_and_runs_never_overlap():
    check, resources = Check(), Resources()
    job_type = JobType("manifest_check", check, merged=True)
    first = asyncio.create_task(job_type.run(context(resources, "a")))
    await check.entered.wait()
    later = [asyncio.create_task(job_type.run(context(resources, job))) for job in ("b", "c", "d")]
    await turn()
    assert not resources.checks[KEY].started
    check.release.set()
    await first
    await check.entered.wait()  # one more run, for b, c and d together: it started after all three were asked
    check.release.set()
    await asyncio.gather(*later)
    assert check.runs == ["a", "b"]


async def test_a_run_asked_after_the_shared_one_started_runs_again_and_other_projects_do_not_wait():
    check, resources = Check(), Resources()
    job_type = JobType("manifest_check", check, merged=True)
    first = asyncio.create_task(job_type.run(context(resources, "a")))
    await check.entered.wait()
    elsewhere = asyncio.create_task(job_type.run(context(resources, "x", project="p2")))
    await turn()
    assert check.runs == ["a", "x"]  # another project's check runs at once
    check.release.set()  # both wait on the one event: it lets both go
    await asyncio.gather(first, elsewhere)
    second = asyncio.create_task(job_type.run(context(resources, "b")))
    await check.entered.wait()
    check.release.set()
    await second
    assert check.runs == ["a", "x", "b"]


async def test_whoever_shares_a_failed_run_fails_with_it():
    check, resources = Check(), Resources()
    job_type = JobType("manifest_check", check, merged=True)
    first = asyncio.create_task(job_type.run(context(resources, "a")))
    await check.entered.wait()
    b, c = (asyncio.create_task(job_type.run(context(resources, job))) for job in ("b", "c"))
    await turn()
    check.release.set()
    await first
    await check.entered.wait()
    check.fail = True
    check.release.set()
    for job in (b, c):
        with pytest.raises(RuntimeError, match="disk on fire"):
            await job
    assert check.runs == ["a", "b"]
    assert KEY not in resources.checks  # a failed run answers nobody asked later


async def test_a_job_asked_before_a_run_began_shares_it_while_it_goes_and_after_it_succeeded():
    check, resources = Check(), Resources(read=Model(checkpoint=10))
    job_type = JobType("manifest_check", check, merged=True)
    first = asyncio.create_task(job_type.run(context(resources, "a", seq=5)))
    await check.entered.wait()
    resources.read.checkpoint = 12
    going = asyncio.create_task(job_type.run(context(resources, "b", seq=9)))  # asked before `a` began (at 10)
    await turn()
    check.release.set()
    await asyncio.gather(first, going)
    await job_type.run(context(resources, "c", seq=10))  # `a` is done and still answers it
    assert check.runs == ["a"]
    later = asyncio.create_task(job_type.run(context(resources, "d", seq=11)))  # asked after `a` began
    await check.entered.wait()
    check.release.set()
    await later
    assert check.runs == ["a", "d"]


async def test_only_a_job_a_started_run_answers_skips_waiting_for_the_model_and_runs_nothing_itself():
    check, resources = Check(), Resources(read=Model(checkpoint=10))
    job_type = JobType("manifest_check", check, reads_state=True, merged=True)
    assert job_type.needs_state(context(resources, "a", seq=10))  # nothing going yet
    first = asyncio.create_task(job_type.run(context(resources, "a", seq=10)))
    await check.entered.wait()
    assert not job_type.needs_state(context(resources, "b", seq=10))  # asked before `a` began
    assert job_type.needs_state(context(resources, "c", seq=11))
    check.fail = True
    check.release.set()
    with pytest.raises(RuntimeError, match="disk on fire"):
        await first
    taken = context(resources, "b", seq=10)
    taken.state_ready = False  # taken while `a` answered it; `a` has failed since
    with pytest.raises(RuntimeError, match="shared failed"):
        await job_type.run(taken)
    assert check.runs == ["a"]
