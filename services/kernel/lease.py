"""Project file leases: one JetStream KV key per project, with a TTL so a dead worker's lease ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import AsyncIterator, Callable

from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import KeyWrongLastSequenceError, NoStreamResponseError, NotFoundError
from nats.js.kv import KeyValue

from .bus import Bus
from .provision import LEASE_TTL_S, lease_bucket

log = logging.getLogger("darkroom.worker")


class LeaseBusy(Exception):
    pass


CHECK_HOLDER_S = 0.5  # how often a waiter looks whether the lease's holder still lives
# How long the bucket may have no leader (a node died, a replica takes over) before a take gives up.
LEADERLESS_S = 30.0


def this_process() -> str:
    """This process as a lease names its holder: host, pid namespace, pid and start time, so that
    another process on the same host can tell it is gone (a pid used again later is not it)."""
    return "/".join((socket.gethostname(), _namespace(), str(os.getpid()), _started(os.getpid()) or ""))


def holder_gone(holder: str) -> bool:
    """Whether the process a lease names has ended, as far as this host can tell: only a process of
    this host and pid namespace can be looked at; any other is left to the lease's TTL."""
    host, namespace, pid, started = (holder.split("/") + ["", "", "", ""])[:4]
    if host != socket.gethostname() or not namespace or namespace != _namespace() or not pid.isdigit():
        return False
    return _started(int(pid)) != started


def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux: no process is looked at
        return ""


def _started(pid: int) -> str | None:
    """When the process started (clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if stat[0] in ("Z", "X") else stat[19]  # a zombie has ended


class Leases:
    """Who moves or adopts a project's files: one holder at a time, across all processes."""

    def __init__(self, bus: Bus, holder: str, replicas: int = 1) -> None:
        self.bus = bus
        self.holder = holder
        self.replicas = replicas
        self._kv: KeyValue | None = None
        self.process = this_process()

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await lease_bucket(self.bus.js, self.replicas)
        return self._kv

    @contextlib.asynccontextmanager
    async def hold(
        self, project_id: str, purpose: str, alive: Callable[[], None] | None = None, timeout: float | None = None
    ) -> AsyncIterator[None]:
        """Wait for the project's lease (staying alive meanwhile), keep it fresh, release it."""
        kv = await self._bucket()
        value = f"{self.holder} {purpose}\n{self.process}".encode()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        checked = loop.time()
        leaderless_until = loop.time() + LEADERLESS_S
        while True:
            try:
                revision = await kv.create(project_id, value)
                break
            except NoStreamResponseError:
                # Nothing stored it: the bucket has no leader for a moment. Asked again, as a busy lease is.
                if loop.time() > leaderless_until:
                    raise
                if alive is not None:
                    alive()
                await asyncio.sleep(0.2)
            except KeyWrongLastSequenceError:
                if alive is not None:
                    alive()  # waiting on another job is not being stuck
                if deadline is not None and loop.time() > deadline:
                    raise LeaseBusy(f"project {project_id} is busy with another file operation") from None
                if loop.time() - checked >= CHECK_HOLDER_S:
                    checked = loop.time()
                    await self._end_if_gone(kv, project_id)
                await asyncio.sleep(0.05)
        refresher = asyncio.create_task(self._refresh(kv, project_id, value, revision))
        try:
            yield
        finally:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
            try:
                await kv.delete(project_id)
            except (NotFoundError, Exception) as exc:  # expired already; the TTL ends it either way
                log.debug("releasing lease %s: %s", project_id, exc)

    async def _end_if_gone(self, kv: KeyValue, key: str) -> None:
        """A lease whose holder was killed on this host ends now, not when its TTL runs out."""
        try:
            entry = await kv.get(key)
        except NotFoundError:  # released meanwhile (or a delete marker): the next try takes it
            return
        holder = (entry.value or b"").decode(errors="replace").rpartition("\n")[2]
        if holder_gone(holder):
            log.info("project %s: the lease of %s, which has ended, is let go", key, holder)
            try:
                await kv.delete(key, last=entry.revision)
            except KeyWrongLastSequenceError:  # taken or released meanwhile
                pass

    async def _refresh(self, kv: KeyValue, key: str, value: bytes, revision: int) -> None:
        """Keep the lease alive; a refresh that fails while a replica takes over is tried again, well
        within the TTL, so a fail-over never hands the project to another holder."""
        delay = LEASE_TTL_S / 3
        while True:
            await asyncio.sleep(delay)
            try:
                revision = await kv.update(key, value, last=revision)
                delay = LEASE_TTL_S / 3
            except (NoStreamResponseError, NatsTimeout) as exc:
                log.warning("lease %s: refresh failed (%s); trying again", key, type(exc).__name__)
                delay = 1.0
            except KeyWrongLastSequenceError:
                # A refresh that timed out may have landed: the lease is still ours if it holds our value.
                try:
                    entry: KeyValue.Entry | None = await kv.get(key)
                except NotFoundError:
                    entry = None
                if entry is None or entry.value != value:
                    log.error("lease %s: lost while held (it expired during a fail-over)", key)
                    return
                revision = entry.revision or revision
                delay = 1.0
