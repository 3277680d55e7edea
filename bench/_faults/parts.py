"""The system under test as separate OS processes, each restarted the way systemd restarts a unit
with Restart=on-failure (deploy/systemd): after a kill or a non-zero exit, never after exit 0."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

Spawn = Callable[[], Awaitable[asyncio.subprocess.Process]]
PR_SET_CHILD_SUBREAPER = 36
STOP_LIMIT_S = 10.0  # CONTRACT: SIGTERM ends every command within 10 s


@dataclass
class Exit:
    """A part that ended without the suite asking: when, and with what code."""

    at: float
    code: int

    def __str__(self) -> str:
        how = f"signal {-self.code}" if self.code < 0 else f"code {self.code}"
        return f"exited with {how} at {time.strftime('%H:%M:%SZ', time.gmtime(self.at))}"


@dataclass
class Part:
    name: str
    spawn: Spawn
    restart_delay_s: float
    spawned: set[int]  # every pid the suite started, to tell orphans from its own children
    process: asyncio.subprocess.Process | None = None
    wanted: bool = False  # enabled, as a unit: ended otherwise than by `stop`, it is started again
    kills: int = 0
    exits: list[Exit] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)  # time.time() when each start returned
    stopped_in_s: float | None = None  # the final SIGTERM: how long the part took to end
    _killing: bool = False
    _watcher: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process and self.process.returncode is None else None

    async def start(self) -> None:
        self.wanted = True
        await self._run()

    async def _run(self) -> None:
        """Start until it runs: a start that fails (its server not up yet) is tried again."""
        while self.wanted:
            try:
                process = await self.spawn()
            except Exception:  # e.g. nats-server not listening in time: systemd would try again too
                await asyncio.sleep(self.restart_delay_s)
                continue
            self.process = process
            self.spawned.add(process.pid)
            self.starts.append(time.time())
            self._watcher = asyncio.create_task(self._watch(process), name=f"watch {self.name}")
            return

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        killed, self._killing = self._killing, False
        if killed:
            self.kills += 1
        elif self.wanted:
            self.exits.append(Exit(time.time(), code))
        if not self.wanted or (code == 0 and not killed):
            return  # stopped, or a clean exit: Restart=on-failure leaves it down
        await asyncio.sleep(self.restart_delay_s)
        if self.wanted and self.process is process:
            await self._run()

    async def kill(self) -> None:
        """kill -9; returns once it runs again, as systemd restarts it."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        self._killing = True
        process.kill()
        if self._watcher is not None:
            await asyncio.gather(self._watcher, return_exceptions=True)

    async def stop(self, timeout: float = 3 * STOP_LIMIT_S) -> float | None:
        """SIGTERM, as `systemctl stop`: seconds it took to end, None if it had to be killed."""
        self.wanted = False
        took: float | None = 0.0
        while True:
            process = self.process
            if process is not None and process.returncode is None:
                began = time.monotonic()
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), timeout)
                    took = time.monotonic() - began
                except TimeoutError:
                    process.kill()
                    await process.wait()
                    took = None
            if self._watcher is not None:
                await asyncio.gather(self._watcher, return_exceptions=True)
            if self.process is process:  # no start was under way meanwhile
                return took

    async def restart(self, away_s: float = 0.0) -> None:
        """`systemctl stop`, `away_s` seconds down, `systemctl start`."""
        await self.stop()
        await asyncio.sleep(away_s)
        await self.start()

    async def finish(self) -> None:
        """The end of the run: SIGTERM, and how long it took."""
        self.stopped_in_s = await self.stop()


def adopt_orphans() -> bool:
    """Become the subreaper of everything the parts start: a process a killed part leaves behind is
    then the suite's child, where it can be found (Linux; False elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), fields[0]


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def orphans(spawned: set[int]) -> list[tuple[int, str]]:
    """Live processes the suite adopted (its children it never started), with their command lines;
    zombies among them are reaped on the way."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spawned:
            continue
        stat = _stat(int(entry))
        if stat is None or stat[0] != me:
            continue
        if stat[1] == "Z":
            os.waitpid(int(entry), os.WNOHANG)
        else:
            found.append((int(entry), _command(int(entry))))
    return found


def end_orphans(found: list[tuple[int, str]]) -> None:
    """The processes were started, through the parts, by this suite: it ends them by their ids."""
    for pid, _ in found:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
