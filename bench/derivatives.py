#!/usr/bin/env python3
"""Photo derivatives (thumbnail + preview of 24 MP JPEGs) through `darkroom up`, against bare Pillow.

All phases reuse one set of synthetic 6000x4000 JPEGs, generated first into a temp dir.
  bare         darkroom.worker.imaging.make_derivatives over every photo in a process pool of size
               --workers, and once in-process per photo (the single-photo floor); run before the first
               round and after each one, with nothing else of the bench running
  round        (--rounds, default 5) a fresh nats-server and `darkroom up` (processing.workers = --workers)
               for these phases, then the bare upload server for its two:
    batch        all photos in ONE upload request; timed from the request until its upload task is
                 completed (SSE)
    per-file     one upload request per photo, --concurrency in flight (as a browser sends them);
                 timed until every one of those tasks is completed
    latency      (last round) one photo at a time on an idle system: request start -> the SSE `item`
                 event whose photo has thumbnail_status "generated"; against the mean of the two bare
                 single-photo medians around that round
    bare upload  the batch and per-file uploads again, through bench/bare_upload.py (received and written
                 as Darkroom does, derived in a pool of the same size, no events or tasks): what receiving
                 the files costs by itself, so the rest of the gap to bare is Darkroom's own work
    bare upload + log
                 the same again with --events, on a fresh nats-server (`sync_interval: always`): the bare
                 upload server also stores, one after another, every event CONTRACT §7.1 leaves these
                 uploads in the log, and reads them back once; what the contract's log costs by itself,
                 so the pipeline's gap to this floor is Darkroom's work beyond keeping its log
A round's photos/s count as a share of the mean of the two bare runs around it, since this machine's
speed drifts by up to 15% within minutes; the table shows the median share over the rounds and each
round's. The bench watches the pipeline as a page does, on SSE, decoding only the messages it needs:
it shares the cores with the image processes, and a page's work would be on another machine.
Uploads go out with sendfile(2) (bench/_sendfile.py) for the same reason; --client aiohttp sends them
as before, for comparison.
Each phase prints the CPU milliseconds per photo of each process group (darkroom up, its worker process,
its image processes, nats-server): a figure load from other programs drifts far less than photos/s, so
compare those between runs on a shared machine. Goals are issue 20's; the pipeline is also set beside the
bare upload server of its own round.
Peak RSS of `darkroom up` plus its children (the image processes) is the sum of each one's own peak over
every pipeline phase (the kernel's VmHWM, reset as the phase begins: nothing samples meanwhile), and each
phase prints where the CPU went (`other` is load from programs outside the bench).
Exit status: 0 when every phase ran and `darkroom up` exited 0 on SIGTERM (goals are reported, not
enforced), 1 when it did not exit cleanly, 2 on a bench error."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import aiohttp
import nats
from _common import BenchError, bench_main, cpu_seconds, darkroom_command, wait_ready
from _sendfile import post_files
from nats.aio.msg import Msg
from PIL import Image, ImageChops

from darkroom.kernel.config import ProcessingConfig
from darkroom.kernel.natsd import NatsServer, free_port
from darkroom.worker.derivations import spec_of
from darkroom.worker.imaging import Spec, init_worker, make_derivatives

WIDTH, HEIGHT = 6000, 4000
JPEG_QUALITY = 90
ROTATED_EVERY = 3  # every third photo carries EXIF orientation 6 (rotate 90° clockwise to display)
# Issue 20's goals.
RATIO_GOAL = 0.90  # pipeline photos/s as a share of bare
UPLOAD_RATIO_GOAL = 0.97  # pipeline photos/s as a share of the bare upload server's, the same way
RSS_GOAL_MB = 300.0
LATENCY_GOAL = 1.3  # single-photo latency as a multiple of the bare image work
# The original Node.js app and what bare Pillow was expected to do on this machine class.
NODE_BATCH_S, NODE_PER_FILE_S, NODE_RSS_MB, NODE_LATENCY_S = 2.6, 0.5, 1000.0, 1.0
BARE_EXPECTED_S = 6.0
TICK = os.sysconf("SC_CLK_TCK")
OTHER_LOAD_WARN = 0.15  # share of one core used by other programs during a phase


# -- photos ---------------------------------------------------------------------------------------


def generate(folder: Path, count: int, seed: int) -> list[Path]:
    """Gradients under coarse colour blotches and fine grain: about 8 MB each at quality 90, like a
    camera JPEG, so neither decoding nor the upload is trivially cheap."""
    rng = random.Random(seed)
    size = (WIDTH, HEIGHT)
    gradient = Image.linear_gradient("L")
    base = Image.merge(
        "RGB", (gradient.resize(size), gradient.rotate(90).resize(size), Image.radial_gradient("L").resize(size))
    )
    grain = Image.frombytes("RGB", size, rng.randbytes(WIDTH * HEIGHT * 3))
    small = (WIDTH // 16, HEIGHT // 16)
    paths = []
    for i in range(count):
        blotches = Image.frombytes("RGB", small, rng.randbytes(small[0] * small[1] * 3))
        image = Image.blend(base, blotches.resize(size, Image.Resampling.BICUBIC), 0.45)
        image = Image.blend(image, ImageChops.offset(grain, rng.randrange(WIDTH), rng.randrange(HEIGHT)), 0.12)
        exif = image.getexif()
        exif[271], exif[272] = "Bench", "Synthetic 24MP"  # Make, Model
        exif.get_ifd(0x8769)[36867] = f"2024:05:{1 + i % 28:02d} 12:{i % 60:02d}:00"  # DateTimeOriginal
        if i % ROTATED_EVERY == 1:
            exif[274] = 6
        path = folder / f"src-{i:03d}.jpg"
        image.save(path, "JPEG", quality=JPEG_QUALITY, exif=exif.tobytes())
        paths.append(path)
    return paths


# -- bare -----------------------------------------------------------------------------------------


def bare_batch(photos: list[Path], out: Path, workers: int, spec: Spec) -> tuple[float, dict[str, float], float]:
    """Photos/s of make_derivatives over all photos in a warm pool like darkroom's (spawn, same
    initializer), the CPU shares meanwhile, and the image processes' CPU ms per photo."""
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker) as pool:
        for warm in [pool.submit(time.sleep, 0.2) for _ in range(workers)]:  # every process started
            warm.result()
        me = os.getpid()
        cpu = CpuMeter({"image processes": [pid for pid in descendants(me) if pid != me], "bench": [me]})
        futures = [
            pool.submit(make_derivatives, str(p), str(out / f"{p.stem}.webp"), str(out / f"{p.stem}.jpg"), spec)
            for p in photos
        ]
        for future in futures:
            future.result()
        shares = cpu.shares()
        return len(photos) / (time.perf_counter() - cpu.began), shares, cpu.per_photo_ms(len(photos))["image processes"]


