"""deploy/systemd as systemd runs it: the services tell a notify socket they are ready, feed the
watchdog and say they stop; every unit's exposure scores at most 3.0."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from darkroom.kernel.natsd import NatsServer, free_port
from tests.conftest import REPO, cli_env, darkroom_cli, eventually, until_ready

UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))


class Listener:
    """A notify socket as systemd binds it, and what it heard."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.heard: list[str] = []

    async def count(self, state: str) -> int:
        while True:
            try:
                self.heard.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.heard.count(state)


async def test_a_service_says_ready_feeds_the_watchdog_and_says_it_stops(nats_server: NatsServer, tmp_path: Path):
    listener = Listener(tmp_path / "notify")
    env = cli_env(NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="1000000")
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("projector", "--data", str(tmp_path / "data"), "--nats", nats_server.url),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await eventually(lambda: listener.count("READY=1\nSTATUS=darkroom projector"), 20, "READY=1")
        fed = await listener.count("WATCHDOG=1")
        await eventually(lambda: _at_least(listener, "WATCHDOG=1", fed + 2), 5, "two more watchdog feeds")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    try:
        assert code == 0, (await process.stderr.read()).decode()[-2000:]
        assert await listener.count("STOPPING=1") == 1, listener.heard
    finally:
        listener.sock.close()


async def test_darkroom_up_tells_systemd_once_for_both_its_processes(tmp_path: Path):
    listener = Listener(tmp_path / "notify")
    port = free_port()
    up = await asyncio.create_subprocess_exec(
        *darkroom_cli("up", "--data", str(tmp_path / "data"), "--port", str(port)),
        env=cli_env(NOTIFY_SOCKET=str(tmp_path / "notify"), DARKROOM_UP__PROCESSES="2"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await until_ready(f"http://127.0.0.1:{port}", up, "darkroom up")
        await eventually(lambda: listener.count("READY=1\nSTATUS=darkroom up"), 20, "READY=1")
        # The worker process says so once started, and would tell systemd at once if it could.
        assert up.stderr is not None
        while b"the worker process running" not in await asyncio.wait_for(up.stderr.readline(), 20):
            pass
    finally:
        up.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(up.wait(), 20)
    try:
        assert code == 0, (await up.stderr.read()).decode()[-2000:]
        assert await listener.count("STOPPING=1") == 1, listener.heard
        assert [state for state in listener.heard if state.startswith("READY=1")] == ["READY=1\nSTATUS=darkroom up"]
    finally:
        listener.sock.close()


async def _at_least(listener: Listener, state: str, n: int) -> bool:
    return await listener.count(state) >= n


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_unit_is_hardened(unit: Path):
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True, check=False
    ).stdout
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert score, out[-2000:]
    assert float(score.group(1)) <= 3.0, out
