"""systemd's notify protocol, for units with `Type=notify` and `WatchdogSec=`: one datagram to
$NOTIFY_SOCKET per state (READY=1, WATCHDOG=1, STOPPING=1), no library; outside systemd, nothing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import AsyncIterator, Callable, Mapping

log = logging.getLogger("darkroom")


class Notifier:
    def __init__(self, address: str | None, watchdog_s: float | None = None) -> None:
        # A name starting with @ is in the abstract namespace: a NUL byte first on the wire.
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.watchdog_s = watchdog_s

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        environ = os.environ if environ is None else environ
        usec, pid = environ.get("WATCHDOG_USEC"), environ.get("WATCHDOG_PID")
        # WATCHDOG_PID names the one process systemd watches: a child that inherited it is not it.
        mine = pid is None or pid == str(os.getpid())
        watchdog_s = int(usec) / 1e6 if usec and usec.isdigit() and int(usec) > 0 and mine else None
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog_s)

    def send(self, *states: str) -> bool:
        """Tell systemd `states` (e.g. "READY=1"); False where no one listens."""
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(states).encode(), self.address)
        except OSError as exc:
            log.warning("systemd notify socket: %s", exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    async def feed_watchdog(self, healthy: Callable[[], bool] = lambda: True) -> None:
        """WATCHDOG=1 twice per watchdog period while `healthy()` says so: a blocked event loop or a
        failed service goes quiet, and systemd restarts the process."""
        if self.watchdog_s is None:
            return
        while True:
            if healthy():
                self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 2)


@contextlib.asynccontextmanager
async def notifying(status: str, healthy: Callable[[], bool] = lambda: True) -> AsyncIterator[Notifier]:
    """Around a started service's life: READY=1 on entry, the watchdog fed meanwhile, STOPPING=1 on exit."""
    notifier = Notifier.from_environ()
    notifier.ready(status)
    feeding = asyncio.create_task(notifier.feed_watchdog(healthy), name="systemd-watchdog")
    try:
        yield notifier
    finally:
        notifier.stopping()
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
