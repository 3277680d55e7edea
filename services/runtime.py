"""Composition root: wires the four services, in one process or one at a time."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from nats.js.errors import NotFoundError

from .api.app import build_app
from .api.deps import Deps
from .api.ops import read_model_families
from .child import Child
from .kernel.bus import Bus, Counters
from .kernel.config import Config
from .kernel.definitions import Definitions
from .kernel.events import Codec
from .kernel.health import Check, Health
from .kernel.lease import LEASE_LINGER_S, Leases
from .kernel.metrics import (
    HttpMetrics,
    JobMetrics,
    Metrics,
    counter,
    gauge,
    log_families,
    new_registry,
    process_families,
)
from .kernel.natsd import free_port
from .kernel.ownership import hand_over
from .kernel.provision import provision
from .kernel.subjects import STREAM, lane_consumer
from .kernel.supervise import Loops
from .kernel.vocabulary import LANES
from .orchestrator.schedule import Schedule
from .orchestrator.service import Orchestrator
from .projector.checkpoints import Checkpoints
from .projector.engine import Projector
from .projector.keeper import Keeper, KeptElsewhere
from .projector.queries import NOTIFIED_POLL_S, ReadModel
from .projector.service import ProjectorService
from .projector.store import open_db, read_model_path, worker_read_model_path
from .worker.context import Resources
from .worker.derivations import Derivations, spec_of
from .worker.gate import ImageGate
from .worker.jobtype import JobType
from .worker.pool import end_pool, open_pool
from .worker.service import Worker

log = logging.getLogger("darkroom")

ROLES = ("projector", "orchestrator", "worker", "api")
GRACE_S = 5.0  # how long running jobs get to finish when the process stops
# Stopping takes at most the grace period and this much more, whatever NATS does: what is left
# then is closed without waiting (SIGTERM ends every command within 10 s).
STOP_MARGIN_S = 2.5
READY_LAG_S = 1.0  # the read model may trail the log by this long and still count as ready


class ListenError(Exception):
    """A port this process was to serve HTTP on cannot be had (another process has it…)."""


@dataclass
class Runtime:
    config: Config
    data_dir: Path
    nats_url: str
    definitions: Definitions
    job_types: dict[str, JobType]
    roles: tuple[str, ...] = ROLES
    codec: Codec = field(default_factory=Codec)
    orchestrator_name: str = "orchestrator"
    worker_name: str | None = None
    counters: Counters = field(default_factory=Counters)
    loops: Loops = field(default_factory=Loops)
    metrics: Metrics = field(default_factory=lambda: Metrics(new_registry()))
    jobs: JobMetrics | None = None

    buses: dict[str, Bus] = field(default_factory=dict)
    projector: ProjectorService | None = None
    checkpoints: Checkpoints | None = None  # of the read model the projector keeps
    orchestrator: Orchestrator | None = None
    schedule: Schedule | None = None
    worker: Worker | None = None
    read: ReadModel | None = None
    worker_read: ReadModel | None = None
    pool: ProcessPoolExecutor | None = None
    gate: ImageGate | None = None
    derivations: Derivations | None = None
    leases: Leases | None = None
    api_runner: web.AppRunner | None = None
    api_deps: Deps | None = None
    health_runner: web.AppRunner | None = None
    keeper: Keeper | None = None
    child: Child | None = None  # `up`'s second process, running the roles this one leaves out
    read_model: Path | None = None  # the one this process reads (and keeps, with `keeper`)
    port: int = 0
    health_port: int = 0
    _stopped: bool = False

    def __post_init__(self) -> None:
        self.health = Health(self.loops)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.api.host}:{self.port}"

    async def _bus(self, role: str) -> Bus:
        # One connection per service, as if each ran alone: one can stop without the others.
        bus = await Bus.connect(self.nats_url, f"darkroom-{role}", self.codec, security=self.config.nats)
        bus.counters = self.counters
        self.buses[role] = bus
        return bus

    async def start(self) -> Runtime:
        """Every role started, or none: what did start is stopped again when one fails."""
        try:
            await self._start()
        except BaseException:
            await self.stop(grace_s=0)
            raise
        return self

    async def _start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.roles:
            await provision((await self._bus(self.roles[0])).js, self.config)
        self.read_model, keeps = self._read_model()
        if keeps:
            bus = self.buses.get("projector") or await self._bus("projector")
            db = await open_db(self.read_model)
            self.checkpoints = await Checkpoints.open(self.read_model, db)
            engine = await Projector(db, self.codec).open()
            self.projector = ProjectorService(bus, engine, self.loops)
            await self.projector.start()
            self.checkpoints.start(self.loops)
        if "orchestrator" in self.roles:
            bus = self.buses.get("orchestrator") or await self._bus("orchestrator")
            self.orchestrator = Orchestrator(
                bus, self.config.pipeline.priority_threshold, self.orchestrator_name, jobs=self._job_metrics()
            )
            await self.orchestrator.start()
            self.schedule = Schedule(bus, self.definitions, self.config.maintenance.interval_s, loops=self.loops)
            self.schedule.start()
        if "worker" in self.roles:
            bus = self.buses.get("worker") or await self._bus("worker")
            self.worker_read = await ReadModel.open(self.read_model, self.loops)
            self.pool = open_pool(self.config.processing.workers)
            name = self.worker_name or f"{socket.gethostname()}:{os.getpid()}"
            # One more call in flight than there are image processes: none idles while a result is published.
            self.gate = ImageGate(self.pool, self.config.processing.workers + 1)
            self.derivations = Derivations(self.gate, spec_of(self.config.processing))
            self.leases = Leases(bus, name, self.config.nats.replicas, linger_s=LEASE_LINGER_S)
            resources = Resources(
                read=self.worker_read,
                gate=self.gate,
                derivations=self.derivations,
                definitions=self.definitions,
                lease=self.leases.hold,
                hand_over=functools.partial(hand_over, bus),
            )
            self.worker = Worker(
                bus,
                self.config,
                self.job_types,
                self.data_dir,
                resources,
                name=name,
                loops=self.loops,
                jobs=self._job_metrics(),
            )
            await self.worker.start()
        if "api" in self.roles:
            await self._start_api(self.read_model)
        if self.child is not None:
            await self.child.start(self.config, self.nats_url)
            self.loops.spawn(self.child.name, self.child.watch)
            self.health.checks.append(self.child.ready)
            self.metrics.beside(self.child.metrics)
        if self.projector is not None:
            engine = self.projector.projector
            engine.on_applied = self._applied  # readers here wake at once
            if self.worker_read is not None:
                self.worker_read.poll_s = NOTIFIED_POLL_S
            if self.read is not None:
                self.read.follow_projector(engine.checkpoint)
        self.health.checks += self._readiness_checks()
        self._register_metrics()
        if self.config.health.port is not None and "api" not in self.roles:
            await self._start_health()
        self.health.starting = False

    def _job_metrics(self) -> JobMetrics:
        """One set of job counters for the worker and the orchestrator of this process."""
        if self.jobs is None:
            self.jobs = JobMetrics(self.metrics.registry, sorted(self.job_types))
        return self.jobs

    def _read_model(self) -> tuple[Path, bool]:
        """The read model this process reads, and whether it keeps it (runs the projector writing it).
        A projector keeps the data folder's. A worker reads that one while a projector keeps it; else
        it keeps a replica of its own beside it (its jobs read state: on a host of its own it would
        wait for ever), so a projector started after it on the same folder is not refused."""
        shared = read_model_path(self.data_dir)
        if "projector" in self.roles:
            if not self._keep(shared, "darkroom " + "+".join(self.roles)):
                raise KeptElsewhere(
                    f"the read model {shared} is kept by {Keeper(shared).holder()}: one projector "
                    f"per data folder; stop that one, or give this one a --data of its own"
                )
            return shared, True
        if "worker" not in self.roles:
            return shared, False
        if Keeper(shared).kept():
            log.info("worker: reading the read model %s, kept by %s", shared, Keeper(shared).holder())
            return shared, False
        own = worker_read_model_path(self.data_dir)
        if self._keep(own, "darkroom worker"):
            log.info(
                "worker: no projector keeps %s, so this worker keeps a replica at %s (it folds the log first)",
                shared,
                own,
            )
            return own, True
        log.info("worker: reading the read model %s, kept by %s", own, Keeper(own).holder())
        return own, False

    def _keep(self, path: Path, who: str) -> bool:
        keeper = Keeper(path)
        if not keeper.take(who):
            return False
        self.keeper = keeper
        return True

    async def _start_api(self, read_model: Path) -> None:
        bus = self.buses.get("api") or await self._bus("api")
        self.read = await ReadModel.open(read_model, self.loops)
        self.metrics.scraped(*read_model_families(self.read))
        self.api_deps = Deps(
            bus=bus,
            read=self.read,
            definitions=self.definitions,
            config=self.config,
            data_dir=self.data_dir,
            metrics=self.metrics,
            http=HttpMetrics(self.metrics.registry),
            health=self.health,
            derive=self.derivations.prefetch
            if self.derivations is not None
            else self.child.prefetch
            if self.child is not None
            else None,
        )
        self.api_runner = web.AppRunner(build_app(self.api_deps), shutdown_timeout=GRACE_S / 2, access_log=None)
        await self.api_runner.setup()
        self.port = self.config.api.port or free_port(self.config.api.host)
        await _listen(self.api_runner, self.config.api.host, self.port)

    async def _start_health(self) -> None:
        """`/healthz`, `/readyz` and `/metrics` of a service that serves no API, on `health.port`."""
        from .health import health_app

        self.health_runner = web.AppRunner(health_app(self.health, self.metrics), access_log=None)
        await self.health_runner.setup()
        self.health_port = self.config.health.port or free_port(self.config.health.host)
        await _listen(self.health_runner, self.config.health.host, self.health_port)

    def _readiness_checks(self) -> list[Check]:
        """What this process's roles need to do their work, beyond loops that run."""
        checks: list[Check] = [_connected(role, bus) for role, bus in self.buses.items()]
        if self.projector is not None:
            checks.append(self._projector_ready)
        elif self.read is not None:
            checks.append(self._read_model_ready)
        if self.worker is not None:
            worker_bus = self.worker.bus
            checks.append(lambda: _consumers_missing(worker_bus, [lane_consumer(lane) for lane in LANES]))
        if self.orchestrator is not None:
            orchestrator_bus = self.orchestrator.bus
            checks.append(lambda: _consumers_missing(orchestrator_bus, [self.orchestrator_name]))
        return checks

    async def _projector_ready(self) -> str | None:
        projector = self.projector
        if projector is None:
            return None
        if not projector.follower.connected:
            return "projector: not following the log (its consumer is being made again)"
        last = await projector.bus.last_seq()
        if not await projector.reached(last, READY_LAG_S):
            return f"projector: read model at {projector.projector.checkpoint}, log at {last}"
        return None

    async def _read_model_ready(self) -> str | None:
        if self.api_deps is None or self.read is None:
            return None
        last = await self.api_deps.bus.last_seq()
        if not await self.read.wait_for(last, READY_LAG_S):
            return f"read model at {self.read.checkpoint}, log at {last}"
        return None

    def _applied(self, seq: int, outbox: list[tuple]) -> None:
        if self.read is not None:
            self.read.applied(seq, outbox)
        if self.worker_read is not None:
            self.worker_read.applied(seq)
        if self.child is not None:
            self.child.applied(seq)

    def _register_metrics(self) -> None:
        """The families of every service in this process, on its one registry."""
        checkpoint = (
            self.projector.projector
            if self.projector is not None
            else self.read
            if self.read is not None
            else self.worker_read
        )
        self.metrics.gathered(process_families(self.counters, self.loops, self.buses))
        if self.buses:
            self.metrics.scraped(
                *log_families(
                    next(iter(self.buses.values())), (lambda: checkpoint.checkpoint) if checkpoint is not None else None
                )
            )
        if self.projector is not None:
            counts = self.projector.projector.counts
            self.metrics.gathered(
                lambda: [
                    counter("darkroom_events_applied", "Events the projector applied to the read model", counts.events),
                    counter("darkroom_poison_events", "Events the projector set aside as unreadable", counts.poisoned),
                ]
            )
        if self.orchestrator is not None:
            self.metrics.gathered(self.orchestrator.families)
        if self.worker is not None and self.gate is not None:
            worker, gate = self.worker, self.gate
            self.metrics.gathered(
                lambda: [
                    gauge(
                        "darkroom_worker_busy_slots",
                        "Slots of this worker running a job, by lane",
                        labels=["lane"],
                        samples=[([lane], n) for lane, n in worker.busy.items()],
                    ),
                    gauge(
                        "darkroom_worker_lane_paused",
                        "1 while this worker leaves a lane alone (paused, as it follows the lane's events)",
                        labels=["lane"],
                        samples=[([lane], int(worker.pauses.paused(lane))) for lane in LANES],
                    ),
                    gauge(
                        "darkroom_image_work_waiting",
                        "Calls into this worker's image processes waiting for a place at its image gate, by lane",
                        labels=["lane"],
                        samples=[([lane], gate.waiting(lane)) for lane in LANES],
                    ),
                ]
            )

    async def stop(self, grace_s: float = GRACE_S) -> None:
        """Stop taking work, let running jobs finish within the grace period, drain, close: within
        `grace_s + STOP_MARGIN_S` seconds whatever NATS does, and then without waiting any longer."""
        if self._stopped:
            return
        self._stopped = True
        try:
            await asyncio.wait_for(self._stop(grace_s), grace_s + STOP_MARGIN_S)
        except TimeoutError:
            log.warning("stopping took longer than %.1fs: the rest is closed without waiting", grace_s + STOP_MARGIN_S)
        except Exception:
            log.exception("stopping failed: the rest is closed without waiting")
        await self._close()

    async def _stop(self, grace_s: float) -> None:
        async def api() -> None:
            for runner in (self.api_runner, self.health_runner):
                if runner is not None:
                    await runner.cleanup()

        async def worker() -> None:
            if self.worker is not None:
                await self.worker.stop(grace_s)
            if self.leases is not None:
                await self.leases.close()
            if self.child is not None:
                await self.child.stop()

        await asyncio.gather(api(), worker())  # the API stops taking requests while jobs finish
        if self.schedule is not None:
            await self.schedule.stop()
        if self.orchestrator is not None:
            await self.orchestrator.stop()
        if self.projector is not None:
            await self.projector.stop()
        await self.loops.stop()
        await asyncio.gather(*(bus.close() for bus in self.buses.values()))

    async def _close(self) -> None:
        """What holds files, processes and connections, closed without waiting on anyone."""
        await self.loops.stop()
        for bus in self.buses.values():
            await bus.close(drain=False)
        for read in (self.read, self.worker_read):
            if read is not None:
                await read.close()
        if self.pool is not None:
            await end_pool(self.pool)
        if self.checkpoints is not None:
            await self.checkpoints.close()
        if self.projector is not None:
            await self.projector.projector.db.close()
        if self.keeper is not None:
            self.keeper.release()
        if self.child is not None:
            await self.child.close()

    async def crash(self) -> None:
        """Vanish like a killed process: connections cut first, so nothing is acknowledged or drained."""
        for bus in self.buses.values():
            bus.acks.close()
            await bus.nc.close()
        if self.child is not None:
            self.child.kill()
        await self.stop(grace_s=0)


def _connected(role: str, bus: Bus) -> Check:
    async def connected() -> str | None:
        return None if bus.nc.is_connected else f"{role}: not connected to NATS"

    return connected


async def _consumers_missing(bus: Bus, names: list[str]) -> str | None:
    missing = []
    for name in names:
        try:
            await bus.jsm.consumer_info(STREAM, name)
        except NotFoundError:
            missing.append(name)
    return f"consumer missing: {', '.join(missing)}" if missing else None


async def _listen(runner: web.AppRunner, host: str, port: int) -> None:
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
