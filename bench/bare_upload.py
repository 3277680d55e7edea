#!/usr/bin/env python3
"""A bare upload server, the floor bench/derivatives.py sets the pipeline beside: what receiving photos
over HTTP and deriving them costs without Darkroom's events, tasks, read model or SSE.

    python bench/bare_upload.py DIR --port PORT --workers N

POST /upload (multipart, field `photos`): each part goes to DIR the way Darkroom's upload writes it
(darkroom.api.multipart and write_part: streamed under a hidden name, checked, hashed, on the disk, renamed), and
each saved JPG straight into a pool of N image processes (make_derivatives, as the worker runs it).
Answers 201 {task_id: null, files: [{name}], errors: [{name, error}]} once the files are saved.
GET /derived?n=N answers {derived, failed} once N photos have been derived; GET /readyz, 200 once the
image processes are up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from aiohttp import hdrs, web

from darkroom.api.multipart import Parts
from darkroom.api.upload import write_part
from darkroom.kernel.config import ProcessingConfig
from darkroom.kernel.folders import sync_folder
from darkroom.kernel.pagecache import let_go
from darkroom.kernel.photos import PREVIEW_DIR, THUMB_DIR, kind_of
from darkroom.worker.derivations import spec_of
from darkroom.worker.imaging import init_worker, make_derivatives

MAX_BYTES = 200 << 20


class Server:
    def __init__(self, folder: Path, pool: ProcessPoolExecutor) -> None:
        self.folder = folder
        self.pool = pool
        self.spec = spec_of(ProcessingConfig())
        self.derived = self.failed = 0
        self.changed = asyncio.Condition()
        self.running: set[asyncio.Task] = set()
        self.received = 0

    async def upload(self, request: web.Request) -> web.Response:
        parts = Parts(request.content, request.headers.get(hdrs.CONTENT_TYPE, ""))
        files, errors = [], []
        while (part := await parts.next()) is not None:
            if part.name != "photos" or not part.filename:
                continue
            self.received += 1
            temp = self.folder / f".upload-{self.received}.part"
            try:
                size, _, problem = await write_part(parts.content(), temp, part.filename, MAX_BYTES)
                if problem:
                    errors.append({"name": part.filename, "error": problem})
                    continue
                target = self.folder / part.filename
                os.replace(temp, target)
                await asyncio.to_thread(sync_folder, self.folder)  # as Darkroom's upload does
            finally:
                temp.unlink(missing_ok=True)
            files.append({"name": part.filename, "size": size})
            if kind_of(target.name) == "jpg":
                task = asyncio.create_task(self.derive(target))
                self.running.add(task)
                task.add_done_callback(self.running.discard)
        return web.json_response({"task_id": None, "files": files, "errors": errors}, status=201)

    async def derive(self, source: Path) -> None:
        stem = source.name.rpartition(".")[0]
        try:
            await asyncio.get_running_loop().run_in_executor(
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

    async def derived_count(self, request: web.Request) -> web.Response:
        wanted = int(request.query.get("n", "0"))
        async with self.changed:
            await self.changed.wait_for(lambda: self.derived >= wanted)
        return web.json_response({"derived": self.derived, "failed": self.failed})


async def serve(folder: Path, port: int, workers: int) -> None:
    for sub in (THUMB_DIR, PREVIEW_DIR):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker) as pool:
        for warm in [pool.submit(pow, 2, 2) for _ in range(workers)]:  # every process started
            warm.result()
        server = Server(folder, pool)
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
    args = p.parse_args(argv)
    try:
        import uvloop  # as `darkroom up` runs

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(serve(args.folder, args.port, args.workers))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
