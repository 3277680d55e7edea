"""Follow Darkroom's event log from a stream sequence, using nothing but nats-py.

    python examples/follow_log.py nats://integrator:PASSWORD@127.0.0.1:4222 --subject 'darkroom.task.>' --from-seq 1

Prints one JSON event a line, with its stream sequence. Store the last sequence you handled and
pass it + 1 next time: you resume exactly where you stopped.

It reads through a consumer of its own (`--consumer`, a name starting `integrator_`) and gets its
answers on an inbox prefix of its own (`--inbox-prefix`): what the integrator's credentials in
deploy/nats-accounts.conf allow, and nothing of Darkroom's.
"""

import argparse
import asyncio
import json

import nats
from nats import errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

STREAM = "DARKROOM"


async def read_from(js, consumer: str, subject: str, seq: int):
    """A pull subscription to a fresh consumer that starts at stream sequence `seq`; one left by an
    earlier run of the same name is replaced. The server removes it a minute after the last pull."""
    try:
        await js.delete_consumer(STREAM, consumer)
    except NotFoundError:
        pass
    await js.add_consumer(
        STREAM,
        ConsumerConfig(
            name=consumer,
            filter_subject=subject,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=seq,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    return await js.pull_subscribe_bind(consumer, stream=STREAM)


async def follow(url: str, subject: str, from_seq: int, limit: int | None, consumer: str, inbox_prefix: str) -> None:
    nc = await nats.connect(url, inbox_prefix=inbox_prefix)
    js = nc.jetstream()
    seen, next_seq, delivered = 0, from_seq, 0
    sub = await read_from(js, consumer, subject, next_seq)
    try:
        while limit is None or seen < limit:
            try:
                batch = await sub.fetch(100, timeout=5)
            except errors.TimeoutError:  # nothing new yet
                continue
            for msg in batch:
                meta = msg.metadata
                if meta.sequence.consumer != delivered + 1:
                    # A message went missing on the way: start again after the last one handled.
                    await sub.unsubscribe()
                    sub, delivered = await read_from(js, consumer, subject, next_seq), 0
                    break
                delivered, next_seq = meta.sequence.consumer, meta.sequence.stream + 1
                print(
                    json.dumps({"seq": meta.sequence.stream, "subject": msg.subject, **json.loads(msg.data)}),
                    flush=True,
                )
                seen += 1
                if limit is not None and seen >= limit:
                    break
    finally:
        try:
            await js.delete_consumer(STREAM, consumer)
        finally:
            await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--subject", default="darkroom.>")
    parser.add_argument("--from-seq", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many events")
    parser.add_argument("--consumer", default="integrator_follow_log", help="the name of this reader's consumer")
    parser.add_argument("--inbox-prefix", default="_INBOX_integrator", help="where the server's answers come")
    args = parser.parse_args()
    asyncio.run(follow(args.url, args.subject, args.from_seq, args.limit, args.consumer, args.inbox_prefix))


if __name__ == "__main__":
    main()
