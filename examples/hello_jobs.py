"""An example worker plugin: `DARKROOM_PIPELINE__PLUGINS=examples.hello_jobs`.

A plugin is a module with `HANDLERS`, a dict from job type to an async handler that takes a
JobContext: it reads `ctx.items`, reports `ctx.progress(done, total)`, and calls
`ctx.check_canceled()` between items so a canceled task stops at the next item. A job type that
reads the read model, or checks a whole project, is declared instead with
`JOB_TYPES = [JobType(name, handler, reads_state=True, merged=...)]` (darkroom.worker.jobtype).
"""

import asyncio

from darkroom.worker.context import JobContext


async def count(ctx: JobContext) -> None:
    for done, _item in enumerate(ctx.items, start=1):
        ctx.check_canceled()
        await asyncio.sleep(0.5)
        await ctx.progress(done, len(ctx.items))


HANDLERS = {"count": count}
