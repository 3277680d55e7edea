"""Is this process alive, is it ready: from its supervised loops and the checks its services add."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from .supervise import Loops, describe

# A check says why the process is not ready, or None. A check that takes longer than this is a
# reason in itself (a server that does not answer).
Check = Callable[[], Awaitable[str | None]]
CHECK_TIMEOUT_S = 2.0


@dataclass
class Health:
    loops: Loops
    checks: list[Check] = field(default_factory=list)
    # Until every service has started and added its checks: a listener up first must not say ready.
    starting: bool = True

    def broken(self) -> str | None:
        """Why this process cannot go on (it is on its way out), or None while it can."""
        if self.loops.fatal is None:
            return None
        name, exc = self.loops.fatal
        return f"{name} failed: {describe(exc)}"

    async def problems(self) -> list[str]:
        """Why this process is not ready: a loop down, or what a check found; [] when ready."""
        found = await asyncio.gather(*(_within(check) for check in self.checks))
        return (["starting"] if self.starting else []) + self.loops.problems() + [why for why in found if why]


async def _within(check: Check) -> str | None:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g}s ({getattr(check, '__name__', 'check')})"
    except Exception as exc:
        return describe(exc)
