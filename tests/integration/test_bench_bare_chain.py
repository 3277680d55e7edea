"""The bench's bare chain (bench/bare_chain.py) against a real server: every task it starts completes,
it stores exactly the messages per task that Darkroom does, and its second one-at-a-time run reads
before each job what Darkroom's worker reads."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

from darkroom.kernel.natsd import NatsServer

BARE_CHAIN = Path(__file__).resolve().parents[2] / "bench" / "bare_chain.py"


@pytest.mark.parametrize("messages", [15, 8], ids=["before 7.1", "since"])
async def test_the_bare_chain_completes_its_tasks_with_darkroom_s_messages(nats_server: NatsServer, messages) -> None:
    nc = await nats.connect(nats_server.url)
    published: list[str] = []
    reads: list[dict] = []

    async def seen(msg: Msg) -> None:
        published.append(msg.subject)

    async def read(msg: Msg) -> None:
        reads.append(json.loads(msg.data))

    await nc.subscribe("barechain.>", cb=seen)
    await nc.subscribe("$JS.API.DIRECT.GET.BARECHAIN", cb=read)  # beside the server, which answers them
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(BARE_CHAIN),
            nats_server.url,
            "--messages",
            str(messages),
            "--tasks",
            "20",
            "--slots",
            "2",
            "--latency-tasks",
            "3",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, err.decode()
        await nc.flush()
    finally:
        await nc.close()
    figures = json.loads(out)
    assert figures["tasks_s"] > 0 and 0 < figures["one_p50_ms"] <= figures["one_p99_ms"]
    assert figures["one_read_p50_ms"] > 0
    tasks = 10 + 3 + 3 + 20  # warm-up, one at a time without and with the worker's reads, throughput
    assert len(published) == messages * tasks
    assert sum(s.endswith(".completed") and ".task." in s for s in published) == tasks
    assert sum(".dispatch." in s for s in published) == (3 * tasks if messages == 15 else 0)
    assert sum(".requested.priority." in s for s in published) == (0 if messages == 15 else 3 * tasks)
    # Only the second one-at-a-time run reads: per task one read a job, and its jobs' newest too for a first step.
    newest = [r["last_by_subj"] for r in reads]
    assert len(newest) == 3 * (3 + 1)
    assert sorted({s.split(".")[2][0] for s in newest}) == ["r"]  # its tasks are named r0, r1…
    assert sum(s.startswith("barechain.*.") for s in newest) == 3 * 3
