"""A worker slot's pulls from one lane: one request at a time, and each one over before the next.

A request is over only when the server says so (a job, or that the wait ended), never on the
client's clock alone: a request the client stopped waiting for lives on at the server until it
expires there, and could hand a job to a slot that has moved on to another, where the job would
wait. A look at a lane is a request that does not wait (the server answers at once), which costs
less than asking for the consumer's state and cannot miss a job stored in between.
"""

from __future__ import annotations

import asyncio
from collections import deque

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ..kernel.subjects import next_messages
from ..kernel.supervise import TransientError

# How long past its expiry a request's end may take to arrive before the slot stops counting on it
# (after a reconnect the server has forgotten it and says nothing).
LOST_AFTER_S = 2.0
HEARTBEAT = "100"
OVER = ("404", "408")  # nothing to deliver, or the request expired: the usual end of a wait


class PullRefused(TransientError):
    """The server ended a pull request for another reason (the consumer is gone, a limit…)."""


class LanePull:
    def __init__(self, nc: Client, consumer: str) -> None:
        self.nc = nc
        self.next_subject = next_messages(consumer)
        self.inbox = nc.new_inbox()
        self.jobs: deque[Msg] = deque()  # delivered, not yet taken
        self.asked = 0  # the number of the latest request; its statuses come to inbox.<number>
        self.outstanding = False  # the latest request may still deliver
        self.refused: str | None = None  # why the server ended the latest request, if not as usual
        self.answered = False  # the server said something about the latest request: it is there
        self._changed = asyncio.Event()
        self._sub: Subscription | None = None

    async def start(self) -> LanePull:
        self._sub = await self.nc.subscribe(f"{self.inbox}.*", cb=self._on_msg)
        return self

    async def stop(self) -> None:
        if self._sub is not None and not self.nc.is_closed:
            await self._sub.unsubscribe()
        self._sub = None

    def forget(self) -> None:
        """The server has lost the latest request (a reconnect): the next `next` asks anew."""
        self.outstanding = False
        self._changed.set()

    @property
    def holding(self) -> bool:
        """A job was delivered to this slot and is not taken yet: it must be taken first."""
        return bool(self.jobs)

    async def next(self, wait: float) -> Msg | None:
        """The next job, waiting up to `wait` seconds for one (0: only one already there); None if none
        came; PullRefused if the server ended the request for another reason than that."""
        loop = asyncio.get_running_loop()
        if not self.jobs and not self.outstanding:
            self.asked += 1
            self.outstanding = True
            self.refused = None
            self.answered = False
            # wait 0: the server answers at once, with the job or with 404 (nothing there)
            request = b'{"batch":1,"expires":%d}' % int(wait * 1e9) if wait > 0 else b'{"batch":1,"no_wait":true}'
            await self.nc.publish(self.next_subject, request, reply=f"{self.inbox}.{self.asked}")
        deadline = loop.time() + wait + LOST_AFTER_S
        while not self.jobs and self.outstanding:
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.outstanding = False
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass
        if self.jobs:
            return self.jobs.popleft()
        if self.refused is not None:
            raise PullRefused(self.refused)
        return None

    async def _on_msg(self, msg: Msg) -> None:
        if msg.reply:  # a job, on its own subject: one job is all a request asks for
            self.jobs.append(msg)
            self.outstanding = False
            self.answered = True
        elif msg.subject.rpartition(".")[2] == str(self.asked):  # a status, on the request's inbox
            headers = msg.headers or {}
            status = headers.get("Status", "")
            self.answered = True
            if status == HEARTBEAT:
                return
            self.outstanding = False  # this request is over
            if status not in OVER:
                self.refused = f"{status} {headers.get('Description', '')}".strip()
        self._changed.set()
