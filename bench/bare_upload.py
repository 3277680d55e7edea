#!/usr/bin/env python3
"""A bare upload server, the floor bench/derivatives.py sets the pipeline beside: what receiving photos
over HTTP and deriving them costs without Darkroom's events, tasks, read model or SSE.

    python bench/bare_upload.py DIR --port PORT --workers N [--events NATS_URL]

POST /upload (multipart, field `photos`): each part goes to DIR the way Darkroom's upload writes it
(darkroom.api.multipart and write_part: streamed under a hidden name, checked, hashed, on the disk, renamed), and
each saved JPG straight into a pool of N image processes (make_derivatives, as the worker runs it).
Answers 201 {task_id: null, files: [{name}], errors: [{name, error}]} once the files are saved.
GET /derived?n=N answers {derived, failed} once N photos have been derived; GET /readyz, 200 once the
image processes are up.

With --events it also keeps the log CONTRACT §7.1 leaves an upload (Darkroom's own event types and
subjects) on that nats-server, each event stored durably before the next, and follows the log once,
decoding every event, as the least a read model does. Per photo: its basename.claimed (guarded as the
claim is) and photo.file_added as it lands, its photo.derivatives_updated as it is derived. Per request,
one task of three steps: task.requested, each step's job.requested and job.completed, the job.started
of the derivation (it runs past 250 ms), task.completed. Nothing decides, no read model, no workers, no
SSE: the floor of any pipeline that keeps this log. /derived then also waits for every task's end.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import socket
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Coroutine, TypeVar

import nats
from aiohttp import hdrs, web
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

from darkroom.api.multipart import Parts
from darkroom.api.upload import write_part
from darkroom.kernel.clock import now_iso
from darkroom.kernel.config import Config, ProcessingConfig
from darkroom.kernel.definitions import lane_for, load_definitions
from darkroom.kernel.events import (
    BasenameClaimed,
    Codec,
    Event,
    JobCompleted,
    JobRequested,
    JobStarted,
    PhotoDerivativesUpdated,
    PhotoFileAdded,
    PhotoMetadata,
    TaskCompleted,
)
from darkroom.kernel.folders import sync_folder
from darkroom.kernel.ids import job_id, new_id
from darkroom.kernel.pagecache import let_go
from darkroom.kernel.photos import PREVIEW_DIR, THUMB_DIR, kind_of
from darkroom.kernel.subjects import ALL, STREAM, subject_for
from darkroom.worker.derivations import spec_of
from darkroom.worker.imaging import Metadata, init_worker, make_derivatives

MAX_BYTES = 200 << 20
TASK_TYPE = "upload_postprocess"  # what Darkroom's upload starts
T = TypeVar("T")


class Log:
    """The events an upload leaves in Darkroom's log, stored one after another, each acknowledged
    (durable) before the next; and one follower decoding every event stored."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.codec = Codec()
        self.project_id = new_id()
        self.definition = load_definitions()[TASK_TYPE]
        self.threshold = Config().pipeline.priority_threshold
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    @classmethod
    async def open(cls, url: str) -> Log:
        js = (await nats.connect(url)).jetstream()
        await js.add_stream(name=STREAM, subjects=[ALL], storage=api.StorageType.FILE)
        log = cls(js)
        await js.subscribe(ALL, ordered_consumer=True, cb=log._follow)
        return log

    async def _follow(self, msg: Msg) -> None:
        self.codec.decode(msg.data)

    async def store(self, event: Event, guarded: bool = False) -> None:
        subject = subject_for(event)
        # A first claim of a basename, guarded as Darkroom's is: nothing stored on its subject before.
        headers = {"Nats-Expected-Last-Subject-Sequence": "0"} if guarded else None
        await self.js.publish(subject, self.codec.encode(event), headers=headers)

    async def claim(self, photo: str) -> None:
        await self.store(BasenameClaimed(project_id=self.project_id, source="user", filename=photo), guarded=True)

    async def added(self, name: str, photo: str, size: int, digest: str) -> None:
        kind = kind_of(name) or "other"
        event = PhotoFileAdded(
            project_id=self.project_id, source="user", filename=photo, name=name, kind=kind, size=size, sha256=digest
        )
        await self.store(event)

    async def task(self, folder: str, derivations: dict[str, asyncio.Task[Metadata | None]]) -> None:
        """One upload's task, through its three steps; the first one's job ends as its photos (`derivations`,
        by file name) are derived."""
        photos = [name.rpartition(".")[0] for name in derivations]
        task = self.definition.requested(
            TASK_TYPE, new_id(), "user", project_id=self.project_id, folder=folder, items=photos
        )
        await self.store(task)
        assert task.task_id is not None
        for index, step in enumerate(task.steps):
            job: dict[str, Any] = {
                "project_id": self.project_id,
                "task_id": task.task_id,
                "job_id": job_id(task.task_id, index),
                "source": task.source,
                "task_type": TASK_TYPE,
                "job_type": step.type,
                "step_index": index,
            }
            lane = lane_for(step.priority, self.threshold, False)
            items = task.items if index == 0 else []
            await self.store(JobRequested(**job, priority=step.priority, lane=lane, items=items, folder=folder))
            began = now_iso()
            if index == 0:
                await self.store(JobStarted(**job, attempt=1, worker=self.worker))
                for next_one in asyncio.as_completed([named(name, run) for name, run in derivations.items()]):
                    name, meta = await next_one
                    await self.store(derived(self.project_id, name, meta))
            await self.store(JobCompleted(**job, attempt=1, started_at=began, worker=self.worker))
        await self.store(TaskCompleted(project_id=self.project_id, task_id=task.task_id, source=task.source))


