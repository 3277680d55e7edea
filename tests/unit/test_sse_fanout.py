"""services/api/fanout.py: each commit's SSE messages encoded once, queued only for the clients that
show them, and a client that does not read cut loose from its queue rather than let it grow."""

from __future__ import annotations

import asyncio
import time

from darkroom.api.fanout import Chunk, ClientQueue, Fanout, encode
from darkroom.projector.queries import AFTER_EVERYTHING, OutboxRow


def row(seq: int, k: int = 0, project: str | None = "P01", maintenance: bool = False) -> OutboxRow:
    return OutboxRow(seq, k, "task_update", f'{{"seq":{seq}}}', project, maintenance)


def chunk(*rows: OutboxRow) -> Chunk:
    return Chunk.of(list(rows), {r.position: encode(r) for r in rows})


def test_a_message_is_encoded_as_sse_with_its_id():
    assert encode(row(7, 1)) == b'id: 7.1\nevent: task_update\ndata: {"seq":7}\n\n'


def test_a_chunk_gives_only_what_is_past_a_cursor():
    c = chunk(row(3), row(3, 1), row(5))
    assert c.after((2, AFTER_EVERYTHING)) == c.data
    assert c.after((3, 0)) == encode(row(3, 1)) + encode(row(5))
    assert c.after((3, AFTER_EVERYTHING)) == encode(row(5))
    assert c.after((5, 0)) == b""


def test_each_project_gets_its_own_messages_and_an_unfiltered_stream_all_of_them():
    fanout = Fanout()
    one = fanout.open("P01", False, 1 << 20)
    two = fanout.open("P02", False, 1 << 20)
    everything = fanout.open(None, False, 1 << 20)
    fanout.publish([row(1), row(2, project="P02"), row(3, project=None), row(4)])
    assert one.take((0, 0)) == (encode(row(1)) + encode(row(4)), (4, 0))
    assert two.take((0, 0)) == (encode(row(2, project="P02")), (2, 0))
    assert everything.take((0, 0))[0] == b"".join(
        encode(r) for r in (row(1), row(2, project="P02"), row(3, project=None), row(4))
    )


def test_maintenance_messages_only_for_streams_that_show_them():
    fanout = Fanout()
    hidden = fanout.open("P01", False, 1 << 20)
    shown = fanout.open("P01", True, 1 << 20)
    fanout.publish([row(1), row(2, maintenance=True)])
    assert hidden.take((0, 0))[0] == encode(row(1))
    assert shown.take((0, 0))[0] == encode(row(1)) + encode(row(2, maintenance=True))


def test_streams_of_one_kind_share_one_encoding_and_others_are_not_touched():
    fanout = Fanout()
    first, second = fanout.open("P01", False, 1 << 20), fanout.open("P01", False, 1 << 20)
    other = fanout.open("P02", False, 1 << 20)
    fanout.publish([row(1), row(2)])
    assert first.chunks[0] is second.chunks[0]
    assert other.chunks == []


def test_a_closed_stream_gets_nothing_more():
    fanout = Fanout()
    gone = fanout.open("P01", False, 1 << 20)
    fanout.close(gone)
    fanout.publish([row(1)])
    assert gone.chunks == [] and fanout.queues == {}


def test_a_queue_past_its_limit_falls_behind_and_holds_nothing_until_restarted():
    queue = ClientQueue(("P01", False), limit=2 * len(encode(row(1))))
    queue.put(chunk(row(1)))
    queue.put(chunk(row(2)))
    assert not queue.behind
    queue.put(chunk(row(3)))
    assert queue.behind and queue.chunks == [] and queue.size == 0
    queue.put(chunk(row(4)))  # ignored: the handler reads from the outbox from where it was
    assert queue.chunks == []
    queue.restart()
    queue.put(chunk(row(5)))
    assert not queue.behind and queue.take((4, 0)) == (encode(row(5)), (5, 0))


def test_take_skips_what_the_outbox_already_gave():
    queue = ClientQueue((None, True), limit=1 << 20)
    queue.put(chunk(row(1), row(2)))
    queue.put(chunk(row(3), row(4)))
    # Caught up from the outbox through 3: the rest of the queue comes once, in order.
    assert queue.take((3, AFTER_EVERYTHING)) == (encode(row(4)), (4, 0))
    assert queue.take((4, 0)) == (b"", (4, 0))


async def test_a_waiting_stream_wakes_when_something_is_queued_for_it_and_not_otherwise():
    fanout = Fanout()
    mine, other = fanout.open("P01", False, 1 << 20), fanout.open("P02", False, 1 << 20)
    waiting = [asyncio.create_task(q.wait()) for q in (mine, other)]
    await asyncio.sleep(0)  # both are waiting now
    fanout.publish([row(1)])
    done, pending = await asyncio.wait(waiting, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert done == {waiting[0]} and pending == {waiting[1]}
    fanout.wake_all()
    await asyncio.wait_for(waiting[1], 5)


async def test_a_queue_whose_comment_line_is_due_is_woken_and_no_other():
    fanout = Fanout()
    due, idle = fanout.open("P01", False, 1 << 20), fanout.open("P01", False, 1 << 20)
    due.due = time.monotonic() + 0.05
    idle.due = time.monotonic() + 3600
    waiting = [asyncio.create_task(q.wait()) for q in (due, idle)]
    checking = asyncio.create_task(fanout.wake_due())
    try:
        done, pending = await asyncio.wait(waiting, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert done == {waiting[0]} and pending == {waiting[1]}
    finally:
        for task in (checking, *waiting):
            task.cancel()
        await asyncio.gather(checking, *waiting, return_exceptions=True)


async def test_a_queue_already_due_does_not_wait():
    queue = ClientQueue(("P01", False), limit=1 << 20)
    queue.due = time.monotonic()
    await asyncio.wait_for(queue.wait(), 5)
