"""What a job handler gets: its job, progress reporting, and the cancel flag."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncContextManager, Awaitable, Callable, TypeVar

from ..kernel.config import Config
from ..kernel.definitions import Definitions
from ..kernel.events import Event, JobRequested
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


@dataclass
class JobContext:
    job: JobRequested
    attempt: int
    config: Config
    data_dir: Path
    report: Callable[[int, int], Awaitable[None]]
    is_canceled: Callable[[], bool]
    publish: Callable[[list[Event]], Awaitable[int]]
    resources: Resources = field(default_factory=Resources)
    last_progress: float = field(default_factory=time.monotonic)

    @property
    def project_dir(self) -> Path:
        if not self.job.folder:
            raise PermanentError(f"job {self.job.job_type} needs a project")
        return projects_root(self.data_dir) / self.job.folder

    def event(self, cls: type[E], **fields: Any) -> E:
        """An event caused by this job, with its envelope filled in."""
        job = self.job
        return cls(project_id=job.project_id, task_id=job.task_id, job_id=job.job_id, causation_id=job.id,
                   source=job.source, **fields)

    def project_lease(self) -> AsyncContextManager[None]:
        """Held while moving or adopting files of this project: such jobs never overlap."""
        if self.resources.lease is None or not self.job.project_id:
            raise PermanentError("no project lease available")
        return self.resources.lease(self.job.project_id, f"{self.job.job_type} {self.job.job_id}", self.alive)

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


def retrieved(future: asyncio.Future) -> None:
    """Its failure is reported by the job that waits for it, or by none: not by the event loop."""
    if not future.cancelled():
        future.exception()