async def named(name: str, run: asyncio.Task[Metadata | None]) -> tuple[str, Metadata | None]:
    return name, await run


def derived(project_id: str, name: str, meta: Metadata | None) -> PhotoDerivativesUpdated:
    """What became of the derivatives made from the file `name`."""
    status = "generated" if meta is not None else "failed"
    metadata = PhotoMetadata(**dataclasses.asdict(meta)) if meta is not None else None
    return PhotoDerivativesUpdated(
        project_id=project_id,
        filename=name.rpartition(".")[0],
        thumbnail_status=status,
        preview_status=status,
        made_from=name,
        metadata=metadata,
    )


class Server:
    def __init__(self, folder: Path, pool: ProcessPoolExecutor, log: Log | None) -> None:
        self.folder = folder
        self.pool = pool
        self.log = log
        self.spec = spec_of(ProcessingConfig())
        self.derived = self.failed = 0
        self.changed = asyncio.Condition()
        self.running: set[asyncio.Task] = set()  # derivations, and with a log the tasks of uploads
        self.tasks = 0  # with a log: tasks not completed yet
        self.received = 0

    async def upload(self, request: web.Request) -> web.Response:
        parts = Parts(request.content, request.headers.get(hdrs.CONTENT_TYPE, ""))
        files, errors = [], []
        derivations: dict[str, asyncio.Task[Metadata | None]] = {}
        while (part := await parts.next()) is not None:
            if part.name != "photos" or not part.filename:
                continue
            self.received += 1
            temp = self.folder / f".upload-{self.received}.part"
            try:
                size, digest, problem = await write_part(parts.content(), temp, part.filename, MAX_BYTES)
                if problem:
                    errors.append({"name": part.filename, "error": problem})
                    continue
                photo = part.filename.rpartition(".")[0]
                if self.log is not None:
                    await self.log.claim(photo)
                target = self.folder / part.filename
                os.replace(temp, target)
                await asyncio.to_thread(sync_folder, self.folder)  # as Darkroom's upload does
            finally:
                temp.unlink(missing_ok=True)
            files.append({"name": part.filename, "size": size})
            if self.log is not None:
                await self.log.added(part.filename, photo, size, digest)
            if kind_of(target.name) == "jpg":
                derivations[part.filename] = self.start(self.derive(target))
        if self.log is not None and derivations:
            self.tasks += 1
            self.start(self.task(derivations))
        return web.json_response({"task_id": None, "files": files, "errors": errors}, status=201)

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(work)
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return task

    async def task(self, derivations: dict[str, asyncio.Task[Metadata | None]]) -> None:
        assert self.log is not None
        try:
            await self.log.task(self.folder.name, derivations)
        finally:
            async with self.changed:
                self.tasks -= 1
                self.changed.notify_all()

    async def derive(self, source: Path) -> Metadata | None:
        stem = source.name.rpartition(".")[0]
        meta = None
        try:
            meta = await asyncio.get_running_loop().run_in_executor(
                self.pool,
                make_derivatives,
                str(source),
                str(self.folder / THUMB_DIR / f"{stem}.webp"),
                str(self.folder / PREVIEW_DIR / f"{stem}.jpg"),
                self.spec,
            )
        except Exception:  # counted: the bench checks that none failed
            self.failed += 1
        asyncio.get_running_loop().run_in_executor(None, let_go, source)  # as darkroom.worker.derivations does
        async with self.changed:
            self.derived += 1
            self.changed.notify_all()
        return meta

    async def derived_count(self, request: web.Request) -> web.Response:
        wanted = int(request.query.get("n", "0"))
        async with self.changed:
            await self.changed.wait_for(lambda: self.derived >= wanted and not self.tasks)
        return web.json_response({"derived": self.derived, "failed": self.failed})


async def serve(folder: Path, port: int, workers: int, events: str | None) -> None:
    for sub in (THUMB_DIR, PREVIEW_DIR):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker) as pool:
        for warm in [pool.submit(pow, 2, 2) for _ in range(workers)]:  # every process started
            warm.result()
        server = Server(folder, pool, await Log.open(events) if events else None)
        app = web.Application()
        app.router.add_post("/upload", server.upload)
        app.router.add_get("/derived", server.derived_count)
        app.router.add_get("/readyz", lambda _: web.json_response({"ready": True}))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="where uploaded files and their derivatives go")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=2, help="image processes (default 2)")
    p.add_argument("--events", metavar="NATS_URL", help="also keep an upload's events on this nats-server's JetStream")
    args = p.parse_args(argv)
    try:
        import uvloop  # as `darkroom up` runs

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(serve(args.folder, args.port, args.workers, args.events))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
