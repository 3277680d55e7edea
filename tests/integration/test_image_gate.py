"""One image gate per worker: the calls in its image processes are bounded across all its jobs, and a
photographer's upload passes the normal lane's image work waiting beside it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable

from tests.conftest import System, create_project, eventually, photo_bytes, start_shipped, upload

SLOW = "lens/Nikon_D70s.jpg"  # some 0.2 s of image work
SOURCES = ["orientation/landscape_1.jpg", "orientation/portrait_1.jpg", "cameras/DSCN0010.jpg"]


class InFlight:
    """Counts the calls a worker's image pool holds (submitted, not done): its peak across all jobs."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self.submit: Callable[..., Future[Any]] = pool.submit
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0
        pool.submit = self  # type: ignore[method-assign]

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
        call = self.submit(fn, *args, **kwargs)
        call.add_done_callback(self._done)
        return call

    def _done(self, _: Future[Any]) -> None:
        with self.lock:
            self.now -= 1


def photos(prefix: str, n: int) -> list[tuple[str, bytes]]:
    return [(f"{prefix}{i:02d}.jpg", photo_bytes(SOURCES[i % len(SOURCES)])) for i in range(n)]


async def finished(system: System, task_ids: list[str], timeout: float = 60) -> None:
    for task_id in task_ids:
        view = await system.wait_task(task_id, "completed", "failed", timeout=timeout)
        assert view["task"]["status"] == "completed", view


async def test_image_calls_in_flight_never_exceed_the_processes_plus_one_across_concurrent_jobs(
    system: System,
) -> None:
    worker = await start_shipped(
        system, processing__workers=1, pipeline__max_parallel_jobs=6, pipeline__priority_lane_slots=3
    )
    assert worker.pool is not None
    in_flight = InFlight(worker.pool)
    folders = [(await create_project(system, f"Gate {n}"))["folder"] for n in range(3)]

    # Three uploads at once: their runs start as the files land, and three jobs take them over.
    answers = await asyncio.gather(*(upload(system, f, photos(f"up{n}_", 5)) for n, f in enumerate(folders)))
    assert all(status == 201 for status, _ in answers), answers
    await finished(system, [body["task_id"] for _, body in answers])
    # Three regenerations at once, in the normal lane: derivatives of two projects, metadata of one.
    started = []
    for folder, what in zip(folders, (["derivatives"], ["derivatives", "metadata"], ["metadata"])):
        status, body, _ = await system.request("POST", f"/api/projects/{folder}/regenerate", {"what": what})
        assert status == 202, body
        started.append(body["task"]["id"])
    await finished(system, started)

    assert in_flight.calls >= 30
    assert in_flight.peak == 2  # processing.workers + 1: the one process always has its next call


async def test_a_priority_jobs_image_work_passes_the_normal_lanes_waiting_work(system: System) -> None:
    # The worker on its own (no upload in its process to start runs early): one image process.
    await start_shipped(system, roles=("projector", "orchestrator", "api"))
    await start_shipped(system, roles=("worker",), processing__workers=1)
    maintained = await create_project(system, "Maintained")
    status, body = await upload(system, maintained["folder"], photos("old", 16))
    assert status == 201, body
    await finished(system, [body["task_id"]])

    status, body, _ = await system.request("POST", f"/api/projects/{maintained['folder']}/regenerate", {})
    assert status == 202, body
    regenerate = body["task"]["id"]
    await eventually(lambda: _made(system, regenerate), 15, "the regeneration to make its first photo's")
    shoot = await create_project(system, "Shoot")
    status, body = await upload(system, shoot["folder"], photos("new", 3))
    assert status == 201, body
    await finished(system, [body["task_id"], regenerate])

    made = [task_id == body["task_id"] for task_id in await _derivatives_made(system)][-19:]  # in the order made
    first, last = made.index(True), len(made) - 1 - made[::-1].index(True)
    assert made[first : last + 1] == [True] * 3, made  # nothing of the normal lane went between them
    assert made[last + 1 :], made  # and the regeneration was still under way when they passed it


async def _derivatives_made(system: System) -> list[str]:
    """The task of each photo's derivatives stored, oldest first."""
    log = await system.log("darkroom.photo.>")
    return [event["task_id"] for _, subject, event in log if subject.endswith(".derivatives_updated")]


async def _made(system: System, task_id: str) -> bool:
    return task_id in await _derivatives_made(system)


async def test_a_canceled_jobs_image_work_waiting_at_the_gate_never_starts(system: System) -> None:
    worker = await start_shipped(system, processing__workers=1)
    assert worker.pool is not None
    in_flight = InFlight(worker.pool)
    project = await create_project(system, "Canceled")
    status, body = await upload(system, project["folder"], [(f"c{n:02d}.jpg", photo_bytes(SLOW)) for n in range(12)])
    assert status == 201, body
    await finished(system, [body["task_id"]])
    before = in_flight.calls

    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/regenerate", {})
    assert status == 202, body
    regenerate = body["task"]["id"]
    await eventually(lambda: _made(system, regenerate), 15, "the regeneration to make its first photo's")
    status, _, _ = await system.request("POST", f"/api/tasks/{regenerate}/cancel")
    assert status == 202
    assert (await system.wait_task(regenerate, "canceled", "completed"))["task"]["status"] == "canceled"
    await eventually(lambda: _idle(in_flight), 15, "the calls in flight to end")
    assert in_flight.calls - before < 12  # what waited at the gate when the cancel came never ran


async def _idle(in_flight: InFlight) -> bool:
    return in_flight.now == 0
