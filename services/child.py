"""The second Python process of `darkroom up`: some of its services (the worker) on the other core.

`up` starts it as `darkroom child --roles ROLE…` (from `-c`: see ENTRY), tethered like its nats-server
(it dies with `up`, even by kill -9), and hands it, on its stdin, the configuration `up` resolved (first line, JSON),
then a line for each commit of `up`'s projector (so the read model is not polled) and for each photo
an upload has saved (whose derivatives it starts at once). It logs on `up`'s stderr, through `up`
(see `relay`), and serves `/readyz` and `/metrics` on a loopback port that `up` asks: `up`'s own
routes answer for both processes. When it dies, `up` starts it again, unless it keeps dying.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import msgspec

from .kernel import tether
from .kernel.config import Config, HealthConfig
from .kernel.natsd import free_port

log = logging.getLogger("darkroom")

APPLIED, PHOTO = b"applied ", b"photo "  # the lines after the first: `applied SEQ`, `photo PATH`

COMMAND = "child"
# Run as -c, not -m: a process pool started with spawn runs its parent's main module again in each of
# its processes, so the image processes would import the CLI and its libraries; with none they do not.
ENTRY = "import sys; from darkroom.cli import main; sys.exit(main())"
CHILD_ROLES = ("worker",)
HOST = "127.0.0.1"
# A child that exits this often within the window is not started again: `up` ends (exit 1) naming it.
RESTARTS = 3
RESTART_WINDOW_S = 60.0
RESTART_DELAY_S = 0.5
# systemd hears `up` alone: a child's READY or STOPPING (when it is started again) is not the service's.
NOT_INHERITED = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
# A child that reads nothing (stopped) is told no more commits past this much unread: its read
# model's 1 s poll sees them, and `up` holds no growing backlog for it.
UNREAD_MAX = 1 << 16
# The child's jobs get a second less than `up`'s to finish, so its whole stop ends within `up`'s.
CHILD_GRACE_S = 4.0
# How long a stopped child's last lines (and those of what it started) may take to come through.
RELAY_DRAIN_S = 1.0


class ChildExited(Exception):
    """The second process kept dying: `up` cannot go on as one command."""


def keeps_dying(exits: Sequence[float], now: float) -> bool:
    """Whether exits at these monotonic times (the latest included) mean a crash loop."""
    return sum(1 for at in exits if now - at <= RESTART_WINDOW_S) >= RESTARTS


def child_config(config: Config, nats_url: str, health_port: int) -> bytes:
    """The line a child reads first: `up`'s configuration, with the NATS it found or started and the
    port the child answers `/readyz` and `/metrics` on."""
    config = msgspec.structs.replace(
        config,
        nats=msgspec.structs.replace(config.nats, url=nats_url),
        health=HealthConfig(port=health_port, host=HOST),
    )
    return msgspec.json.encode(config) + b"\n"


def read_config(line: bytes) -> Config:
    return msgspec.json.decode(line, type=Config)


@dataclass
class Child:
    """The second process, started, watched, started again, stopped: from `up`'s side."""

    data_dir: Path
    roles: tuple[str, ...]
    log_format: str
    log_level: str
    process: asyncio.subprocess.Process | None = None
    port: int = 0
    exits: list[float] = field(default_factory=list)
    _config: Callable[[int], bytes] | None = None
    _http: aiohttp.ClientSession | None = None
    _stopping: bool = False
    _relays: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"{'+'.join(self.roles)} process"

    async def start(self, config: Config, nats_url: str) -> None:
        self._config = lambda port: child_config(config, nats_url, port)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))
        await self._launch()

    async def _launch(self) -> None:
        assert self._config is not None
        self.port = free_port(HOST)
        argv = [sys.executable, "-c", ENTRY, COMMAND, "--roles", ",".join(self.roles)]
        argv += ["--data", str(self.data_dir), "--log-format", self.log_format, "--log-level", self.log_level]
        self.process = await asyncio.create_subprocess_exec(
            *tether.command(os.getpid(), argv),
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={name: value for name, value in os.environ.items() if name not in NOT_INHERITED},
            start_new_session=True,  # a terminal's Ctrl-C is for `up`, which stops it in order
        )
        assert self.process.stdin is not None and self.process.stderr is not None
        relaying = asyncio.ensure_future(relay(self.process.stderr, self.name, self.log_format, sys.stderr))
        self._relays.add(relaying)
        relaying.add_done_callback(self._relays.discard)
        try:
            self.process.stdin.write(self._config(self.port))
        except (RuntimeError, ConnectionError) as exc:
            # Dead before it read its config (killed at once): `watch` counts that exit like any other.
            log.warning("darkroom up: the %s ended before it had its config: %s", self.name, exc)
        log.info("darkroom up: the %s runs as pid %d", self.name, self.process.pid)

    def prefetch(self, source: Path) -> None:
        """A photo the upload saved: the child's worker starts its derivatives now."""
        self._tell(PHOTO + os.fsencode(source))

    def applied(self, seq: int) -> None:
        """The projector committed up to `seq`: the child's jobs waiting on the read model go on."""
        self._tell(APPLIED + str(seq).encode(), unless_unread=UNREAD_MAX)

    def _tell(self, line: bytes, unless_unread: int | None = None) -> None:
        # Lost while the child is down: a restarted one reads the read model, and its jobs derive anyway.
        stdin = self.process.stdin if self.process is not None else None
        if stdin is None or stdin.is_closing():
            return
        if unless_unread is None or stdin.transport.get_write_buffer_size() < unless_unread:
            stdin.write(line + b"\n")

    async def watch(self) -> None:
        """Returns once stopped; starts the child again each time it exits on its own, and raises
        ChildExited when it keeps exiting."""
        while self.process is not None:
            code = await self.process.wait()
            if self._stopping:
                return
            now = time.monotonic()
            self.exits.append(now)
            if keeps_dying(self.exits, now):
                raise ChildExited(f"the {self.name} exited with {code}, {RESTARTS} times within {RESTART_WINDOW_S:g}s")
            log.error("darkroom up: the %s exited with %s; starting it again", self.name, code)
            await asyncio.sleep(RESTART_DELAY_S)
            if self._stopping:
                return
            await self._launch()

    async def ready(self) -> str | None:
        """Why the child is not ready (its `/readyz`), or None."""
        try:
            assert self._http is not None
            async with self._http.get(f"http://{HOST}:{self.port}/readyz") as response:
                if response.status == 200:
                    return None
                return f"{self.name}: {(await response.json()).get('error', response.status)}"
        except (aiohttp.ClientError, TimeoutError):
            return f"{self.name}: not answering (starting, or starting again)"

    async def metrics(self) -> bytes | None:
        """The child's `/metrics`, or None while it does not answer."""
        try:
            assert self._http is not None
            async with self._http.get(f"http://{HOST}:{self.port}/metrics") as response:
                return await response.read() if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def stop(self) -> None:
        """SIGTERM: the child stops as any service does, its jobs given their grace (`up` bounds the wait)."""
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()

    def kill(self) -> None:
        self._stopping = True
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def close(self) -> None:
        self.kill()
        if self.process is not None:
            await self.process.wait()
        if self._relays:
            await asyncio.wait(self._relays, timeout=RELAY_DRAIN_S)
        for relaying in self._relays:  # a process the child started still holds its stderr
            relaying.cancel()
        if self._http is not None:
            await self._http.close()


