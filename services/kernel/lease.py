"""Project file leases: one JetStream KV key per project, with a TTL so a dead worker's lease ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
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
# How long a worker keeps a lease it let go for its next job on the project: a project's checks come
# back to back, and each take and release is two stored messages and four round trips.
LEASE_LINGER_S = 0.5


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


@dataclass
class _Held:
    """A lease this process holds in the bucket: for a job now (`busy`), or kept a moment for the next."""

    revision: int
    value: bytes  # as stored: the holder, the purpose it was taken for, and this process
    busy: bool = True
    refresher: asyncio.Task[None] | None = None
    linger: asyncio.TimerHandle | None = None


class Leases:
    """Who moves or adopts a project's files: one holder at a time, across all processes. With
    `linger_s`, a lease let go is kept that long for this process's next job on the project (a
    project's checks come back to back), so it is taken and released once for a burst of jobs."""

    def __init__(self, bus: Bus, holder: str, replicas: int = 1, linger_s: float = 0.0) -> None:
        self.bus = bus
        self.holder = holder
        self.replicas = replicas
        self.linger_s = linger_s
        self._kv: KeyValue | None = None
        self.process = this_process()
        self._held: dict[str, _Held] = {}
        self._releasing: set[asyncio.Task[None]] = set()
        self._closed = False

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
            held = self._held.get(project_id)
            if held is not None and held.refresher is not None and held.refresher.done():
                del self._held[project_id]  # lost while kept (expired in a fail-over): taken anew
                held = None
            if held is not None and not held.busy:
                held.busy = True
                if held.linger is not None:
                    held.linger.cancel()
                break
            if held is None:
                try:
                    held = _Held(await kv.create(project_id, value), value)
                    held.refresher = asyncio.create_task(self._refresh(kv, project_id, held))
                    self._held[project_id] = held
                    break
                except NoStreamResponseError:
                    # Nothing stored it: the bucket has no leader for a moment. Asked again, as a busy lease is.
                    if loop.time() > leaderless_until:
                        raise
                    if alive is not None:
                        alive()
                    await asyncio.sleep(0.2)
                    continue
                except KeyWrongLastSequenceError:
                    if loop.time() - checked >= CHECK_HOLDER_S:
                        checked = loop.time()
                        await self._end_if_gone(kv, project_id)
            # Another process holds it, or another job of this one.
            if alive is not None:
                alive()  # waiting on another job is not being stuck
            if deadline is not None and loop.time() > deadline:
                raise LeaseBusy(f"project {project_id} is busy with another file operation")
            await asyncio.sleep(0.05)
        try:
            yield
        finally:
            held.busy = False
            if self.linger_s > 0 and not self._closed:
                held.linger = loop.call_later(self.linger_s, self._let_go, kv, project_id, held)
            else:
                await self._release(kv, project_id, held)

    async def close(self) -> None:
        """Release every lease kept for a next job, at once: another process need not wait for them."""
        self._closed = True
        kv = self._kv
        if kv is not None:
            for project_id, held in list(self._held.items()):
                if not held.busy:
                    if held.linger is not None:
                        held.linger.cancel()
                    self._let_go(kv, project_id, held)
        await asyncio.gather(*self._releasing, return_exceptions=True)

    def _let_go(self, kv: KeyValue, project_id: str, held: _Held) -> None:
        if held.busy or self._held.get(project_id) is not held:
            return  # taken again meanwhile, or let go already
        releasing = asyncio.create_task(self._release(kv, project_id, held))
        self._releasing.add(releasing)
        releasing.add_done_callback(self._releasing.discard)

    async def _release(self, kv: KeyValue, project_id: str, held: _Held) -> None:
        if self._held.get(project_id) is held:
            del self._held[project_id]
        if held.refresher is not None:
            held.refresher.cancel()
            await asyncio.gather(held.refresher, return_exceptions=True)
        try:
            # Only our own revision: a lease that expired and was taken by another stays theirs.
            await kv.delete(project_id, last=held.revision)
        except KeyWrongLastSequenceError:
            # A refresh that timed out may have landed: still ours if it holds our value.
            with contextlib.suppress(Exception):
                entry = await kv.get(project_id)
                if entry.value == held.value:
                    await kv.delete(project_id, last=entry.revision)
        except Exception as exc:  # expired already, or no leader; the TTL ends it either way
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

    async def _refresh(self, kv: KeyValue, key: str, held: _Held) -> None:
        """Keep the lease alive; a refresh that fails while a replica takes over is tried again, well
        within the TTL, so a fail-over never hands the project to another holder."""
        delay = LEASE_TTL_S / 3
        while True:
            await asyncio.sleep(delay)
            try:
                held.revision = await kv.update(key, held.value, last=held.revision)
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
                if entry is None or entry.value != held.value:
                    log.error("lease %s: lost while held (it expired during a fail-over)", key)
                    return
                held.revision = entry.revision or held.revision
                delay = 1.0
