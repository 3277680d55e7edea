"""A job type declared as data: its name, its handler and how the worker runs it (as arq's Function)."""

from __future__ import annotations

from dataclasses import dataclass

from .context import Handler, JobContext
from .merge import answered, shared


@dataclass(frozen=True)
class JobType:
    name: str
    handler: Handler
    # It reads the read model: it runs once the model has applied the event that asked for the job.
    reads_state: bool = False
    # A check of a whole project: a job of this type for one project shares a run that starts after the
    # job was asked (worker/merge.py), since that run sees all the job would.
    merged: bool = False

    def needs_state(self, ctx: JobContext) -> bool:
        """Whether the worker must wait for the read model before running this job: not when a shared run
        that began with the model past the job answers it."""
        return self.reads_state and not (self.merged and answered(ctx))

    async def run(self, ctx: JobContext) -> None:
        if self.merged:
            await shared(self.handler, ctx)
        else:
            await self.handler(ctx)


def by_name(job_types: list[JobType]) -> dict[str, JobType]:
    return {job_type.name: job_type for job_type in job_types}