def bare_single(photos: list[Path], out: Path, spec: Spec) -> list[float]:
    """Seconds of make_derivatives in this process, once per photo."""
    times = []
    for p in photos:
        began = time.perf_counter()
        make_derivatives(str(p), str(out / "one.webp"), str(out / "one.jpg"), spec)
        times.append(time.perf_counter() - began)
    return times


@dataclass
class Bare:
    photos_s: float
    one_s: float  # median of single photos in-process
    cpu: dict[str, float]
    cpu_ms: float  # the image processes' CPU milliseconds per photo


def bare(photos: list[Path], out: Path, workers: int, single: int, spec: Spec) -> Bare:
    photos_s, cpu, cpu_ms = bare_batch(photos, out, workers, spec)
    return Bare(photos_s, statistics.median(bare_single(photos[:single], out, spec)), cpu, cpu_ms)


# -- processes ------------------------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    """Direct children, from each thread's /proc children list (cheap), else from a scan of /proc."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return [int(child) for task in tasks for child in (task / "children").read_text().split()]
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN, or the process is gone
        pass
    except OSError:
        return []
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and int(Path(entry.path, "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def descendants(root: int) -> list[int]:
    """`root` and every process below it (Linux /proc)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children_of(pid))
    return found


def machine_s() -> tuple[float, float]:
    """CPU seconds the whole machine was busy, and stolen by the hypervisor, since boot."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


class CpuMeter:
    """Each group's CPU use over a phase as a share of one core; `other` is everything else on the
    machine (another program's load makes the figures unfair, and shows up here)."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.began = time.perf_counter()
        self.start = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
        self.machine = machine_s()
        self.used_s: dict[str, float] = {}  # CPU seconds of each group, once shares() was read

    def shares(self) -> dict[str, float]:
        wall = time.perf_counter() - self.began
        self.used_s = {
            name: sum(cpu_seconds(pid) for pid in pids) - self.start[name] for name, pids in self.groups.items()
        }
        used = {name: seconds / wall for name, seconds in self.used_s.items()}
        busy, steal = machine_s()
        used["other"] = max(0.0, (busy - self.machine[0]) / wall - sum(used.values()))
        used["steal"] = (steal - self.machine[1]) / wall
        return used

    def per_photo_ms(self, photos: int) -> dict[str, float]:
        """Each group's CPU milliseconds per photo: what load on the machine drifts far less than a rate."""
        return {name: seconds * 1000 / photos for name, seconds in self.used_s.items()}


def shares_text(shares: dict[str, float]) -> str:
    return ", ".join(f"{name} {share:.0%}" for name, share in shares.items())


def median_ms(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each group's median over the rounds."""
    return {name: statistics.median(ms[name] for ms in rounds) for name in rounds[0]}


def per_photo_text(ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}" for name, value in ms.items() if name != "bench")


def is_worker_process(pid: int) -> bool:
    """`darkroom up`'s second process (`darkroom child`), as against its image processes."""
    try:
        return b"\0child\0" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


PAGE_MB = os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def rss_mb(pid: int) -> float:
    """VmRSS, from /proc/PID/statm: its second field is the same figure, cheaper to read than status."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MB
    except OSError:
        return 0.0


@dataclass
class Rss:
    total_mb: float = 0.0
    single_mb: float = 0.0
    single_is_main: bool = False
    each_mb: str = ""  # each process's own peak, by role

    def merge(self, other: Rss) -> Rss:
        single = max(self, other, key=lambda r: r.single_mb)
        most = max(self, other, key=lambda r: r.total_mb)
        return Rss(most.total_mb, single.single_mb, single.single_is_main, most.each_mb)


class PeakRss:
    """Peak RSS of a process tree over a phase, from the kernel's own high-water mark of each process
    (VmHWM, reset when the phase begins): nothing samples while the phase runs, so the bench takes no
    CPU from the image processes for it (a sampling thread took about 2% of a core), and no spike falls
    between samples. The sum of each process's own peak is never below the peak of the sum."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = Rss()

    def __enter__(self) -> PeakRss:
        for pid in descendants(self.root):
            try:
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak to the RSS now
            except OSError:  # not allowed: the peak then counts from the process's start, still a bound
                pass
        return self

    def __exit__(self, *_: object) -> None:
        peaks = {pid: hwm_mb(pid) for pid in descendants(self.root)}
        biggest = max(peaks, key=peaks.__getitem__)
        roles = {pid: "up" if pid == self.root else "worker" if is_worker_process(pid) else "other" for pid in peaks}
        each = " + ".join(
            f"{role} {peaks[pid]:.0f}" for role in ("up", "worker", "other") for pid in peaks if roles[pid] == role
        )
        self.peak = Rss(sum(peaks.values()), peaks[biggest], biggest == self.root, each)


def hwm_mb(pid: int) -> float:
    """VmHWM from /proc/PID/status: the most this process has had resident since its peak was reset."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- darkroom -------------------------------------------------------------------------------------


class Events:
    """Follows GET /api/events as a page would; remembers when each task completed, each job started
    and each photo's thumbnail appeared. Only those messages are decoded: the bench shares the cores
    with the image processes, and a page's work would be on another machine."""

    WANTED = (b"event: task_update\n", b"event: job_update\n", b"event: item\n")

    def __init__(self) -> None:
        self.completed: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.started: dict[tuple[str, str], float] = {}  # (folder, job id) -> first seen running
        self.generated: dict[tuple[str, str], float] = {}  # (folder, basename) -> arrival
        self._changed = asyncio.Condition()

    async def follow(self, http: aiohttp.ClientSession, base_url: str, connected: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with http.get(f"{base_url}/api/events", timeout=timeout) as response:
            if response.status != 200:
                raise BenchError(f"GET /api/events answered {response.status}")
            connected.set()
            pending = b""
            async for chunk in response.content.iter_any():
                *messages, pending = (pending + chunk).split(b"\n\n")  # darkroom ends lines with \n alone
                for message in messages:
                    _, _, rest = message.partition(b"\n")  # `id: ...` comes first
                    if rest.startswith(self.WANTED):
                        event, _, data = rest.partition(b"\n")
                        await self._on(event[7:].decode(), json.loads(data.removeprefix(b"data: ")))

    async def _on(self, event: str, data: dict[str, Any]) -> None:
        now = time.perf_counter()
        if event == "task_update" and data["status"] in ("completed", "failed", "canceled"):
            if data["status"] == "completed":
                self.completed.setdefault(data["id"], now)
            else:
                self.failed[data["id"]] = data.get("error") or data["status"]
        elif event == "job_update":
            if data["status"] == "running":
                self.started.setdefault((data["folder"], data["id"]), now)
            return  # nobody waits on a job
        elif event == "item" and data["photo"]["thumbnail_status"] == "generated":
            self.generated.setdefault((data["folder"], data["photo"]["filename"]), now)
        else:
            return
        async with self._changed:
            self._changed.notify_all()

    async def until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        async def wait() -> None:
            async with self._changed:
                await self._changed.wait_for(done)

        try:
            await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}") from None

    async def tasks_done(self, task_ids: list[str], timeout: float) -> float:
        """When the last of these tasks completed; BenchError if one failed."""
        await self.until(
            lambda: all(t in self.completed or t in self.failed for t in task_ids),
            timeout,
            f"{len(task_ids)} upload task(s)",
        )
        failed = {t: self.failed[t] for t in task_ids if t in self.failed}
        if failed:
            raise BenchError(f"upload task(s) did not complete: {failed}")
        return max(self.completed[t] for t in task_ids)


class Timeline:
    """When each kind of task, job and photo event (`job.started`, `photo.derivatives_updated`, ...) was
    first published since `reset`, seen on a plain NATS subscription (the latency phase only: it costs
    the bench and nats-server a delivery per event)."""

    KINDS = ("task", "job", "photo")

    def __init__(self) -> None:
        self.first: dict[str, float] = {}

    def reset(self) -> None:
        self.first = {}

    async def on_message(self, msg: Msg) -> None:
        now = time.perf_counter()
        parts = msg.subject.split(".")  # darkroom.<kind>.<project>.<task or photo key>.<event>[.<lane>.<job type>]
        self.first.setdefault(f"{parts[1]}.{parts[4]}", now)


class Darkroom:
    """`darkroom up --nats URL` as a child process, logging to a file."""

    def __init__(self, root: Path, nats_url: str, workers: int) -> None:
        self.root = root
        self.nats_url = nats_url
        self.workers = workers
        self.port = free_port()
        self.log_path = root / "darkroom.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, http: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
        env["DARKROOM_PROCESSING__WORKERS"] = str(self.workers)
        command = [
            darkroom_command(),
            "up",
            "--nats",
            self.nats_url,
            "--data",
            str(self.root / "data"),
            "--port",
            str(self.port),
        ]
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )
        process = self.process
        await wait_ready(
            http,
            self.base_url,
            lambda: f"darkroom up exited with {process.returncode}" if process.returncode is not None else None,
            self.log_tail,
            timeout,
        )

    async def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def create_project(http: aiohttp.ClientSession, base_url: str, name: str) -> str:
    async with http.post(f"{base_url}/api/projects", json={"name": name}) as response:
        body = await response.json()
        if response.status != 201:
            raise BenchError(f"POST /api/projects answered {response.status}: {body}")
    return body["project"]["folder"]


async def upload(
    http: aiohttp.ClientSession, base_url: str, folder: str, files: list[tuple[Path, str]], client: str
) -> str:
    """One multipart request with a `photos` part per (path, name to upload it as); the task id."""
    url = f"{base_url}/api/projects/{quote(folder, safe='')}/upload"
    if client == "sendfile":
        status, raw = await post_files(url, "photos", files)
        body = json.loads(raw) if raw else {}
    else:
        form = aiohttp.FormData()
        handles = [path.open("rb") for path, _ in files]
        try:
            for handle, (_, name) in zip(handles, files):
                form.add_field("photos", handle, filename=name, content_type="image/jpeg")
            async with http.post(url, data=form) as response:
                status, body = response.status, await response.json()
        finally:
            for handle in handles:
                handle.close()
    if status != 201 or len(body.get("files", [])) != len(files):
        raise BenchError(f"upload answered {status}: {str(body)[:500]}")
    return body["task_id"]


def as_names(photos: list[Path], prefix: str) -> list[tuple[Path, str]]:
    # A basename lives in one project only: every phase uploads the same photos under its own names.
    return [(p, f"{prefix}-{i:03d}.jpg") for i, p in enumerate(photos)]


@dataclass
class Throughput:
    photos: int
    photos_s: float
    answered_s: float  # from the first request until the last upload response
    total_s: float
    rss: Rss
    cpu: dict[str, float]
    first_job_s: float  # the first job seen running on SSE
    images_done_s: float  # the last generated thumbnail seen on SSE
    tasks: int
    jobs_started: int
    rss_after_mb: float  # the whole tree once the phase's tasks completed
    cpu_ms: dict[str, float]  # CPU milliseconds per photo, by process group

    def describe(self) -> str:
        images = self.images_done_s - self.first_job_s
        return (
            f"{self.photos_s:.2f} photos/s\n"
            f"  from the first request: last upload answered {self.answered_s:.2f} s, first job running "
            f"{self.first_job_s:.2f} s, last thumbnail generated {self.images_done_s:.2f} s (so "
            f"{self.photos / images:.2f} photos/s between), all tasks completed {self.total_s:.2f} s\n"
            f"  {self.tasks} tasks, {self.jobs_started} jobs started, {self.photos} photos\n"
            f"  peak RSS {self.rss.total_mb:.0f} MB = {self.rss.each_mb} ({self.rss_after_mb:.0f} MB right after)\n"
            f"  CPU, share of one core: {shares_text(self.cpu)}\n"
            f"  CPU ms per photo: {per_photo_text(self.cpu_ms)}"
        )


class Watch:
    """What one pipeline phase costs: peak RSS of the darkroom tree, CPU shares, optionally a py-spy profile."""

    def __init__(self, dr: Darkroom, nats_pid: int, events: Events, profile: Path | None = None) -> None:
        self.dr = dr
        self.nats_pid = nats_pid
        self.events = events
        self.profile = profile
        self.rss = PeakRss(dr.pid)
        self.cpu: CpuMeter | None = None
        self.spy: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Watch:
        if self.profile is not None:
            self.spy = await py_spy(self.dr.pid, self.profile)
        children = [pid for pid in descendants(self.dr.pid) if pid != self.dr.pid]
        workers = [pid for pid in children if is_worker_process(pid)]
        self.cpu = CpuMeter(
            {
                "darkroom": [self.dr.pid],
                "worker process": workers,
                "image processes": [pid for pid in children if pid not in workers],
                "nats-server": [self.nats_pid],
                "bench": [os.getpid()],
            }
        )
        self.rss.__enter__()
        return self

    async def __aexit__(self, *_: object) -> None:
        self.rss.__exit__()
        if self.spy is not None:
            self.spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            await self.spy.wait()

    def result(self, folder: str, photos: int, tasks: int, began: float, answered: float, last: float) -> Throughput:
        assert self.cpu is not None
        started = [at for (f, _), at in self.events.started.items() if f == folder]
        thumbnails = [at for (f, _), at in self.events.generated.items() if f == folder]
        if len(thumbnails) != photos:
            raise BenchError(f"{len(thumbnails)} of {photos} photos in {folder!r} got a generated thumbnail")
        shares = self.cpu.shares()
        return Throughput(
            photos,
            photos / (last - began),
            answered - began,
            last - began,
            self.rss.peak,
            shares,
            min(started) - began,
            max(thumbnails) - began,
            tasks,
            len(started),
            sum(rss_mb(pid) for pid in descendants(self.dr.pid)),
            self.cpu.per_photo_ms(photos),
        )


async def py_spy(pid: int, out: Path) -> asyncio.subprocess.Process:
    """py-spy sampling darkroom up and its image processes until sent SIGINT."""
    command = [
        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--format",
        "flamegraph" if out.suffix == ".svg" else "raw",
        "--output",
        str(out),
    ]
    return await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


async def batch(
    http: aiohttp.ClientSession,
    dr: Darkroom,
    events: Events,
    photos: list[Path],
    watch: Watch,
    timeout: float,
    client: str,
) -> Throughput:
    folder = await create_project(http, dr.base_url, "bench batch")
    async with watch:
        began = time.perf_counter()
        task_id = await upload(http, dr.base_url, folder, as_names(photos, "b"), client)
        answered = time.perf_counter()
        last = await events.tasks_done([task_id], timeout)
    return watch.result(folder, len(photos), 1, began, answered, last)


async def one_per_request(
    files: list[tuple[Path, str]], concurrency: int, send: Callable[[list[tuple[Path, str]]], Awaitable[Any]]
) -> list[Any]:
    """Each file in a request of its own, `concurrency` in flight (as a browser sends them); what each answered."""
    todo = iter(files)  # shared by the senders below: each takes the next file
    answers: list[Any] = []

    async def sender() -> None:
        for file in todo:
            answers.append(await send([file]))

    await asyncio.gather(*(sender() for _ in range(min(concurrency, len(files)))))
    return answers


async def per_file(
    http: aiohttp.ClientSession,
    dr: Darkroom,
    events: Events,
    photos: list[Path],
    watch: Watch,
    concurrency: int,
    timeout: float,
    client: str,
) -> Throughput:
    folder = await create_project(http, dr.base_url, "bench per file")
    async with watch:
        began = time.perf_counter()
        task_ids = await one_per_request(
            as_names(photos, "f"), concurrency, lambda files: upload(http, dr.base_url, folder, files, client)
        )
        answered = time.perf_counter()
        last = await events.tasks_done(task_ids, timeout)
    return watch.result(folder, len(photos), len(task_ids), began, answered, last)


MILESTONES = (
    "upload answered",
    "photo.file_added",
    "task.requested",
    "job.requested",
    "job.started",
    "photo.derivatives_updated",
    "SSE item",
)


async def latency(
    http: aiohttp.ClientSession,
    dr: Darkroom,
    events: Events,
    nats_url: str,
    photos: list[Path],
    timeout: float,
    client: str,
) -> tuple[list[dict[str, float]], Rss]:
    """One photo at a time: seconds from request start to each milestone, the last being the photo's
    `item` event with a generated thumbnail."""
    folder = await create_project(http, dr.base_url, "bench latency")
    timeline = Timeline()
    nc = await nats.connect(nats_url, name="darkroom-bench")
    runs = []
    try:
        for kind in Timeline.KINDS:  # not darkroom.>: what else is stored would cost nats-server and the bench
            await nc.subscribe(
                f"darkroom.{kind}.>", cb=timeline.on_message, pending_msgs_limit=-1, pending_bytes_limit=-1
            )
        with PeakRss(dr.pid) as rss:
            for path, name in as_names(photos, "l"):
                timeline.reset()
                began = time.perf_counter()
                task_id = await upload(http, dr.base_url, folder, [(path, name)], client)
                answered = time.perf_counter()
                key = (folder, Path(name).stem)
                await events.until(lambda: key in events.generated, timeout, f"the thumbnail of {name}")
                times = {kind: at - began for kind, at in timeline.first.items()}
                times.update({"upload answered": answered - began, "SSE item": events.generated[key] - began})
                runs.append(times)
                await events.tasks_done([task_id], timeout)  # its later steps finish before the next photo
                await asyncio.sleep(0.5)
    finally:
        await nc.close()
    return runs, rss.peak


# -- bare upload ----------------------------------------------------------------------------------

BARE_UPLOAD = Path(__file__).resolve().parent / "bare_upload.py"


@dataclass
class BareUpload:
    """The same uploads through bench/bare_upload.py: received and written as Darkroom does, derived
    in the same pool, without tasks, read model or SSE; without events, or with the contract's log."""

    batch_s: float = 0.0
    per_file_s: float = 0.0
    per_file_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per photo, per file


async def bare_upload(args: argparse.Namespace, root: Path, photos: list[Path], log: NatsServer | None) -> BareUpload:
    """Both uploads through a fresh bare upload server, files saved under `root`; with `log` (a started
    nats-server), keeping on it the events Darkroom's log would hold."""
    name = "bare upload server + log" if log else "bare upload server"
    folder, log_path, port = root / name, root / f"{name}.log", free_port()
    folder.mkdir()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as output:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BARE_UPLOAD),
            str(folder),
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            *(["--events", log.url] if log else []),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )

    async def send(files: list[tuple[Path, str]]) -> None:
        status, raw = await post_files(f"{base}/upload", "photos", files)
        body = json.loads(raw) if raw else {}
        if status != 201 or len(body.get("files", [])) != len(files):
            raise BenchError(f"the {name} answered {status}: {str(body)[:500]}")

    result, derived = BareUpload(), 0
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout)) as http:
            await wait_ready(
                http,
                base,
                lambda: f"bare_upload.py exited with {child.returncode}" if child.returncode is not None else None,
                lambda: log_path.read_text(errors="replace")[-3000:],
                args.timeout,
            )
            for phase, prefix in (("one request", "b"), (f"one request per file ({args.concurrency} in flight)", "f")):
                files = as_names(photos, prefix)
                groups = {
                    "bare server": [child.pid],
                    "bench": [os.getpid()],
                    "image processes": [pid for pid in descendants(child.pid) if pid != child.pid],
                }
                if log is not None and log.process is not None:
                    groups["nats-server"] = [log.process.pid]
                cpu = CpuMeter(groups)
                if prefix == "b":
                    await send(files)
                else:
                    await one_per_request(files, args.concurrency, send)
                derived += len(files)
                async with http.get(f"{base}/derived", params={"n": str(derived)}) as response:
                    counts = await response.json()
                photos_s, shares = len(files) / (time.perf_counter() - cpu.began), cpu.shares()
                if counts["failed"]:
                    raise BenchError(f"the {name} failed to derive {counts['failed']} photos")
                if prefix == "b":
                    result.batch_s = photos_s
                else:
                    result.per_file_s, result.per_file_ms = photos_s, cpu.per_photo_ms(len(files))
                print(
                    f"{name}, {phase}: {photos_s:.2f} photos/s (CPU, share of one core: "
                    f"{shares_text(shares)}; ms per photo: {per_photo_text(cpu.per_photo_ms(len(files)))})",
                    flush=True,
                )
                await asyncio.sleep(1.0)
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
            await child.wait()
    return result


