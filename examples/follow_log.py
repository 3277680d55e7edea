"""Follow Darkroom's event log from a stream sequence, using nothing but nats-py.

    python examples/follow_log.py nats://127.0.0.1:4222 --subject 'darkroom.task.>' --from-seq 1

Prints one JSON event a line, with its stream sequence. Store the last sequence you handled and
pass it + 1 next time: you resume exactly where you stopped.
"""

import argparse
import asyncio
import json

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy


async def follow(url: str, subject: str, from_seq: int, limit: int | None) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    done = asyncio.Event()
    seen = 0

    async def on_event(msg) -> None:
        nonlocal seen
        event = json.loads(msg.data)
        print(json.dumps({"seq": msg.metadata.sequence.stream, "subject": msg.subject, **event}), flush=True)
        seen += 1
        if limit is not None and seen >= limit:
            done.set()

    # An ordered consumer: every message once, in order, gaps repaired by the client.
    await js.subscribe(subject, stream="DARKROOM", cb=on_event, ordered_consumer=True,
                       deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                       config=ConsumerConfig(opt_start_seq=from_seq))
    try:
        await done.wait()
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--subject", default="darkroom.>")
    parser.add_argument("--from-seq", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="stop after this many events")
    args = parser.parse_args()
    asyncio.run(follow(args.url, args.subject, args.from_seq, args.limit))


if __name__ == "__main__":
    main()
