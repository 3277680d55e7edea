"""Darkroom as it runs on a cluster, on one machine: a nats-server that needs its user and password,
and `darkroom api`, `projector`, `worker` and two `orchestrator`s, each an OS process of its own
under a supervisor, logging to a file of its own."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from _common import darkroom_command

from darkroom.kernel.credentials import for_data_folder
from darkroom.kernel.natsd import NatsServer, free_port

from .parts import Part

SERVICES = {  # part name -> the darkroom command line
    "api": ["api"],
    "projector": ["projector"],
    "worker": ["worker"],
    "orchestrator-a": ["orchestrator", "--name", "orchestrator-a"],
    "orchestrator-b": ["orchestrator", "--name", "orchestrator-b"],
}


@dataclass(frozen=True)
class Settings:
    duplicate_window_s: float
    maintenance_interval_s: float
    ack_wait_s: float = 3.0
    restart_delay_s: float = 1.0

    def env(self) -> dict[str, str]:
        """Short timings, so a killed worker's job comes back and maintenance comes round within the run."""
        return {
            "DARKROOM_NATS__DUPLICATE_WINDOW_S": str(self.duplicate_window_s),
            "DARKROOM_PIPELINE__ACK_WAIT_S": str(self.ack_wait_s),
            "DARKROOM_PIPELINE__BACKOFF_BASE_S": "0.2",
            "DARKROOM_PIPELINE__BACKOFF_MAX_S": "2",
            "DARKROOM_PIPELINE__JOB_TIMEOUT_S": "30",
            "DARKROOM_PROCESSING__WORKERS": "1",
            "DARKROOM_MAINTENANCE__INTERVAL_S": str(self.maintenance_interval_s),
        }


class System:
    def __init__(self, root: Path, data: Path, settings: Settings, on_projector_start: Callable[[int], None]) -> None:
        self.root = root
        self.data = data
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.spawned: set[int] = set()
        # The user and password made as `darkroom up` makes them (kept beside the store, 0600).
        self.server = NatsServer(root / "nats", credentials=for_data_folder(root))
        self.port = free_port()
        self.parts: dict[str, Part] = {
            "nats-server": Part("nats-server", self._nats, settings.restart_delay_s, self.spawned)
        }
        for name in SERVICES:
            self.parts[name] = Part(name, self._spawner(name), settings.restart_delay_s, self.spawned)
        self._on_projector_start = on_projector_start
        self.began = time.time()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def nats_url(self) -> str:
        return self.server.url

    async def _nats(self) -> asyncio.subprocess.Process:
        self._mark("nats-server")
        await self.server.start()
        assert self.server.process is not None
        return self.server.process

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
        env.update(self.settings.env())
        env["DARKROOM_NATS__URL"] = self.nats_url  # the password stays out of the process list
        return env

    def _mark(self, name: str) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("a") as out:
            out.write(f"--- faults: starting {name} at +{time.time() - self.began:.1f}s\n")
        return log

    def _spawner(self, name: str):
        async def spawn() -> asyncio.subprocess.Process:
            argv = [*SERVICES[name], "--data", str(self.data)]
            if name == "api":
                argv += ["--port", str(self.port)]
            with self._mark(name).open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    darkroom_command(), *argv, env=self.env(), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
                )
            if name == "projector":
                self._on_projector_start(process.pid)
            return process

        return spawn

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join((self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
