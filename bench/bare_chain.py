#!/usr/bin/env python3
"""The ceiling a 3-step task chain has on a given NATS server: the messages Darkroom stores for one
task, and nothing else, through bare nats-py in one process (as `darkroom up` is one process).

Per task, as Darkroom wrote them before CONTRACT §7.1 (`--messages 15`, the old reference):
task.requested; task.started with the first job.requested and its dispatch copy; per step job.started
and job.completed, then the next job.requested with its dispatch copy; task.completed: 15 stored
messages of about Darkroom's size. As it writes them now (`--messages 8`, §7.1): task.requested; per
step a job.requested with its lane in its subject and a job.completed; task.completed: 8.
An orchestrator consumes requests and completions (a durable push consumer, explicit acks), worker
slots pull the work (the dispatch copies, or the requests) one at a time, a projector follows
everything (an ordered consumer) and only parses it. No read model, HTTP, SSE, typed events or
bookkeeping: what is left is what the
log and the client library cost, so Darkroom's rate over this one is the share its own work leaves.
The one-at-a-time tasks run twice: as above, then with the read Darkroom's worker makes before each
job (its task's newest event but a request, one direct get; two at once for a first step), so the
floor of one task at a time is known with and without that safety read.

    python bench/bare_chain.py NATS_URL [--messages 15|8] [--tasks N] [--slots S] [--concurrency C]
                                        [--latency-tasks M]

Prints one JSON object: tasks_s, one_p50_ms, one_p99_ms, one_read_p50_ms (one at a time with the
worker's read), cpu_ms_per_task (this process only).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import time

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

STREAM, ROOT = "BARECHAIN", "barechain"
STEPS = 3
LAYOUTS = (15, 8)  # stored messages per task: before CONTRACT §7.1, and since
PAD = "x" * 330  # brings an event to about Darkroom's 500 bytes


def event(kind: str, task: str, step: int) -> bytes:
    return json.dumps(
        {
            "type": kind,
            "v": 1,
            "id": f"{task}.{kind}.{step}",
            "at": "2026-01-01T00:00:00.000Z",
            "task_id": task,
            "step_index": step,
            "source": "user",
            "pad": PAD,
        }
    ).encode()


class Acks:
    """Publishes whose JetStream acknowledgements come back to one inbox, matched by token."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        self.waiting: dict[str, asyncio.Future] = {}
        self.tokens = itertools.count()

    async def start(self) -> None:
        await self.nc.subscribe(f"{self.prefix}.*", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        future = self.waiting.pop(msg.subject.rpartition(".")[2], None)
        if future is not None and not future.done():
            future.set_result(msg.data)

    async def post(self, subject: str, data: bytes, msg_id: str) -> asyncio.Future:
        token = str(next(self.tokens))
        future = self.waiting[token] = asyncio.get_running_loop().create_future()
        await self.nc.publish(subject, data, reply=f"{self.prefix}.{token}", headers={"Nats-Msg-Id": msg_id})
        return future


class Chain:
    def __init__(self, nc: Client, slots: int, messages: int = 15) -> None:
        self.nc = nc
        self.copies = messages == 15  # the old layout: a dispatch copy, task.started and job.started
        self.acks = Acks(nc)
        self.slots = slots
        self.done: dict[str, asyncio.Future] = {}
        self.parsed = 0
        self.read_first = False  # each job reads its task's newest event first, as Darkroom's worker does
        self._workers: list[asyncio.Task] = []

    async def start(self) -> None:
        js, jsm = self.nc.jetstream(), self.nc.jsm()
        await jsm.add_stream(
            api.StreamConfig(name=STREAM, subjects=[f"{ROOT}.>"], storage=api.StorageType.FILE, allow_direct=True)
        )
        await jsm.add_consumer(
            STREAM,
            api.ConsumerConfig(
                durable_name="lane",
                filter_subject=f"{ROOT}.dispatch.>" if self.copies else f"{ROOT}.job.*.requested.>",
                ack_policy=api.AckPolicy.EXPLICIT,
                max_ack_pending=10_000,
            ),
        )
        await self.acks.start()
        await self.nc.subscribe(f"{ROOT}.task.*.completed", cb=self._on_completed)
        await js.subscribe(
            f"{ROOT}.>", ordered_consumer=True, cb=self._project, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        filters = [f"{ROOT}.task.*.requested", f"{ROOT}.job.*.completed"]
        await js.subscribe(
            filters[0],
            durable="orchestrator",
            stream=STREAM,
            cb=self._orchestrate,
            manual_ack=True,
            config=api.ConsumerConfig(filter_subjects=filters, ack_policy=api.AckPolicy.EXPLICIT, max_ack_pending=2000),
            idle_heartbeat=5.0,
            flow_control=True,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        self._workers = [asyncio.create_task(self._slot()) for _ in range(self.slots)]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self.nc.jsm().delete_stream(STREAM)

    async def _project(self, msg: Msg) -> None:
        json.loads(msg.data)
        self.parsed += 1

    async def _on_completed(self, msg: Msg) -> None:
        future = self.done.pop(json.loads(msg.data)["task_id"], None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    def _request(self, task: str, step: int) -> list[tuple[str, bytes, str]]:
        job = event("job.requested", task, step)
        if not self.copies:
            return [(f"{ROOT}.job.{task}.requested.priority.noop", job, f"{task}:{step}:requested")]
        return [
            (f"{ROOT}.job.{task}.requested", job, f"{task}:{step}:requested"),
            (f"{ROOT}.dispatch.noop", job, f"{task}:{step}:dispatch"),
        ]

    async def _orchestrate(self, msg: Msg) -> None:
        fact = json.loads(msg.data)
        task, step = fact["task_id"], fact["step_index"]
        if fact["type"] == "task.requested" and self.copies:
            out = [
                (f"{ROOT}.task.{task}.started", event("task.started", task, 0), f"{task}:started"),
                *self._request(task, 0),
            ]
        elif fact["type"] == "task.requested":
            out = self._request(task, 0)
        elif step + 1 < STEPS:
            out = self._request(task, step + 1)
        else:
            out = [(f"{ROOT}.task.{task}.completed", event("task.completed", task, step), f"{task}:completed")]
        await asyncio.gather(*[await self.acks.post(*message) for message in out])
        await msg.ack()

    async def _slot(self) -> None:
        inbox, jobs = self.nc.new_inbox(), asyncio.Queue()
        await self.nc.subscribe(inbox, cb=jobs.put)
        while True:
            await self.nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.lane", b'{"batch":1,"expires":5000000000}', reply=inbox
            )
            msg = await jobs.get()
            if not msg.reply:  # the pull request expired: ask again
                continue
            job = json.loads(msg.data)
            task, step = job["task_id"], job["step_index"]
            if self.read_first:
                await self._newest(task, step)
            stored = (
                [
                    await self.acks.post(
                        f"{ROOT}.job.{task}.started", event("job.started", task, step), f"{task}:{step}:started"
                    )
                ]
                if self.copies
                else []
            )
            stored.append(
                await self.acks.post(
                    f"{ROOT}.job.{task}.completed", event("job.completed", task, step), f"{task}:{step}:completed"
                )
            )
            await asyncio.gather(*stored)
            await msg.ack()

    async def _newest(self, task: str, step: int) -> None:
        """The task's newest event but a request (subjects of four tokens); for a first step its jobs'
        too, at the same time: the reads of Darkroom's worker (darkroom.worker.fence)."""
        subjects = [f"{ROOT}.*.{task}.*", *([f"{ROOT}.job.{task}.*"] if step == 0 else [])]
        await asyncio.gather(
            *(
                self.nc.request(f"$JS.API.DIRECT.GET.{STREAM}", json.dumps({"last_by_subj": s}).encode())
                for s in subjects
            )
        )

    async def request(self, name: str) -> asyncio.Future:
        """Store a task's request; the future is when its completion arrived (perf_counter)."""
        future = self.done[name] = asyncio.get_running_loop().create_future()
        await (await self.acks.post(f"{ROOT}.task.{name}.requested", event("task.requested", name, 0), name))
        return future

    async def run_task(self, name: str) -> float:
        """One task from request to completion; seconds."""
        began = time.perf_counter()
        return await (await self.request(name)) - began


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


async def measure(url: str, tasks: int, slots: int, concurrency: int, latency_tasks: int, messages: int = 15) -> dict:
    nc = await nats.connect(url, name="bare-chain")
    chain = Chain(nc, slots, messages)
    try:
        await chain.start()
        for n in range(10):  # warm up
            await chain.run_task(f"w{n}")
        latencies = [await chain.run_task(f"o{n}") * 1000 for n in range(latency_tasks)]
        chain.read_first = True
        with_read = [await chain.run_task(f"r{n}") * 1000 for n in range(latency_tasks)]
        chain.read_first = False
        limit = asyncio.Semaphore(concurrency)

        async def limited(name: str) -> None:
            async with limit:  # requests in flight, as the bench's POSTs
                completed = await chain.request(name)
            await completed

        began, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*[limited(f"t{n}") for n in range(tasks)])
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        return {
            "tasks_s": tasks / seconds,
            "one_p50_ms": percentile(latencies, 0.5),
            "one_p99_ms": percentile(latencies, 0.99),
            "one_read_p50_ms": percentile(with_read, 0.5),
            "cpu_ms_per_task": cpu / tasks * 1000,
        }
    finally:
        await chain.stop()
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("--messages", type=int, choices=LAYOUTS, default=15, help="stored messages per task (default 15)")
    p.add_argument("--tasks", type=int, default=1500)
    p.add_argument("--slots", type=int, default=2, help="worker slots pulling jobs")
    p.add_argument("--concurrency", type=int, default=64, help="task requests in flight")
    p.add_argument("--latency-tasks", type=int, default=100, help="tasks run one at a time")
    args = p.parse_args(argv)
    result = asyncio.run(measure(args.url, args.tasks, args.slots, args.concurrency, args.latency_tasks, args.messages))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
