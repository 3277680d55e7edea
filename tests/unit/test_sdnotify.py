"""services/kernel/sdnotify.py: the notify protocol, spoken to a real datagram socket as systemd listens."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from darkroom.kernel.sdnotify import Notifier, notifying


@pytest.fixture
def listener(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_ready_and_stopping_reach_the_socket(listener, tmp_path):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert notifier.ready("darkroom worker running") and notifier.stopping()
    assert received(listener) == ["READY=1\nSTATUS=darkroom worker running", "STOPPING=1"]


def test_an_abstract_socket_name_is_reached_too():
    name = f"darkroom-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert Notifier(f"@{name}").ready()
        assert sock.recv(100) == b"READY=1"


def test_outside_systemd_nothing_is_sent_and_nothing_fails():
    notifier = Notifier.from_environ({})
    assert not notifier.ready() and notifier.watchdog_s is None


def test_a_watchdog_for_another_process_is_not_ours(tmp_path):
    environ = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"}
    assert Notifier.from_environ(environ).watchdog_s == 2.0
    assert Notifier.from_environ(environ | {"WATCHDOG_PID": str(os.getpid())}).watchdog_s == 2.0
    assert Notifier.from_environ(environ | {"WATCHDOG_PID": "1"}).watchdog_s is None


async def test_the_watchdog_is_fed_twice_a_period_while_healthy_and_stops_when_not(listener, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: fed every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    healthy = True
    async with notifying("running", lambda: healthy):
        await asyncio.sleep(0.45)
        fed = received(listener)
        healthy = False
        await asyncio.sleep(0.3)
        quiet = received(listener)
    assert fed[0] == "READY=1\nSTATUS=running" and 3 <= fed.count("WATCHDOG=1") <= 6, fed
    assert quiet == [] and received(listener) == ["STOPPING=1"]
