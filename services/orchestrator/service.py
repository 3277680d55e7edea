"""The process manager: folds task events, decides, publishes, acknowledges."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import replace
from typing import Awaitable

from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError

from ..kernel import subjects
from ..kernel.bus import Bus, Conflict, Outgoing, lane_consumer
from ..kernel.events import Event, JobRetrying, JobStarted, PoisonEvent, TaskCancelRequested, TaskRequested
from ..kernel.supervise import describe, transient
from .decide import Action, Dispatch, Emit, decide, lost_dispatches
from .state import TaskState, evolve, record, start

log = logging.getLogger("darkroom.orchestrator")

# Only what may call for a decision is consumed; what the orchestrator stores itself it folds in
# from its own acknowledgements, and another orchestrator's writes show up as a CAS conflict.
FILTERS = [
    f"{subjects.ROOT}.task.*.*.requested",
    f"{subjects.ROOT}.task.*.*.cancel_requested",
    f"{subjects.ROOT}.job.*.*.completed",
    f"{subjects.ROOT}.job.*.*.failed",
    f"{subjects.ROOT}.job.*.*.canceled",
]
# Everything a task's state is made of, for a full rebuild.
STATE_FILTERS = [f"{subjects.ROOT}.task.>", f"{subjects.ROOT}.job.*.*.requested", *FILTERS[2:]]
CACHE_SIZE = 20_000
MAX_CONFLICTS = 5


class Orchestrator:
    def __init__(self, bus: Bus, threshold: int, name: str = "orchestrator") -> None:
        self.bus = bus
        self.threshold = threshold
        self.name = name
        self.cache: OrderedDict[str, TaskState] = OrderedDict()
        self._chains: dict[str, asyncio.Future] = {}
        self._sub = None
        self.poisoned = 0
        self.decisions = 0

    async def start(self) -> None:
        config = api.ConsumerConfig(
            durable_name=self.name,
            filter_subjects=FILTERS,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30,
            max_deliver=20,
            max_ack_pending=2000,
        )
        try:
            have = (await self.bus.jsm.consumer_info(subjects.STREAM, self.name)).config
        except NotFoundError:
            have = None
        if have is not None and (have.filter_subjects or [have.filter_subject]) != FILTERS:
            # An older Darkroom made this consumer with other filters: bring it up to date in place.
            config.deliver_subject = have.deliver_subject
            await self.bus.jsm.add_consumer(subjects.STREAM, config)
        await self.recover_lost_dispatches()
        self._sub = await self.bus.js.subscribe(
            FILTERS[0], durable=self.name, stream=subjects.STREAM, config=config, cb=self._on_message,
            manual_ack=True, idle_heartbeat=5.0, flow_control=True,
            pending_msgs_limit=-1, pending_bytes_limit=-1)

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            if not self.bus.nc.is_closed:
                await sub.unsubscribe()
        pending = [f for f in self._chains.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=10)

    async def recover_lost_dispatches(self) -> int:
        """Re-dispatch what a recreated lane consumer would never deliver; returns how many."""
        lane_starts = {}
        for lane in subjects.LANES:
            info = await self.bus.jsm.consumer_info(subjects.STREAM, lane_consumer(lane))
            if info.config.deliver_policy == api.DeliverPolicy.BY_START_SEQUENCE and info.config.opt_start_seq:
                lane_starts[lane] = info.config.opt_start_seq
        if not lane_starts:
            return 0
        states: dict[str, TaskState] = {}
        dispatched: dict[str, int] = {}
        async for batch in self.bus.read(STATE_FILTERS + [f"{subjects.ROOT}.dispatch.>"]):
            for stored in batch:
                try:
                    event = self.bus.codec.decode(stored.data)
                except PoisonEvent:
                    continue
                if subjects.is_dispatch(stored.subject):
                    dispatched[event.job_id or ""] = stored.seq
                elif isinstance(event, TaskRequested) and event.task_id not in states:
                    states[event.task_id or ""] = start(event, stored.seq)
                elif event.task_id in states:
                    states[event.task_id or ""] = evolve(states[event.task_id or ""], event, stored.seq)
        lost = lost_dispatches(list(states.values()), dispatched, lane_starts, self.threshold)
        for job in lost:
            log.warning("re-dispatching job %s: its lane consumer was recreated after it", job.job_id)
            start_seq = lane_starts[job.lane]
            await self.bus.publish(job, f"redispatch:{job.job_id}:{start_seq}",
                                   subject=subjects.dispatch(job.lane, job.job_type))
        return len(lost)

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
        chain.add_done_callback(lambda _f, k=key, c=chain: self._chains.pop(k, None) if self._chains.get(k) is c else None)

    async def _after(self, previous: asyncio.Future | None, event: Event, msg: Msg) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # one task's events are handled in stream order
        meta = msg.metadata
        try:
            await self.handle(event, meta.sequence.stream, redelivered=meta.num_delivered > 1)
        except Exception as exc:
            if transient(exc):  # NATS failing over: the next delivery, a second from now, goes through
                log.warning("handling %s %s failed: %s; it will be redelivered", event.type, event.task_id,
                            describe(exc))
            else:
                log.exception("handling %s %s failed; it will be redelivered", event.type, event.task_id)
            await _settle(msg.nak(delay=1.0))
            return
        await _settle(msg.ack())

    async def handle(self, event: Event, seq: int, redelivered: bool = False) -> None:
        if not event.task_id:
            return
        state = await self._state_for(event, seq)
        if state is not None and isinstance(event, TaskCancelRequested) and not state.terminal:
            state = await self._with_running(state)
        if state is not None:
            await self._act(state, redispatch=redelivered)

    async def _with_running(self, state: TaskState) -> TaskState:
        """The task with what its latest job.started and job.retrying say is running now (events the
        orchestrator does not consume): a cancel ends at once a job that is not running, and waits
        for one that is to stop at its next item."""
        prefix = subjects.job_prefix(state.project_id, state.task_id)
        started = await self._last(f"{prefix}.started")
        retrying = await self._last(f"{prefix}.retrying")
        running = -1
        if isinstance(started[1], JobStarted):
            backed_off = (isinstance(retrying[1], JobRetrying) and retrying[0] > started[0]
                          and retrying[1].step_index == started[1].step_index)
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

    async def _state_for(self, event: Event, seq: int) -> TaskState | None:
        state = self.cache.get(event.task_id or "")
        if state is None:
            if isinstance(event, TaskRequested):
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
        prefix = f"{subjects.ROOT}.*.{subjects.project_token(project_id)}.{task_id}.>"
        task_subjects = subjects.task_prefix(project_id, task_id) + "."
        requested_subject = subjects.job_prefix(project_id, task_id) + ".requested"
        poisoned = {"task": 0, "requested": 0}
        async for batch in self.bus.read([prefix]):  # the cold path: a task not in the cache
            for stored in batch:
                try:
                    event = self.bus.codec.decode(stored.data)
                except PoisonEvent:
                    # Unreadable, yet it moved its subject's last sequence: the guards must know it.
                    if stored.subject.startswith(task_subjects):
                        poisoned["task"] = stored.seq
                    elif stored.subject == requested_subject:
                        poisoned["requested"] = stored.seq
                    continue
                if state is None:
                    if isinstance(event, TaskRequested):
                        state = start(event, stored.seq)
                else:
                    state = evolve(state, event, stored.seq)
        if state is not None:
            state = replace(state, last_task_seq=max(state.last_task_seq, poisoned["task"]),
                            last_requested_seq=max(state.last_requested_seq, poisoned["requested"]))
        return state

    async def _act(self, state: TaskState, redispatch: bool) -> None:
        for _ in range(MAX_CONFLICTS):
            actions = decide(state, self.threshold, redispatch=redispatch)
            if not actions:
                return
            self.decisions += 1
            try:
                self._remember(await self._execute(state, actions))
                return
            except Conflict as exc:
                # Another orchestrator (or our own earlier life) moved this task: look again.
                log.debug("task %s moved on (%s); reloading", state.task_id, exc)
                reloaded = await self.load(state.project_id, state.task_id)
                if reloaded is None:
                    return
                state = reloaded
                self._remember(state)
                redispatch = True
        log.error("task %s: gave up after %d conflicting decisions", state.task_id, MAX_CONFLICTS)

    async def _execute(self, state: TaskState, actions: list[Action]) -> TaskState:
        batch: list[Outgoing] = []
        for action in actions:
            if isinstance(action, Emit):
                batch.append(self.bus.outgoing(action.event, action.msg_id, action.expect))
            elif isinstance(action, Dispatch):
                batch.append(self.bus.outgoing(action.job, f"dispatch:{action.job.job_id}",
                                               subject=subjects.dispatch(action.job.lane, action.job.job_type)))
        results = await self.bus.send_many_settled(batch)
        for action, result in zip(actions, results):
            if isinstance(action, Emit) and isinstance(result, int):
                state = record(state, action.event, result)
        self._remember(state)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, Conflict):
                raise result
        for result in results:
            if isinstance(result, Conflict):
                raise result
        return state


async def _settle(reply: Awaitable[None]) -> None:
    """Acknowledge or nak; one lost with the connection only means the message comes back after the ack wait."""
    try:
        await reply
    except Exception as exc:
        log.warning("could not settle a message: %s", describe(exc))