def lines_to_write(lines: list[str], log_format: str) -> list[tuple[str, bool]]:
    """What `up` writes of the child's stderr lines, each (text, as_is): in JSON, the child's own log
    lines as they are and each run of other lines (a resource tracker's warning, a traceback) as the
    text of one record of `up`'s, so a collector reads every line as one object; in text, all as they are."""
    written: list[tuple[str, bool]] = []
    other: list[str] = []
    for line in lines:
        if log_format == "json" and not _is_record(line):
            if line.strip():
                other.append(line)
            continue
        if other:
            written.append(("\n".join(other), False))
            other = []
        written.append((line, True))
    if other:
        written.append(("\n".join(other), False))
    return written


def _is_record(line: str) -> bool:
    try:
        return isinstance(msgspec.json.decode(line), dict)
    except msgspec.DecodeError:
        return False


async def relay(reader: asyncio.StreamReader, name: str, log_format: str, out: IO[str]) -> None:
    """The child's stderr onto `up`'s until every process holding it has closed it, a read at a time."""
    pending = b""
    while chunk := await reader.read(1 << 16):
        *lines, pending = (pending + chunk).split(b"\n")
        _write(lines_to_write([line.decode(errors="replace") for line in lines], log_format), name, out)
    if pending:
        _write(lines_to_write([pending.decode(errors="replace")], log_format), name, out)


def _write(written: list[tuple[str, bool]], name: str, out: IO[str]) -> None:
    try:
        for text, as_is in written:
            if as_is:
                out.write(text + "\n")
            else:
                log.warning("darkroom up: the %s wrote: %s", name, text)
        out.flush()
    except (OSError, ValueError):  # `up`'s stderr is gone: the child's lines are read all the same, so it never blocks
        pass


async def stdin_lines() -> asyncio.StreamReader:
    """The child's end of the pipe from `up`."""
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def follow_up(
    lines: asyncio.StreamReader, applied: Callable[[int], None], prefetch: Callable[[Path], None]
) -> None:
    """What `up` tells, as it happens, until it closes the pipe."""
    while line := (await lines.readline()).rstrip(b"\n"):
        if line.startswith(APPLIED):
            applied(int(line[len(APPLIED) :]))
        elif line.startswith(PHOTO):
            prefetch(Path(os.fsdecode(line[len(PHOTO) :])))
