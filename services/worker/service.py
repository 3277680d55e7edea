"""The worker: slots pulling jobs from the two lanes, running handlers, reporting every outcome."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Awaitable, Callable, NamedTuple, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..kernel import subjects
from ..kernel.bus import Bus
from ..kernel.clock import now_iso
from ..kernel.config import Config
from ..kernel.events import JobEvent, JobProgress, JobRequested, JobStarted, PoisonEvent
from ..kernel.metrics import JobMetrics
from ..kernel.read import delivery_of
from ..kernel.supervise import Loops, backoff, describe
from .context import JobContext, PermanentError, Resources
from .fence import is_over
from .jobtype import JobType
from .outcome import Verdict, after_attempt, before_run
from .pauses import LanePauses
from .policy import PRIORITY_ONLY, REST_S, Lanes, lane_wait, serving, slot_lanes
from .pull import LanePull

log = logging.getLogger("darkroom.worker")
E = TypeVar("E", bound=JobEvent)

PROGRESS_EVERY_S = 0.25
STARTED_AFTER_S = 0.25  # a job that ends sooner stores no job.started: its outcome says when it started (§7.1)
PUBLISH_LOOP = "worker outcomes"


class Held(NamedTuple):
    """A job a pull made just before its lane was paused brought: not run, and not holding the slot
    (its other lanes go on), until the lane is resumed."""

    lane: str
    msg: Msg
    heartbeat: asyncio.Future[None]


class JobTimeout(Exception):
    pass


class CancelWatch:
    """Which tasks were asked to cancel: read from the log at start, then followed live; read again
    after a reconnect, for what was asked while the connection was down."""

    LOOP = "cancel watch"

    def __init__(self, bus: Bus, loops: Loops, size: int = 10_000) -> None:
        self.bus = bus
        self.loops = loops
        self.size = size
        self.canceled: OrderedDict[str, None] = OrderedDict()
        self._sub: Subscription | None = None
        self._catching_up: asyncio.Task | None = None

    async def start(self) -> None:
        self._sub = await self.bus.nc.subscribe(subjects.cancel_requests(), cb=self._on_cancel)
        await self._catch_up()
        self.bus.reconnected.append(self._on_reconnected)

    async def stop(self) -> None:
        if self._on_reconnected in self.bus.reconnected:
            self.bus.reconnected.remove(self._on_reconnected)
        if self._catching_up is not None:
            self._catching_up.cancel()
            await asyncio.gather(self._catching_up, return_exceptions=True)
        if self._sub is not None and not self.bus.nc.is_closed:
            await self._sub.unsubscribe()
        self._sub = None

    async def _catch_up(self) -> None:
        """Cancels asked for before now, from the log (live ones come to the subscription)."""
        async for batch in self.bus.read([subjects.cancel_requests()]):
            for stored in batch:
                self.mark(subjects.task_of(stored.subject))

    def _on_reconnected(self) -> None:
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = self.loops.spawn(self.LOOP, self._catch_up)

    async def _on_cancel(self, msg: Msg) -> None:
        self.mark(subjects.task_of(msg.subject))

    def mark(self, task_id: str) -> None:
        self.canceled[task_id] = None
        while len(self.canceled) > self.size:
            self.canceled.popitem(last=False)

    def is_canceled(self, task_id: str) -> bool:
        return task_id in self.canceled


class Worker:
    def __init__(
        self,
        bus: Bus,
        config: Config,
        job_types: dict[str, JobType],
        data_dir: Path,
        resources: Resources | None = None,
        name: str | None = None,
        loops: Loops | None = None,
        jobs: JobMetrics | None = None,
    ) -> None:
        self.bus = bus
        self.config = config
        self.job_types = job_types
        self.data_dir = data_dir
        self.resources = resources or Resources()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.loops = loops or Loops()
        self.cancels = CancelWatch(bus, self.loops)
        self.pauses = LanePauses(bus, self.loops)
        self._slots: list[asyncio.Task] = []
        self._pulls: set[LanePull] = set()
        self._running: dict[str, asyncio.Future[None]] = {}  # by job id: the run of each job going on here
        self._held: set[asyncio.Future[None]] = set()  # second deliveries waiting for such a run
        self._stopping = asyncio.Event()
        self.jobs = jobs or JobMetrics()
        self.busy = {"priority": 0, "normal": 0}
        self.idle_priority_only = config.pipeline.priority_only_slots
        self.last_active = time.monotonic()  # when a slot last took or ended a job; a new worker is not at rest

    async def start(self) -> None:
        await self.cancels.start()
        await self.pauses.start()
        self.bus.reconnected.append(self._on_reconnected)
        pipeline = self.config.pipeline
        for index, lanes in enumerate(slot_lanes(pipeline.max_parallel_jobs, pipeline.priority_only_slots)):
            name = f"slot {index}"
            self._slots.append(self.loops.spawn(name, functools.partial(self._slot, name, lanes)))

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop pulling; let running jobs finish within the grace period; the rest are redelivered."""
        self._stopping.set()
        if self._slots:
            await asyncio.wait(self._slots, timeout=grace_s)
        for task in [*self._slots, *self._held]:
            task.cancel()
        await asyncio.gather(*self._slots, *self._held, return_exceptions=True)
        if self._on_reconnected in self.bus.reconnected:
            self.bus.reconnected.remove(self._on_reconnected)
        await self.cancels.stop()
        await self.pauses.stop()

    def _on_reconnected(self) -> None:
        # The server may have forgotten every pull request (a restarted one has): ask again now,
        # rather than when each one would have expired.
        for pull in self._pulls:
            pull.forget()

    async def _slot(self, name: str, lanes: Lanes) -> None:
        """Takes one job at a time until the worker stops. Supervised: after a transient error (a
        publish that failed while NATS was away) it starts again with new pulls; the job it held
        is not acknowledged and comes back after the ack wait."""
        pulls = {lane: await LanePull(self.bus.nc, subjects.lane_consumer(lane)).start() for lane in lanes}
        self._pulls.update(pulls.values())
        held: list[Held] = []
        try:
            while not self._stopping.is_set():
                found = self._resumed(held) or await self._next(name, pulls, lanes)
                if found is None:
                    continue
                lane, msg = found
                if self.pauses.paused(lane):
                    held.append(Held(lane, msg, asyncio.ensure_future(self._keep(msg))))
                    continue
                self.busy[lane] += 1
                self.idle_priority_only -= lanes == PRIORITY_ONLY
                try:
                    await self._run(msg)
                finally:
                    self.busy[lane] -= 1
                    self.idle_priority_only += lanes == PRIORITY_ONLY
                    self.last_active = time.monotonic()
        finally:
            for job in held:  # given back, to be taken again once the lane is resumed
                job.heartbeat.cancel()
                try:
                    await job.msg.nak(delay=self.config.pipeline.backoff_base_s)
                except Exception:  # the connection may already be closing: it comes back after the ack wait
                    pass
            self._pulls.difference_update(pulls.values())
            for pull in pulls.values():
                try:
                    await pull.stop()
                except Exception:  # the connection may already be closing
                    pass

    def _resumed(self, held: list[Held]) -> tuple[str, Msg] | None:
        """A job this slot set aside whose lane has been resumed: it runs before anything is pulled."""
        for job in held:
            if not self.pauses.paused(job.lane):
                held.remove(job)
                job.heartbeat.cancel()
                return job.lane, job.msg
        return None

    async def _keep(self, msg: Msg) -> None:
        """Keeps a job set aside in progress (so it is not handed to anyone else) while its lane is paused."""
        try:
            while True:
                await asyncio.sleep(self.config.pipeline.ack_wait_s / 3)
                await msg.in_progress()
        except Exception as exc:  # NATS away: the job comes back after its ack wait, to be held or run then
            log.info("stopped keeping a job of a paused lane: %s", describe(exc))

    async def _until_stopped(self, wait: Awaitable[None]) -> None:
        """Wait for `wait`, or until the worker is asked to stop."""
        waiting = asyncio.ensure_future(wait)
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
        for task in (waiting, stopping):
            task.cancel()

    def idle_s(self) -> float:
        """How long no slot of this worker has had a job (0 while one has)."""
        return 0.0 if any(self.busy.values()) else time.monotonic() - self.last_active

    async def _next(self, slot: str, pulls: dict[str, LanePull], lanes: Lanes) -> tuple[str, Msg] | None:
        # A job already delivered to this slot is taken whatever the policy says.
        chosen = [lane for lane in lanes if pulls[lane].holding] or list(
            serving(lanes, self.idle_priority_only, self.pauses.states.paused)
        )
        if not chosen:  # every lane of this slot is paused
            await self._until_stopped(self.pauses.changed(REST_S))
            return None
        for i, lane in enumerate(chosen):
            wait = lane_wait(lanes, i + 1 == len(chosen), self.idle_s(), self.idle_priority_only)
            try:
                msg = await pulls[lane].next(wait)
            except Exception as exc:  # NATS away or failing over, or the lane's consumer missing
                self.loops.trouble(slot, f"pulling from lane {lane}: {describe(exc)}")
                await asyncio.sleep(0.5)
                continue
            if pulls[lane].answered:  # not a request lost on its way: the lane is there again
                self.loops.up(slot)
            if msg is not None:
                return lane, msg
        return None

    # -- one job --------------------------------------------------------------------------------

    async def _run(self, msg: Msg) -> None:
        attempt = delivery_of(msg).delivered
        try:
            job = self.bus.codec.decode(msg.data)
            if not isinstance(job, JobRequested):
                raise PoisonEvent(f"{job.type} on a lane's subject")
        except PoisonEvent as exc:
            log.warning("set aside unreadable job on %s: %s", msg.subject, exc)
            await msg.term()
            return
        job_id = job.job_id or ""
        other = self._running.get(job_id)
        if other is not None:
            # Delivered again while it runs here (a server restarted with -9 may lose its consumer's
            # state and hand it out at once): set aside, not in a slot, until that run has ended.
            held = asyncio.ensure_future(self._after(other, msg, job))
            self._held.add(held)
            held.add_done_callback(self._held.discard)
            return
        self._running[job_id] = mine = asyncio.get_running_loop().create_future()
        try:
            await self._take(msg, job, attempt)
        finally:
            del self._running[job_id]
            mine.set_result(None)

    async def _after(self, run: asyncio.Future[None], msg: Msg, job: JobRequested) -> None:
        """Heartbeat a second delivery until the run of its job ends: then it is over (acknowledged),
        or it comes again at once for a slot to take (the run ended without an outcome)."""
        try:
            while not run.done():
                await asyncio.wait([run], timeout=self.config.pipeline.ack_wait_s / 3)
                if not run.done():
                    await msg.in_progress()
            await (msg.ack() if await is_over(self.bus, job) else msg.nak())
        except Exception as exc:  # NATS away: it comes again after the ack wait, and the fence decides then
            log.info("job %s: a second delivery set aside was left to come again: %s", job.job_id, describe(exc))

    async def _take(self, msg: Msg, job: JobRequested, attempt: int) -> None:
        """Run a delivered job unless it is over, reporting its outcome."""
        try:
            ended = await is_over(self.bus, job)
        except Exception as exc:  # the log cannot be read now: the job comes again after a pause
            log.warning("job %s: its task's history could not be read (%s); trying again later", job.job_id, exc)
            pipeline = self.config.pipeline
            await msg.nak(delay=backoff(attempt, pipeline.backoff_base_s, pipeline.backoff_max_s))
            return
        if ended:
            # Over already (an outcome, a later step, its task ended): never run, never reported twice.
            log.info("job %s is over; a late copy on %s was not run", job.job_id, msg.subject)
            await msg.ack()
            return
        job_type = self.job_types.get(job.job_type)
        verdict = before_run(
            job,
            attempt,
            self.config.pipeline.max_attempts,
            job_type is not None,
            self.cancels.is_canceled(job.task_id or ""),
        )
        if verdict is not None:
            await self._settle(job, msg, verdict)
        elif job_type is not None:
            await self._start(job, attempt, job_type, msg)

    async def _start(self, job: JobRequested, attempt: int, job_type: JobType, msg: Msg) -> None:
        at = now_iso()
        start = _Start(self.bus, lambda: self._event(job, JobStarted, at=at, attempt=attempt, worker=self.name))
        reporter = _ProgressReporter(self, job)
        began = time.monotonic()
        error: Exception | None = None
        try:
            await self._supervise(job, attempt, job_type, msg, reporter)
        except Exception as exc:
            error = exc
        finally:
            await start.settle()  # never stored after the outcome
        self.jobs.ran(job.job_type, time.monotonic() - began)
        await self._attempted(job, attempt, msg, error, {"started_at": at, "worker": self.name}, reporter.last())

    async def _attempted(
        self,
        job: JobRequested,
        attempt: int,
        msg: Msg,
        error: Exception | None,
        began: dict[str, str],
        progress: tuple[int | None, int | None],
    ) -> None:
        """Report an attempt's outcome and settle its message."""
        pipeline = self.config.pipeline
        delay = backoff(attempt, pipeline.backoff_base_s, pipeline.backoff_max_s) if error is not None else 0.0
        await self._settle(job, msg, after_attempt(job, attempt, pipeline.max_attempts, error, delay, began, progress))

    async def _settle(self, job: JobRequested, msg: Msg, verdict: Verdict) -> None:
        await self._report(job, verdict.event, msg_id=verdict.msg_id, **verdict.fields)
        if verdict.settle == "ack":
            await msg.ack()
        elif verdict.settle == "nak":
            await msg.nak(delay=verdict.delay_s)
        else:
            await msg.term()

    async def _supervise(
        self, job: JobRequested, attempt: int, job_type: JobType, msg: Msg, reporter: _ProgressReporter
    ) -> None:
        """Run the handler; heartbeat while it works; abandon it when it stops making progress."""
        seq = delivery_of(msg).seq
        ctx = JobContext(
            job=job,
            attempt=attempt,
            config=self.config,
            data_dir=self.data_dir,
            report=reporter.report,
            is_canceled=lambda: self.cancels.is_canceled(job.task_id or ""),
            publish=self.bus.publish_all,
            catch_up=lambda: self._wait_for_state(0),
            resources=self.resources,
            seq=seq,
        )
        wait_for_state = job_type.needs_state(ctx)
        if not wait_for_state:
            ctx.state_ready = not job_type.reads_state

        async def run() -> None:
            if wait_for_state:  # heartbeats go on meanwhile: a lagging read model is no lost worker
                await self._wait_for_state(seq)
            ctx.folder = await self._current_folder(job)
            await job_type.run(ctx)

        timeout = self.config.pipeline.job_timeout_s
        beat = min(self.config.pipeline.ack_wait_s / 3, timeout / 4)
        running = asyncio.create_task(run())
        try:
            while True:
                done, _ = await asyncio.wait([running], timeout=beat)
                if done:
                    break
                if time.monotonic() - ctx.last_progress > timeout:
                    running.cancel()
                    await asyncio.gather(running, return_exceptions=True)
                    raise JobTimeout(f"no progress for {timeout:g}s; abandoned")
                await msg.in_progress()
        except asyncio.CancelledError:
            running.cancel()
            raise
        running.result()

    async def _current_folder(self, job: JobRequested) -> str | None:
        """Where the job's project is now: a task asked for before a rename works in the new folder."""
        read = self.resources.read
        project = await read.project(job.project_id) if read is not None and job.project_id else None
        return project.folder if project is not None else job.folder

    async def _wait_for_state(self, seq: int) -> None:
        read = self.resources.read
        if read is None:
            raise PermanentError("this job needs the read model, and this worker has none")
        # Everything stored before this job starts counts: a revert made before a commit runs wins.
        seq = max(seq, await self.bus.last_seq())
        # Heartbeats go on while it waits: a lagging read model delays the job rather than fail it.
        if not await read.wait_for(seq, timeout=self.config.pipeline.job_timeout_s):
            raise RuntimeError(f"read model has not reached sequence {seq} yet")

    @staticmethod
    def _event(job: JobRequested, kind: type[E], **fields: Any) -> E:
        return kind(
            project_id=job.project_id,
            task_id=job.task_id,
            job_id=job.job_id,
            causation_id=job.id,
            source=job.source,
            task_type=job.task_type,
            job_type=job.job_type,
            step_index=job.step_index,
            **fields,
        )

    async def _report(self, job: JobRequested, kind: type[JobEvent], msg_id: str | None = None, **fields) -> None:
        event = self._event(job, kind, **fields)
        if msg_id is None:
            await self.bus.publish(event)
        else:
            # An outcome is tried again through a NATS fail-over (its message id makes a retry store
            # it once), for as long as the job stays this worker's.
            await self.loops.retry(
                PUBLISH_LOOP, lambda: self.bus.publish(event, msg_id=msg_id), within=self.config.pipeline.ack_wait_s
            )
        self.jobs.stored(event)