# -- run ------------------------------------------------------------------------------------------


@dataclass
class Results:
    """Rounds of pipeline and bare upload phases, each between two bare runs: a round's share is of the
    mean of the bare runs around it, so load that comes and goes on the machine weighs on both sides."""

    bare: list[Bare] = field(default_factory=list)  # one before the first round and one after each
    batch: list[Throughput] = field(default_factory=list)
    per_file: list[Throughput] = field(default_factory=list)
    bare_upload: list[BareUpload] = field(default_factory=list)
    logged_upload: list[BareUpload] = field(default_factory=list)  # the bare upload server keeping the log
    latency_s: float = 0.0
    rss: Rss = field(default_factory=Rss)
    exit_codes: list[int | None] = field(default_factory=list)

    def around(self, round_index: int) -> float:
        """Bare photos/s around a round: the mean of the runs just before and just after it."""
        return (self.bare[round_index].photos_s + self.bare[round_index + 1].photos_s) / 2

    def shares(self, rates: list[float]) -> list[float]:
        return [rate / self.around(i) for i, rate in enumerate(rates)]

    @property
    def bare_one_s(self) -> float:
        """One photo's bare image work around the last round, where the latency phase runs."""
        return (self.bare[-2].one_s + self.bare[-1].one_s) / 2


