"""What a job handler gets: its job, progress reporting, and the cancel flag."""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncContextManager, Awaitable, Callable, TypeVar

from ..kernel.config import Config
from ..kernel.definitions import Definitions, task_requested
from ..kernel.events import BasenameClaimed, Event, JobRequested, TaskRequested
from ..kernel.folders import projects_root

if TYPE_CHECKING:
    from .jobs.derivatives import Derivations

E = TypeVar("E", bound=Event)


class JobCanceledError(Exception):
    """Raised inside a handler when its task was canceled; the job ends `canceled`."""


class PermanentError(Exception):
    """A failure that retrying cannot fix: the job fails at once."""


@dataclass
class Resources:
    """What handlers share within one worker process."""

    read: Any = None  # a projector ReadModel: current state, for handlers that need it
    derivations: "Derivations | None" = None  # image work, in the image processes
    definitions: Definitions = field(default_factory=dict)
    lease: Callable[..., AsyncContextManager[None]] | None = None
    checks: dict[tuple[str, str], "CheckRun"] = field(default_factory=dict)  # by (job type, project)
    hand_over: Callable[[BasenameClaimed], Awaitable[None]] | None = None  # kernel.ownership, for a move


@dataclass
class JobContext:
    job: JobRequested
    attempt: int
    config: Config
    data_dir: Path
    report: Callable[[int, int], Awaitable[None]]
    is_canceled: Callable[[], bool]
    publish: Callable[[list[Event]], Awaitable[int]]
    catch_up: Callable[[], Awaitable[None]]  # until the read model has applied all stored so far
    resources: Resources = field(default_factory=Resources)
    last_progress: float = field(default_factory=time.monotonic)
    seq: int = 0  # where the job's request is in the log
    state_ready: bool = True  # False: taken without waiting for the read model (a shared check)
    folder: str | None = None  # the project's folder now (renamed since the task began?), else the job's

    @property
    def project_dir(self) -> Path:
        folder = self.folder or self.job.folder
        if not folder:
            raise PermanentError(f"job {self.job.job_type} needs a project")
        return projects_root(self.data_dir) / folder

    def event(self, cls: type[E], project_id: str | None = None, **fields: Any) -> E:
        """An event caused by this job, with its envelope filled in: of its project, or of `project_id`."""
        job = self.job
        return cls(project_id=project_id or job.project_id, task_id=job.task_id, job_id=job.job_id,
                   causation_id=job.id, source=job.source, **fields)

    def task(self, task_type: str, items: list[str], project_id: str | None = None,
             folder: str | None = None) -> TaskRequested:
        """A task this job starts, as its task's source: on its own project, or on `project_id` in `folder`."""
        job = self.job
        return task_requested(self.resources.definitions[task_type], task_type, project_id=project_id or job.project_id,
                              folder=folder or (self.folder or job.folder if project_id is None else None),
                              source=job.source, items=items, causation_id=job.id)

    def project_lease(self) -> AsyncContextManager[None]:
        """Held while moving or adopting files of this project: such jobs never overlap."""
        if self.resources.lease is None or not self.job.project_id:
            raise PermanentError("no project lease available")
        return self.resources.lease(self.job.project_id, f"{self.job.job_type} {self.job.job_id}", self.alive)

    def lease_of(self, key: str) -> AsyncContextManager[None]:
        """The file lease of another project (a move holds both), or of anything with a key."""
        if self.resources.lease is None:
            raise PermanentError("no project lease available")
        return self.resources.lease(key, f"{self.job.job_type} {self.job.job_id}", self.alive)

    @property
    def items(self) -> list[str]:
        return self.job.items

    @property
    def canceled(self) -> bool:
        return self.is_canceled()

    def check_canceled(self) -> None:
        """Call between items: a canceled task stops here."""
        if self.is_canceled():
            raise JobCanceledError()

    async def progress(self, done: int, total: int) -> None:
        self.last_progress = time.monotonic()
        await self.report(done, total)

    def alive(self) -> None:
        """Work is going on without a countable item finished: keeps the job from timing out."""
        self.last_progress = time.monotonic()


Handler = Callable[[JobContext], Awaitable[None]]


def reads_state(handler: Handler) -> Handler:
    """Mark a handler that reads the read model: it runs once the model has applied its job."""
    handler.reads_state = True  # type: ignore[attr-defined]
    return handler


def needs_state(handler: Handler, ctx: JobContext) -> bool:
    """Whether the worker must wait for the read model before running this job."""
    answered = getattr(handler, "answered", None)
    return getattr(handler, "reads_state", False) and not (answered is not None and answered(ctx))


@dataclass
class CheckRun:
    done: asyncio.Future[None]
    started: bool = False
    covers: int = -1  # the log as far as the read model had it when the run started


def merged(handler: Handler) -> Handler:
    """Mark a check of a whole project: a job of its type for one project shares a run that starts
    after the job was asked (one waiting to start, one going, or the last one that succeeded),
    since that run sees all the job would; runs of one check on one project never overlap."""

    def answered(ctx: JobContext) -> bool:
        """A run that began with the model past this job answers it: nothing to wait for first."""
        latest = ctx.resources.checks.get((ctx.job.job_type, ctx.job.project_id or ""))
        return latest is not None and latest.started and ctx.seq <= latest.covers

    @functools.wraps(handler)
    async def run(ctx: JobContext) -> None:
        checks, key = ctx.resources.checks, (ctx.job.job_type, ctx.job.project_id or "")
        latest = checks.get(key)
        if latest is not None and (not latest.started or answered(ctx)):
            await _alive_until(ctx, latest.done)
            return latest.done.result()
        if not ctx.state_ready:
            # The run that answered it when it was taken failed since: wait for the model, as a retry.
            raise RuntimeError(f"the {ctx.job.job_type} run this job shared failed")
        mine = checks[key] = CheckRun(asyncio.get_running_loop().create_future())
        mine.done.add_done_callback(retrieved)
        try:
            if latest is not None:
                await _alive_until(ctx, latest.done)
            mine.started = True
            # Everything the model has applied was stored before this run began.
            mine.covers = ctx.resources.read.checkpoint if ctx.resources.read is not None else -1
            await handler(ctx)
            mine.done.set_result(None)
        except Exception as exc:
            mine.done.set_exception(exc)
            raise
        finally:
            if not mine.done.done():  # canceled: whoever shares it tries again
                mine.done.set_exception(RuntimeError(f"the shared {ctx.job.job_type} run was abandoned"))
            if checks.get(key) is mine and mine.done.exception() is not None:
                del checks[key]  # a run that succeeded stays: it answers jobs asked before it began

    run.answered = answered  # type: ignore[attr-defined]
    return run


async def _alive_until(ctx: JobContext, future: asyncio.Future) -> None:
    """Wait for another job's run: waiting on it is not being stuck."""
    while not future.done():
        ctx.alive()
        await asyncio.wait([future], timeout=ctx.config.pipeline.job_timeout_s / 4)


def retrieved(future: asyncio.Future) -> None:
    """Its failure is reported by the jobs that wait for it, or by none: not by the event loop."""
    if not future.cancelled():
        future.exception()