class _Start:
    """A job's job.started, stored only once the job has run for STARTED_AFTER_S (with the time it started):
    one that ends sooner says so in its outcome, and costs no more than a timer. Settled before the
    outcome is sent, so never stored after it."""

    def __init__(self, bus: Bus, started: Callable[[], JobStarted]) -> None:
        self.bus = bus
        self.started = started
        self._timer = asyncio.get_running_loop().call_later(STARTED_AFTER_S, self._post)
        self._posting: asyncio.Future[asyncio.Future[tuple[int, bool]]] | None = None
        self.event: JobStarted | None = None

    def _post(self) -> None:
        self.event = event = self.started()
        # Not awaited: one connection stores it before the outcome, and waiting costs a round trip.
        self._posting = asyncio.ensure_future(self.bus.post(event, f"job:{event.job_id}:started:{event.attempt}"))

    async def settle(self) -> None:
        """No job.started from now on; one sent is confirmed (one lost only loses a status)."""
        self._timer.cancel()
        if self._posting is None or self.event is None:
            return
        self._posting.cancel()  # nothing, once it is sent
        sent: asyncio.Future[tuple[int, bool]] | BaseException
        (sent,) = await asyncio.gather(self._posting, return_exceptions=True)
        try:
            if isinstance(sent, BaseException):
                if not isinstance(sent, asyncio.CancelledError):
                    raise sent
                return
            await self.bus.confirm(sent)
        except Exception as exc:
            log.warning("job %s: job.started was not stored: %s", self.event.job_id, exc)


class _ProgressReporter:
    """Progress events at most every PROGRESS_EVERY_S; the last one goes with the job's outcome."""

    def __init__(self, worker: Worker, job: JobRequested, clock: Callable[[], float] = time.monotonic) -> None:
        self.worker = worker
        self.job = job
        self.clock = clock
        # Counted from the start: a job done within PROGRESS_EVERY_S stores only its last progress, not
        # a 0-of-n first (JobRequested gives the UI its items' count already).
        self.sent_at = clock()
        self.pending: tuple[int, int] | None = None

    async def report(self, done: int, total: int) -> None:
        self.pending = (done, total)
        # All done: the outcome, moments away, carries it (a photo uploaded alone stored one more event).
        if done < total and self.clock() - self.sent_at >= PROGRESS_EVERY_S:
            await self.flush()

    async def flush(self) -> None:
        if self.pending is None:
            return
        done, total = self.pending
        self.pending = None
        self.sent_at = self.clock()
        await self.worker._report(self.job, JobProgress, done=done, total=total)

    def last(self) -> tuple[int | None, int | None]:
        """The progress not stored yet, for the outcome to carry: (None, None) when there is none."""
        pending, self.pending = self.pending, None
        return pending if pending is not None else (None, None)