async def pipeline(
    args: argparse.Namespace, root: Path, photos: list[Path], results: Results, with_latency: bool
) -> None:
    """A fresh nats-server and `darkroom up`, the pipeline phases, then SIGTERM."""
    server = NatsServer(root / "nats")
    dr: Darkroom | None = None
    try:
        await server.start()
        assert server.process is not None
        dr = Darkroom(root, server.url, args.workers)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout)) as http:
            await dr.start(http)
            idle = sum(rss_mb(pid) for pid in descendants(dr.pid))
            print(f"darkroom up ready (pid {dr.pid}), {idle:.0f} MB RSS idle with its children", flush=True)
            events, connected = Events(), asyncio.Event()
            follower = asyncio.create_task(events.follow(http, dr.base_url, connected))
            try:
                waiter = asyncio.create_task(connected.wait())
                await asyncio.wait([follower, waiter], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if follower.done():
                    follower.result()
                await phases(args, http, dr, server, events, photos, results, with_latency)
            finally:
                follower.cancel()
        code = await dr.stop()
        results.exit_codes.append(code)
        print(f"darkroom up exited with {code} after SIGTERM", flush=True)
        if code != 0:
            print(dr.log_tail(), flush=True)
    except BenchError:
        if dr is not None:
            print(f"darkroom up log, last lines:\n{dr.log_tail()}", file=sys.stderr)
        raise
    finally:
        if dr is not None:
            await dr.stop()
        await server.stop()


async def phases(
    args: argparse.Namespace,
    http: aiohttp.ClientSession,
    dr: Darkroom,
    server: NatsServer,
    events: Events,
    photos: list[Path],
    results: Results,
    with_latency: bool,
) -> None:
    assert server.process is not None
    round_number = len(results.batch) + 1

    def watch(name: str) -> Watch:
        out = args.profile / f"{name}-{round_number}.{args.profile_format}" if args.profile else None
        return Watch(dr, server.process.pid, events, out)

    b = await batch(http, dr, events, photos, watch("batch"), args.timeout, args.client)
    results.batch.append(b)
    print(f"pipeline, one request: {b.describe()}", flush=True)
    await asyncio.sleep(1.0)
    f = await per_file(http, dr, events, photos, watch("per-file"), args.concurrency, args.timeout, args.client)
    results.per_file.append(f)
    print(f"pipeline, one request per file ({args.concurrency} in flight): {f.describe()}", flush=True)
    results.rss = results.rss.merge(b.rss).merge(f.rss)
    if not with_latency:
        return
    await asyncio.sleep(1.0)
    runs, rss = await latency(http, dr, events, server.url, photos[: args.latency_runs], args.timeout, args.client)
    seen = [run["SSE item"] for run in runs]
    results.latency_s = statistics.median(seen)
    results.rss = results.rss.merge(rss)
    print(
        f"single photo, upload -> thumbnail generated (SSE item): median {results.latency_s:.2f} s over "
        f"{', '.join(f'{t:.2f}' for t in seen)} s; peak RSS {rss.total_mb:.0f} MB; median from request start:",
        flush=True,
    )
    for milestone in MILESTONES:
        print(f"  {milestone:<27} {statistics.median(run.get(milestone, math.nan) for run in runs):6.3f} s")


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def by_round(shares: list[float], rates: list[float]) -> str:
    """The median share of bare over the rounds, then each round's."""
    rounds = " / ".join(f"{share:.0%}" for share in shares)
    return f"{statistics.median(rates):.2f} photos/s = {statistics.median(shares):.0%} of bare (rounds {rounds})"


def ratios(rates: list[float], floors: list[float]) -> list[float]:
    """Each round's rate over that round's floor, so drift weighs on both."""
    return [rate / floor for rate, floor in zip(rates, floors)]


def rounds_text(shares: list[float]) -> str:
    return f"{statistics.median(shares):.0%} (rounds {' / '.join(f'{share:.0%}' for share in shares)})"


def report(args: argparse.Namespace, r: Results) -> None:
    batch_shares = r.shares([t.photos_s for t in r.batch])
    file_shares = r.shares([t.photos_s for t in r.per_file])
    per_file = f"a request per file x{args.concurrency}"
    # Each round's rates: the pipeline's, then the bare upload server's without and with the log after it.
    rates = {
        "one request": (
            [t.photos_s for t in r.batch],
            [u.batch_s for u in r.bare_upload],
            [u.batch_s for u in r.logged_upload],
        ),
        per_file: (
            [t.photos_s for t in r.per_file],
            [u.per_file_s for u in r.bare_upload],
            [u.per_file_s for u in r.logged_upload],
        ),
    }
    over_upload = {way: ratios(pipe, bare) for way, (pipe, bare, _) in rates.items()}
    latency_ratio = r.latency_s / r.bare_one_s
    largest = (
        f"largest process {r.rss.single_mb:.0f} MB ({'main' if r.rss.single_is_main else 'a child'}): {r.rss.each_mb}"
    )
    bare_runs = " / ".join(f"{b.photos_s:.2f}" for b in r.bare)
    rows = [
        ("measure", "measured", "goal", "", "for reference"),
        (
            f"bare Pillow, {args.workers} processes",
            f"{statistics.median(b.photos_s for b in r.bare):.2f} photos/s (median of {bare_runs})",
            "",
            "",
            f"~{BARE_EXPECTED_S:g} photos/s expected",
        ),
        (
            "pipeline, one request",
            by_round(batch_shares, [t.photos_s for t in r.batch]),
            f">= {RATIO_GOAL:.0%} of bare",
            verdict(statistics.median(batch_shares) >= RATIO_GOAL),
            f"Node.js {NODE_BATCH_S:g} photos/s",
        ),
        (
            f"pipeline, a request per file x{args.concurrency}",
            by_round(file_shares, [t.photos_s for t in r.per_file]),
            f">= {RATIO_GOAL:.0%} of bare",
            verdict(statistics.median(file_shares) >= RATIO_GOAL),
            f"Node.js {NODE_PER_FILE_S:g} photos/s",
        ),
        *(
            (f"bare upload server, {way}", by_round(r.shares(bare), bare), "", "", "no events, tasks or read model")
            for way, (_, bare, _) in rates.items()
        ),
        *(
            (
                f"bare upload server + log, {way}",
                by_round(r.shares(logged), logged),
                "",
                "",
                "and the contract's events, stored and read once",
            )
            for way, (_, _, logged) in rates.items()
        ),
        *(
            (
                f"pipeline / bare upload server, {way}",
                rounds_text(shares),
                f">= {UPLOAD_RATIO_GOAL:.0%}",
                verdict(statistics.median(shares) >= UPLOAD_RATIO_GOAL),
                "",
            )
            for way, shares in over_upload.items()
        ),
        *(
            (f"{above} / {below}, {way}", rounds_text(ratios(rate[a], rate[b])), "", "", what)
            for above, a, below, b, what in (
                ("bare upload server + log", 2, "bare upload server", 1, "what keeping the contract's log costs alone"),
                ("pipeline", 0, "bare upload server + log", 2, "Darkroom's own work beyond keeping its log"),
            )
            for way, rate in rates.items()
        ),
        (
            f"CPU ms per photo, a request per file x{args.concurrency}",
            per_photo_text(median_ms([t.cpu_ms for t in r.per_file])),
            "",
            "",
            f"the bare upload server: {per_photo_text(median_ms([u.per_file_ms for u in r.bare_upload]))}; "
            f"+ log: {per_photo_text(median_ms([u.per_file_ms for u in r.logged_upload]))}",
        ),
        (
            "peak RSS, darkroom up + children",
            f"{r.rss.total_mb:.0f} MB; {largest}",
            f"<= {RSS_GOAL_MB:.0f} MB",
            verdict(r.rss.total_mb <= RSS_GOAL_MB),
            f"Node.js ~{NODE_RSS_MB:.0f} MB",
        ),
        (
            "single photo -> thumbnail",
            f"{r.latency_s:.2f} s = {latency_ratio:.2f}x bare {r.bare_one_s:.2f} s",
            f"<= {LATENCY_GOAL:g}x bare",
            verdict(latency_ratio <= LATENCY_GOAL),
            f"Node.js {NODE_LATENCY_S:g} s",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(
        f"\n== {args.photos} photos of {WIDTH}x{HEIGHT}, {args.workers} image processes, {os.cpu_count()} CPUs, "
        f"{args.rounds} round(s) =="
    )
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    others = max(cpu["other"] for cpu in [*(b.cpu for b in r.bare), *(t.cpu for t in r.batch + r.per_file)])
    if others > OTHER_LOAD_WARN:
        print(
            f"note: other programs took up to {others:.0%} of a core during a timed phase, so these figures "
            f"are skewed; see the CPU lines above"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=24, help="synthetic 24 MP photos (default 24)")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="image processes: the bare pool's size and darkroom's processing.workers (default 2)",
    )
    p.add_argument("--concurrency", type=int, default=4, help="upload requests in flight, per-file phase (default 4)")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of pipeline and bare upload phases, each followed by a bare run (default 5)",
    )
    p.add_argument("--latency-runs", type=int, default=5, help="single photos timed one at a time (default 5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic photos (default 1)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds any one wait may take (default 300)")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record darkroom up and its image processes with py-spy during the batch and per-file "
        "phases, into DIR (this costs CPU: figures taken with it are not comparable)",
    )
    p.add_argument(
        "--profile-format",
        choices=("svg", "folded"),
        default="svg",
        help="flame graph (svg) or collapsed stacks (folded); default svg",
    )
    p.add_argument(
        "--client",
        choices=("sendfile", "aiohttp"),
        default="sendfile",
        help="upload client: sendfile(2) from the page cache, cheap like a browser is for the server "
        "(default), or aiohttp, which takes 20-40 ms of the image processes' CPU per photo",
    )
    args = p.parse_args(argv)
    if args.profile and not (shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").is_file()):
        p.error("--profile needs py-spy: pip install py-spy")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    if min(args.photos, args.workers, args.concurrency, args.latency_runs, args.rounds) < 1:
        p.error("counts must be at least 1")
    args.latency_runs = min(args.latency_runs, args.photos)
    return args


async def run(args: argparse.Namespace) -> int:
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop darkroom and nats-server.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    root = Path(tempfile.mkdtemp(prefix="darkroom-bench-derivatives-"))
    try:
        spec, results = spec_of(ProcessingConfig()), Results()
        began = time.perf_counter()
        (root / "photos").mkdir()
        photos = await asyncio.to_thread(generate, root / "photos", args.photos, args.seed)
        size_mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
        print(
            f"generated {len(photos)} photos of {WIDTH}x{HEIGHT}, {size_mb:.1f} MB each, one in "
            f"{ROTATED_EVERY} rotated by EXIF, in {time.perf_counter() - began:.0f} s",
            flush=True,
        )
        (root / "bare").mkdir()

        async def measure_bare(when: str) -> None:
            b = await asyncio.to_thread(bare, photos, root / "bare", args.workers, args.latency_runs, spec)
            results.bare.append(b)
            print(
                f"bare make_derivatives, {when}: {b.photos_s:.2f} photos/s with {args.workers} processes "
                f"(CPU, share of one core: {shares_text(b.cpu)}; {b.cpu_ms:.0f} ms per photo); one photo in-process "
                f"median {b.one_s:.2f} s",
                flush=True,
            )

        await measure_bare("before the first round")
        for index in range(args.rounds):
            round_dir = root / f"round-{index + 1}"
            round_dir.mkdir()
            print(f"-- round {index + 1} of {args.rounds}", flush=True)
            await pipeline(args, round_dir, photos, results, with_latency=index == args.rounds - 1)
            results.bare_upload.append(await bare_upload(args, round_dir, photos, None))
            log = NatsServer(round_dir / "log nats")
            try:
                results.logged_upload.append(await bare_upload(args, round_dir, photos, await log.start()))
            finally:
                await log.stop()
            await measure_bare(f"after round {index + 1}")
        report(args, results)
        return 0 if all(code == 0 for code in results.exit_codes) else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    return bench_main(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
