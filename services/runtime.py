"""Composition root: wires the four services, in one process or one at a time."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from aiohttp import web

from .api.app import build_app
from .api.deps import Deps
from .kernel.bus import Bus, Counters, provision
from .kernel.config import Config
from .kernel.definitions import Definitions
from .kernel.events import Codec
from .kernel.natsd import free_port
from .orchestrator.schedule import Schedule
from .orchestrator.service import Orchestrator
from .projector.engine import Projector
from .projector.keeper import Keeper, KeptElsewhere
from .projector.queries import NOTIFIED_POLL_S, ReadModel
from .projector.service import ProjectorService
from .projector.store import open_db
from .worker.context import Handler, Resources
from .worker.imaging import init_worker
from .worker.jobs.derivatives import Derivations, spec_of
from .kernel.lease import Leases
from .worker.service import Worker

log = logging.getLogger("darkroom")

ROLES = ("projector", "orchestrator", "worker", "api")
READ_MODEL_FILE = "read-model.sqlite"


def read_model_path(data_dir: Path) -> Path:
    return data_dir / READ_MODEL_FILE


@dataclass
class Runtime:
    config: Config
    data_dir: Path
    nats_url: str
    definitions: Definitions
    handlers: dict[str, Handler]
    roles: tuple[str, ...] = ROLES
    codec: Codec = field(default_factory=Codec)
    orchestrator_name: str = "orchestrator"
    worker_name: str | None = None
    counters: Counters = field(default_factory=Counters)

    buses: dict[str, Bus] = field(default_factory=dict)
    projector: ProjectorService | None = None
    orchestrator: Orchestrator | None = None
    schedule: Schedule | None = None
    worker: Worker | None = None
    read: ReadModel | None = None
    worker_read: ReadModel | None = None
    pool: ProcessPoolExecutor | None = None
    derivations: Derivations | None = None
    api_runner: web.AppRunner | None = None
    api_deps: Deps | None = None
    keeper: Keeper | None = None
    port: int = 0
    _stopped: bool = False

    @property
    def base_url(self) -> str:
        return f"http://{self.config.api.host}:{self.port}"

    async def _bus(self, role: str) -> Bus:
        # One connection per service, as if each ran alone: one can stop without the others.
        bus = await Bus.connect(self.nats_url, f"darkroom-{role}", self.codec, self.config.nats)
        bus.counters = self.counters
        self.buses[role] = bus
        return bus

    async def start(self) -> "Runtime":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.roles:
            await provision(await self._bus(self.roles[0]), self.config)
        if self._keeps_read_model():
            bus = self.buses.get("projector") or await self._bus("projector")
            db = await open_db(read_model_path(self.data_dir))
            engine = await Projector(db, self.codec).open()
            self.projector = ProjectorService(bus, engine)
            await self.projector.start()
        if "orchestrator" in self.roles:
            bus = self.buses.get("orchestrator") or await self._bus("orchestrator")
            self.orchestrator = Orchestrator(bus, self.config.pipeline.priority_threshold, self.orchestrator_name)
            await self.orchestrator.start()
            self.schedule = Schedule(bus, self.definitions, self.config.maintenance.interval_s)
            self.schedule.start()
        if "worker" in self.roles:
            bus = self.buses.get("worker") or await self._bus("worker")
            self.worker_read = await ReadModel.open(read_model_path(self.data_dir))
            self.pool = ProcessPoolExecutor(self.config.processing.workers, mp_context=get_context("spawn"),
                                            initializer=init_worker)
            name = self.worker_name or f"{socket.gethostname()}:{os.getpid()}"
            self.derivations = Derivations(self.pool, spec_of(self.config.processing))
            resources = Resources(read=self.worker_read, derivations=self.derivations, definitions=self.definitions,
                                  lease=Leases(bus, name, self.config.nats.replicas).hold)
            self.worker = Worker(bus, self.config, self.handlers, self.data_dir, resources, name=name)
            await self.worker.start()
            # Starting image processes takes a moment: do it now, not in the first upload's time.
            loop = asyncio.get_running_loop()
            for _ in range(self.config.processing.workers):
                loop.run_in_executor(self.pool, init_worker)
        if "api" in self.roles:
            await self._start_api()
        if self.projector is not None:
            engine = self.projector.projector
            engine.on_applied = self._applied  # readers here wake at once
            if self.worker_read is not None:
                self.worker_read.poll_s = NOTIFIED_POLL_S
            if self.read is not None:
                self.read.follow_projector(engine.checkpoint)
        return self

    def _keeps_read_model(self) -> bool:
        """A projector keeps the data folder's read model, and so does a worker where nothing else
        does: its jobs read state (a worker on a host of its own would wait for it forever)."""
        path = read_model_path(self.data_dir)
        keeper = Keeper(path)
        if "projector" in self.roles:
            if not keeper.take("darkroom " + "+".join(self.roles)):
                raise KeptElsewhere(f"the read model {path} is kept by {keeper.holder()}: one projector per data "
                                    f"folder; stop that one, or give this one a --data of its own")
        elif "worker" not in self.roles:
            return False
        elif not keeper.take("darkroom worker, with a projector of its own"):
            log.info("worker: reading the read model %s, kept by %s", path, keeper.holder())
            return False
        else:
            log.info("worker: no projector keeps %s, so this worker keeps it (it folds the log first)", path)
        self.keeper = keeper
        return True

    async def _start_api(self) -> None:
        bus = self.buses.get("api") or await self._bus("api")
        self.read = await ReadModel.open(read_model_path(self.data_dir))
        self.api_deps = Deps(bus=bus, read=self.read, definitions=self.definitions, config=self.config,
                             data_dir=self.data_dir, metrics_sources=[self._metrics],
                             derive=self.derivations.prefetch if self.derivations is not None else None)
        self.api_runner = web.AppRunner(build_app(self.api_deps), shutdown_timeout=5.0, access_log=None)
        await self.api_runner.setup()
        self.port = self.config.api.port or free_port(self.config.api.host)
        await web.TCPSite(self.api_runner, self.config.api.host, self.port).start()

    def _applied(self, seq: int, outbox: list[tuple]) -> None:
        if self.read is not None:
            self.read.applied(seq, outbox)
        if self.worker_read is not None:
            self.worker_read.applied(seq)

    def _metrics(self) -> list[str]:
        lines = []
        if self.projector is not None:
            counts = self.projector.projector.counts
            lines += ["# TYPE darkroom_events_applied_total counter",
                      f"darkroom_events_applied_total {counts.events}",
                      "# TYPE darkroom_poison_events_total counter",
                      f"darkroom_poison_events_total {counts.poisoned}"]
        if self.worker is not None:
            lines += ["# TYPE darkroom_worker_busy_slots gauge"]
            lines += [f'darkroom_worker_busy_slots{{lane="{lane}"}} {n}' for lane, n in self.worker.busy.items()]
        return lines

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking work, let running jobs finish within the grace period, drain, close."""
        if self._stopped:
            return
        self._stopped = True
        if self.api_runner is not None:
            await self.api_runner.cleanup()
        if self.worker is not None:
            await self.worker.stop(grace_s)
        if self.schedule is not None:
            await self.schedule.stop()
        if self.orchestrator is not None:
            await self.orchestrator.stop()
        if self.projector is not None:
            await self.projector.stop()
        for bus in self.buses.values():
            await bus.close()
        for read in (self.read, self.worker_read):
            if read is not None:
                await read.close()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        if self.projector is not None:
            await self.projector.projector.db.close()
        if self.keeper is not None:
            self.keeper.release()

    async def crash(self) -> None:
        """Vanish like a killed process: connections cut first, so nothing is acknowledged or drained."""
        for bus in self.buses.values():
            bus.acks.close()
            await bus.nc.close()
        await self.stop(grace_s=0)
