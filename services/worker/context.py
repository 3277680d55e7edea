"""What a job handler gets: its job, progress reporting, and the cancel flag."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..kernel.config import Config
from ..kernel.events import JobRequested


class JobCanceledError(Exception):
    """Raised inside a handler when its task was canceled; the job ends `canceled`."""


class PermanentError(Exception):
    """A failure that retrying cannot fix: the job fails at once."""


@dataclass
class JobContext:
    job: JobRequested
    attempt: int
    config: Config
    data_dir: Path
    report: Callable[[int, int], Awaitable[None]]
    is_canceled: Callable[[], bool]
    env: dict[str, Any] = field(default_factory=dict)
    last_progress: float = field(default_factory=time.monotonic)

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
