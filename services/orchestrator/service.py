"""The process manager: folds task events, decides, publishes, acknowledges."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from typing import Awaitable, Iterable

import msgspec
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from prometheus_client.core import Metric

from ..kernel import subjects
from ..kernel.bus import Bus
from ..kernel.events import (
    Event,
    JobRetrying,
    JobStarted,
    PoisonEvent,
    TaskCancelRequested,
    TaskRequested,
)
from ..kernel.messages import Accepted, Conflict, Expect, Outgoing
from ..kernel.metrics import JobMetrics, counter, gauge
from ..kernel.provision import ORCHESTRATOR_FILTERS, orchestrator_consumer, recreated_lanes
from ..kernel.read import delivery_of
from ..kernel.supervise import backoff, describe, transient
from ..kernel.vocabulary import TERMINAL
from .decide import Emit, OpenRequests, decide, lost_dispatches
from .state import TaskState, evolve, record, refreshed, start

replace = msgspec.structs.replace
log = logging.getLogger("darkroom.orchestrator")

# What tells whether a requested job is still open.
RECOVERY_FILTERS = [
    *subjects.REQUESTS,
    *(subjects.any_job(end) for end in TERMINAL),
    *(subjects.any_task(end) for end in TERMINAL),
]
CACHE_SIZE = 20_000
MAX_CONFLICTS = 5
# A message whose handling failed, or whose decision was given up, comes again after this backoff.
AGAIN_BASE_S = 1.0
AGAIN_MAX_S = 30.0
# A handled message's acknowledgement waits at most this long for the next decision to leave with:
# each write wakes the server (and here a write costs a context switch), and the ack is needed by
# no one but the ack wait.
ACK_DELAY_S = 0.005


class GaveUp(Exception):
    """Every decision on a task conflicted with what others stored meanwhile: its message comes again."""


class Orchestrator:
    def __init__(
        self,
        bus: Bus,
        threshold: int,
        name: str = "orchestrator",
        jobs: JobMetrics | None = None,
        max_conflicts: int = MAX_CONFLICTS,
    ) -> None:
        self.bus = bus
        self.jobs = jobs or JobMetrics()  # counts the queued jobs it cancels
        self.threshold = threshold
        self.name = name
        self.max_conflicts = max_conflicts
        self.given_up: set[str] = set()  # tasks whose decision was given up, until one is made again
        self.gave_up = 0
        self.cache: OrderedDict[str, TaskState] = OrderedDict()
        self._chains: dict[str, asyncio.Future[None]] = {}
        self._sub: JetStreamContext.PushSubscription | None = None
        self._stopping = False
        self.poisoned = 0
        self._handled: list[Msg] = []  # decided and stored, not yet acknowledged
        self._acking: asyncio.TimerHandle | None = None
        self._acks: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        config = await orchestrator_consumer(self.bus.jsm, self.name)
        await self.recover_lost_dispatches()
        self._sub = await self.bus.js.subscribe(
            ORCHESTRATOR_FILTERS[0],
            durable=self.name,
            stream=subjects.STREAM,
            config=config,
            cb=self._on_message,
            manual_ack=True,
            idle_heartbeat=5.0,
            flow_control=True,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._sub is not None:
            sub, self._sub = self._sub, None
            if not self.bus.nc.is_closed:
                await sub.unsubscribe()
        pending = [f for f in self._chains.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=10)
        await self._acknowledge()

    async def recover_lost_dispatches(self) -> int:
        """Store again the open requests no worker would ever be handed: those stored before a lane
        consumer that was recreated after them; returns how many. A request is the work itself (no copy
        to lose), so without a recreated lane there is nothing to look for."""
        lane_starts = await recreated_lanes(self.bus.jsm)
        if not lane_starts:
            return 0
        requests = OpenRequests()
        async for batch in self.bus.read(RECOVERY_FILTERS):
            for stored in batch:
                try:
                    requests.add(stored.seq, stored.subject, self.bus.codec.decode(stored.data))
                except PoisonEvent:
                    continue
        lost = lost_dispatches(requests.by_task.values(), lane_starts)
        for request in lost:
            log.warning("dispatching job %s again: its lane consumer was recreated after it", request.job.job_id)
        await self._store_again(
            [
                # Stored only while it is the task's newest request; the same again within the window is one.
                self.bus.outgoing(
                    r.job,
                    f"redispatch:{r.job.job_id}:{lane_starts[r.job.lane]}",
                    Expect(subjects.requests(r.job.project_id, r.job.task_id or ""), r.guard_seq),
                )
                for r in lost
            ]
        )
        return len(lost)

    async def _store_again(self, requests: list[Outgoing]) -> None:
        """Store each, retrying what fails for another reason than a later request (a request not
        stored again waits forever; a retry is deduplicated by its message id)."""
        delay = 0.25
        while requests:
            results = await self.bus.send_many_settled(requests)
            failed = [
                (out, result)
                for out, result in zip(requests, results)
                if isinstance(result, Exception) and not isinstance(result, Conflict)
            ]
            requests = [o for o, _ in failed]
            if requests and self._stopping:
                raise RuntimeError(f"stopping with {len(requests)} job requests not stored again; the next start does")
            if requests:
                log.warning(
                    "storing %d job requests again failed (%s); trying again in %gs", len(requests), failed[0][1], delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _on_message(self, msg: Msg) -> None:
        try:
            event = self.bus.codec.decode(msg.data)
        except PoisonEvent as exc:
            # Recorded as a dead letter by the projector; here it must only never come back.
            self.poisoned += 1
            log.warning("set aside unreadable message on %s: %s", msg.subject, exc)
            await msg.term()
            return
        key = event.task_id or ""
        previous = self._chains.get(key)
        chain = asyncio.ensure_future(self._after(previous, event, msg))
        self._chains[key] = chain
        chain.add_done_callback(functools.partial(self._forget_chain, key))

    def _forget_chain(self, key: str, chain: asyncio.Future[None]) -> None:
        if self._chains.get(key) is chain:
            del self._chains[key]

    async def _after(self, previous: asyncio.Future[None] | None, event: Event, msg: Msg) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # one task's events are handled in stream order
        seq, delivered = delivery_of(msg)
        try:
            await self.handle(event, seq, delivered)
        except GaveUp as exc:
            # Not acknowledged, so nothing is lost: any restart of this orchestrator gets it again too.
            delay = backoff(delivered, AGAIN_BASE_S, AGAIN_MAX_S)
            log.warning("%s; looking again from its history in %.1fs", exc, delay)
            await _settle(msg.nak(delay=delay))
            return
        except Exception as exc:
            if transient(exc):  # NATS failing over: the next delivery, a second from now, goes through
                delay = AGAIN_BASE_S
                log.warning(
                    "handling %s %s failed: %s; it will be redelivered", event.type, event.task_id, describe(exc)
                )
            else:  # delivered again for as long as it fails (never dropped: its task would wait for ever)
                delay = backoff(delivered, AGAIN_BASE_S, AGAIN_MAX_S)
                log.exception("handling %s %s failed; it comes again in %.1fs", event.type, event.task_id, delay)
            await _settle(msg.nak(delay=delay))
            return
        if event.task_id in self.given_up:
            self.given_up.discard(event.task_id)
            log.info("task %s decided again after its decision was given up", event.task_id)
        self._handled.append(msg)
        if self._acking is None:
            self._acking = asyncio.get_running_loop().call_later(ACK_DELAY_S, self._acknowledge_later)

    async def _acknowledge(self) -> None:
        """Acknowledge every message handled so far; called before a decision is published, the
        acks go out in the same write (publishing does not yield to the loop)."""
        if self._acking is not None:
            self._acking.cancel()
            self._acking = None
        handled, self._handled = self._handled, []
        if self.bus.nc.is_closed:
            return  # they come again after the ack wait, and their decisions are stored: guards refuse a second
        for msg in handled:
            await _settle(msg.ack())

    def _acknowledge_later(self) -> None:
        self._acking = None
        if self._handled:
            acks = asyncio.ensure_future(self._acknowledge())
            self._acks.add(acks)
            acks.add_done_callback(self._acks.discard)

    async def handle(self, event: Event, seq: int, delivery: int = 1) -> None:
        if not event.task_id:
            return
        state = await self._state_for(event, seq, delivery)
        if state is not None and isinstance(event, TaskCancelRequested) and not state.terminal:
            state = await self._with_running(state)
        if state is not None:
            await self._act(state)

    async def _with_running(self, state: TaskState) -> TaskState:
        """The task with what its latest job.started and job.retrying say is running now (events the
        orchestrator does not consume): a cancel ends at once a job that is not running, and waits
        for one that is to stop at its next item."""
        started = await self._last(subjects.job_subject(state.project_id, state.task_id, "started"))
        retrying = await self._last(subjects.job_subject(state.project_id, state.task_id, "retrying"))
        running = -1
        if isinstance(started[1], JobStarted):
            backed_off = (
                isinstance(retrying[1], JobRetrying)
                and retrying[0] > started[0]
                and retrying[1].step_index == started[1].step_index
            )
            running = -1 if backed_off else started[1].step_index
        if running != state.running_step:
            state = replace(state, running_step=running)
            self._remember(state)
        return state

    async def _last(self, subject: str) -> tuple[int, Event | None]:
        """The stream sequence and event of the newest message on `subject` ((0, None): none, or unreadable)."""
        stored = await self.bus.last_on(subject)
        if stored is None:
            return 0, None
        try:
            return stored.seq, self.bus.codec.decode(stored.data)
        except PoisonEvent:
            return stored.seq, None

    async def _state_for(self, event: Event, seq: int, delivery: int) -> TaskState | None:
        state = self.cache.get(event.task_id or "")
        if state is None:
            if isinstance(event, TaskRequested) and delivery == 1:
                # Taken as new without reading the log: if anything has happened to the task since
                # (a restart long after, another orchestrator), the guards refuse what this decides.
                # Delivered again, it was not handled before (given up, or failed): its history says why.
                state = start(event, seq)
            else:
                state = await self.load(event.project_id, event.task_id or "")
                if state is None:
                    log.warning("%s for unknown task %s ignored", event.type, event.task_id)
                    return None
        else:
            state = evolve(state, event, seq)
        self._remember(state)
        return state

    def _remember(self, state: TaskState) -> None:
        self.cache[state.task_id] = state
        self.cache.move_to_end(state.task_id)
        while len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)

    async def load(self, project_id: str | None, task_id: str) -> TaskState | None:
        """Rebuild one task from the log: its task events and its jobs' lifecycle."""
        state: TaskState | None = None
        prefix = subjects.task_events(project_id, task_id)
        task_subjects = subjects.task_subject(project_id, task_id, "")
        requests = subjects.job_subject(project_id, task_id, "requested.")
        poisoned_task = 0
        # The newest request on today's subjects, readable or not: what the guard on them sees (one stored
        # before CONTRACT §7.1, without the lane in its subject, it does not).
        newest_request = 0
        newest = 0
        async for batch in self.bus.read([prefix]):  # the cold path: a task not in the cache
            for stored in batch:
                newest = stored.seq
                if stored.subject.startswith(requests):
                    newest_request = stored.seq
                try:
                    event = self.bus.codec.decode(stored.data)
                except PoisonEvent:
                    # Unreadable, yet it moved its subject's last sequence: the guards must know it.
                    if stored.subject.startswith(task_subjects):
                        poisoned_task = stored.seq
                    continue
                if state is None:
                    if isinstance(event, TaskRequested):
                        state = start(event, stored.seq)
                else:
                    state = evolve(state, event, stored.seq)
        if state is not None:
            state = replace(
                state,
                last_task_seq=max(state.last_task_seq, poisoned_task),
                last_requested_seq=newest_request,
                last_history_seq=newest,
            )
        return state

    async def _act(self, state: TaskState) -> None:
        """Store what the task needs next, deciding again after each conflict; after `max_conflicts`
        conflicts in a row, GaveUp."""
        for attempt in range(1, self.max_conflicts + 1):
            actions = decide(state, self.threshold)
            if not actions:
                return
            try:
                self._remember(await self._execute(state, actions))
                return
            except Conflict as exc:
                # Another orchestrator (or our own earlier life) moved this task: look again.
                log.debug("task %s moved on (%s); looking again", state.task_id, exc)
                if attempt == self.max_conflicts:
                    break
                again = await self._refresh(state)
                if again is None:
                    return
                state = again
                self._remember(state)
        # The view that lost every time is not kept: the next look reads the task's whole history.
        self.cache.pop(state.task_id, None)
        self.given_up.add(state.task_id)
        self.gave_up += 1
        raise GaveUp(f"task {state.task_id}: gave up after {self.max_conflicts} conflicting decisions")

    async def _refresh(self, state: TaskState) -> TaskState | None:
        """The task with what others stored since: two direct gets, or its history when they cannot tell
        (conflicts are routine with two orchestrators; reading a history each time is not cheap)."""
        task, request = await asyncio.gather(
            self._last(subjects.task_subject(state.project_id, state.task_id, ">")),
            self._last(subjects.requests(state.project_id, state.task_id)),
        )
        again = refreshed(state, task if task[0] else None, request if request[0] else None)
        return again if again is not None else await self.load(state.project_id, state.task_id)

    async def _execute(self, state: TaskState, actions: list[Emit]) -> TaskState:
        await self._acknowledge()
        results = await self.bus.send_many_settled(
            [self.bus.outgoing(action.event, action.msg_id, action.expect) for action in actions]
        )
        for action, result in zip(actions, results):
            if isinstance(result, Accepted):
                state = record(state, action.event, result.seq)
                if not result.duplicate:
                    self.jobs.stored(action.event)
        self._remember(state)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, Conflict):
                raise result
        for result in results:
            if isinstance(result, Conflict):
                raise result
        return state

    def families(self) -> Iterable[Metric]:
        """Its metrics, read when scraped."""
        yield counter(
            "darkroom_orchestrator_decisions_given_up",
            "Decisions on a task given up after conflicting with what others stored; each is looked at again",
            self.gave_up,
        )
        yield gauge(
            "darkroom_orchestrator_tasks_given_up",
            "Tasks whose decision was given up and is not made yet (their messages come again, with backoff)",
            len(self.given_up),
        )


async def _settle(reply: Awaitable[None]) -> None:
    """Acknowledge or nak; one lost with the connection only means the message comes back after the ack wait."""
    try:
        await reply
    except Exception as exc:
        log.warning("could not settle a message: %s", describe(exc))
