"""What the benchmarks share: finding `darkroom`, reading a process's CPU time, running a bench."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Coroutine


class BenchError(Exception):
    """A bench that cannot go on; printed without a traceback, exit code 2."""


def darkroom_command() -> str:
    beside = Path(sys.executable).parent / "darkroom"
    found = str(beside) if beside.is_file() else shutil.which("darkroom")
    if not found:
        raise BenchError("the `darkroom` command is not installed: pip install -e .")
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_processes(pid: int) -> dict[int, str]:
    """The processes `pid` started, with their command lines (Linux /proc; {} elsewhere)."""
    found = {}
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = [int(child) for child in children.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
        for child in pids:
            try:
                found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                pass
    return found


def bench_main(run: Callable[[Any], Coroutine[Any, Any, int]], args: Any) -> int:
    try:
        return asyncio.run(run(args))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 130


async def wait_ready(
    http, base_url: str, exited: Callable[[], str | None], log_tail: Callable[[], str], timeout: float = 30.0
) -> None:
    """Until GET /readyz answers 200; a process that exits meanwhile (`exited` says which) fails it."""
    import time

    import aiohttp

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gone = exited()
        if gone:
            raise BenchError(f"{gone}:\n{log_tail()}")
        try:
            async with http.get(f"{base_url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise BenchError(f"darkroom not ready within {timeout:g}s:\n{log_tail()}")
