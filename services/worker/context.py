"""What a job handler gets: its job, progress reporting, and the cancel flag."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncContextManager, Awaitable, Callable, Sequence, TypeVar

from ..kernel.config import Config
from ..kernel.definitions import Definitions
from ..kernel.events import BasenameClaimed, Event, JobRequested, TaskRequested
from ..kernel.folders import projects_root
from ..kernel.ids import new_id

if TYPE_CHECKING:  # they raise this module's JobCanceledError
    from .derivations import Derivations
    from .gate import ImageGate

E = TypeVar("E", bound=Event)


class JobCanceledError(Exception):
    """Raised inside a handler when its task was canceled; the job ends `canceled`."""


class PermanentError(Exception):
    """A failure that retrying cannot fix: the job fails at once."""


@dataclass
class CheckRun:
    """A shared run of a project check (worker/merge.py)."""

    done: asyncio.Future[None]
    started: bool = False
    covers: int = -1  # the log as far as the read model had it when the run started


@dataclass
class Resources:
    """What handlers share within one worker process."""

    read: Any = None  # a projector ReadModel: current state, for handlers that need it
    gate: ImageGate | None = None  # every call into the image processes passes it
    derivations: Derivations | None = None  # derivatives, made through the gate
    definitions: Definitions = field(default_factory=dict)
    lease: Callable[..., AsyncContextManager[None]] | None = None
    checks: dict[tuple[str, str], CheckRun] = field(default_factory=dict)  # by (job type, project)
    hand_over: Callable[[BasenameClaimed], Awaitable[None]] | None = None  # kernel.ownership, for a move


@dataclass
class JobContext:
    job: JobRequested
    attempt: int
    config: Config
    data_dir: Path
    report: Callable[[int, int], Awaitable[None]]
    is_canceled: Callable[[], bool]
    publish: Callable[[Sequence[Event]], Awaitable[int]]
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
        return cls(
            project_id=project_id or job.project_id,
            task_id=job.task_id,
            job_id=job.job_id,
            causation_id=job.id,
            source=job.source,
            **fields,
        )

    def task(
        self, task_type: str, items: list[str], project_id: str | None = None, folder: str | None = None
    ) -> TaskRequested:
        """A task this job starts, as its task's source: on its own project, or on `project_id` in `folder`."""
        job = self.job
        return self.resources.definitions[task_type].requested(
            task_type,
            new_id(),
            job.source,
            project_id=project_id or job.project_id,
            folder=folder or (self.folder or job.folder if project_id is None else None),
            items=items,
            causation_id=job.id,
        )

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
