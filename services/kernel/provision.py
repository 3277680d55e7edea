"""Every stream, consumer and bucket Darkroom uses, with its configuration: made or checked here only.

- the stream `DARKROOM` (made by whichever service starts first, checked by the others);
- the lanes' durable pull consumers, shared by every worker;
- each orchestrator's durable push consumer of what may call for a decision;
- the ephemeral consumers that read the log once (replay, audit, recovery) or follow it (projector);
- the KV bucket of project file leases.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable, TypeVar

from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.manager import JetStreamManager

from . import subjects
from .config import Config
from .retention import StreamSize, parse_age, parse_size, warnings
from .subjects import ALL, STREAM, lane_consumer, lane_filter
from .vocabulary import LANES

log = logging.getLogger("darkroom.bus")

# What an orchestrator consumes: only what may call for a decision. What it stores itself it folds in
# from its own acknowledgements, and another orchestrator's writes show up as a CAS conflict.
ORCHESTRATOR_FILTERS = [
    subjects.any_task("requested"),
    subjects.any_task("cancel_requested"),
    subjects.any_job("completed"),
    subjects.any_job("failed"),
    subjects.any_job("canceled"),
]
LEASE_BUCKET = "darkroom_leases"
LEASE_TTL_S = 30.0  # a dead worker's lease ends this long after its last refresh
NOT_ENOUGH_PEERS = (10005, 10074, 10023)  # clustering required, replicas > 1 unsupported, insufficient resources
PLACEMENT_WAIT_S = 30.0  # how long a placement refused for an offline peer is asked again

T = TypeVar("T")


class ProvisionError(Exception):
    """The stream or a consumer exists with a configuration Darkroom cannot use."""


def stream_config(config: Config) -> api.StreamConfig:
    return api.StreamConfig(
        name=STREAM,
        subjects=[ALL],
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        num_replicas=config.nats.replicas,
        duplicate_window=config.nats.duplicate_window_s,
        allow_direct=True,
        discard=api.DiscardPolicy.OLD,
        max_bytes=parse_size(config.nats.max_bytes) or -1,
        max_age=parse_age(config.nats.max_age),
    )


def lane_config(lane: str, config: Config, start_seq: int | None) -> api.ConsumerConfig:
    name = lane_consumer(lane)
    return api.ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=lane_filter(lane),
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=config.pipeline.ack_wait_s,
        # Never dropped: the worker fails a job past max_attempts, and until it could say so (its task's
        # history unreadable, its report not stored) the job comes again, or its task would wait for ever.
        max_deliver=-1,
        max_ack_pending=10_000,
        num_replicas=config.nats.replicas,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE if start_seq else api.DeliverPolicy.ALL,
        opt_start_seq=start_seq,
    )


@dataclass
class Provisioned:
    recreated_lanes: dict[str, int] = field(default_factory=dict)


async def provision(js: JetStreamContext, config: Config) -> Provisioned:
    """Create or check the stream, the two lane consumers and the lease bucket, bringing their
    replicas and the stream's limits to the configuration's; safe to run from every service."""
    wanted = stream_config(config)
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        info = await _scaled(lambda: js.add_stream(wanted), config, f"stream {STREAM}")
    else:
        have = info.config
        if have.subjects != wanted.subjects or have.storage != wanted.storage or have.retention != wanted.retention:
            raise ProvisionError(
                f"stream {STREAM} exists with subjects={have.subjects} storage={have.storage} "
                f"retention={have.retention}; Darkroom needs {wanted.subjects}, file storage, limits retention"
            )
        if _stream_differs(have, wanted):
            if have.num_replicas != wanted.num_replicas:
                log.warning(
                    "stream %s: replicas %s -> %d (nats.replicas)", STREAM, have.num_replicas, wanted.num_replicas
                )
            info = await _scaled(lambda: js.update_stream(wanted), config, f"stream {STREAM}")
            if have.num_replicas != wanted.num_replicas:
                info = await _replicated(lambda: js.stream_info(STREAM), f"stream {STREAM}", config.nats.replicas)
    size = size_of(info.state)
    for line in warnings(parse_size(config.nats.max_bytes), parse_age(config.nats.max_age), size):
        log.warning("%s", line)
    result = Provisioned()
    for lane in LANES:
        result_seq = await _ensure_lane(js, config, lane, size.last_seq)
        if result_seq is not None:
            result.recreated_lanes[lane] = result_seq
    await _scaled(lambda: lease_bucket(js, config.nats.replicas), config, f"the lease bucket {LEASE_BUCKET}")
    return result


def _stream_differs(have: api.StreamConfig, wanted: api.StreamConfig) -> bool:
    return (
        not have.allow_direct
        or have.duplicate_window != wanted.duplicate_window
        or (have.num_replicas or 1) != wanted.num_replicas
        or (have.max_bytes or -1) != wanted.max_bytes
        or (have.max_age or 0) != wanted.max_age
    )


Info = TypeVar("Info", api.StreamInfo, api.ConsumerInfo)


async def _replicated(look: Callable[[], Awaitable[Info]], what: str, replicas: int, timeout: float = 30.0) -> Info:
    """The info of a stream or consumer just scaled up, once all its replicas are placed and current:
    until then, a node lost takes the group's quorum with it (its new peers have nothing to elect)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        info = await look()
        peers = (info.cluster and info.cluster.replicas) or []
        placed = 1 + len(peers) >= replicas
        if placed and all(peer.current for peer in peers):
            return info
        if asyncio.get_running_loop().time() > deadline:
            if placed:  # placed and catching up: it serves, and survives a node lost once caught up
                log.warning("%s: replicas still catching up after %gs", what, timeout)
                return info
            raise ProvisionError(
                f"{what} did not reach {replicas} replicas within {timeout:g}s; "
                f"check the cluster (nats-server logs, /jsz)"
            )
        await asyncio.sleep(0.1)


async def _scaled(change: Callable[[], Awaitable[T]], config: Config, what: str) -> T:
    """`change` (a create or update), with a refusal to replicate said as the setting to fix. A refusal
    because a peer is offline (a node restarting, or not yet seen by the others) is waited out."""
    deadline = asyncio.get_running_loop().time() + PLACEMENT_WAIT_S
    while True:
        try:
            return await change()
        except APIError as exc:
            why = exc.description or ""
            if config.nats.replicas == 1 or ("replica" not in why.lower() and exc.err_code not in NOT_ENOUGH_PEERS):
                raise
        if "offline" not in why or asyncio.get_running_loop().time() > deadline:
            break
        log.warning("%s: %s; waiting for the cluster's peers", what, why)
        await asyncio.sleep(1.0)
    if "offline" in why:
        raise ProvisionError(
            f"{what} cannot have {config.nats.replicas} replicas: {why} for {PLACEMENT_WAIT_S:g}s; "
            f"check the cluster's nodes (nats-server logs, /jsz)"
        )
    raise ProvisionError(
        f"{what} cannot have {config.nats.replicas} replicas ({why}): nats.replicas must not "
        f"exceed the JetStream servers of the cluster (a single server takes 1); set nats.replicas "
        f"to that, or add servers"
    )


async def stream_size(jsm: JetStreamManager) -> StreamSize:
    """The stream's size now, for metrics and start-up checks."""
    return size_of((await jsm.stream_info(STREAM)).state)


def size_of(state: api.StreamState | None) -> StreamSize:
    if state is None:
        return StreamSize(0, 0, 0, 0)
    return StreamSize(messages=state.messages, bytes=state.bytes, first_seq=state.first_seq, last_seq=state.last_seq)


async def _ensure_lane(jsm: JetStreamManager, config: Config, lane: str, last_seq: int) -> int | None:
    name = lane_consumer(lane)
    have: api.ConsumerConfig | None
    try:
        have = (await jsm.consumer_info(STREAM, name)).config
    except NotFoundError:
        have = None
    if have is not None and have.filter_subject == f"{subjects.DISPATCH}{lane}.>":
        # Made before CONTRACT §7.1, for the copies: made again for the requests themselves, from the
        # log's end; the orchestrator stores again the requests still open before it.
        await jsm.delete_consumer(STREAM, name)
        log.warning(
            "lane consumer %s took copies on %s%s.>; made again for the requests", name, subjects.DISPATCH, lane
        )
        have = None
    if have is None:
        # Never from the beginning: that would run every old job again.
        start = last_seq + 1 if last_seq else None
        await jsm.add_consumer(STREAM, lane_config(lane, config, start))
        if start:
            log.warning("lane consumer %s was missing; recreated to start at sequence %d", name, start)
        return start
    wanted = lane_config(lane, config, have.opt_start_seq)
    if have.filter_subject != wanted.filter_subject or have.ack_policy != wanted.ack_policy:
        raise ProvisionError(
            f"consumer {name} exists with filter {have.filter_subject!r} and ack policy {have.ack_policy}; "
            f"Darkroom needs {wanted.filter_subject!r} with explicit acks"
        )
    if (
        have.ack_wait != wanted.ack_wait
        or have.max_deliver != wanted.max_deliver
        or (have.num_replicas or 1) != wanted.num_replicas
    ):
        wanted.deliver_policy = have.deliver_policy
        # Same name: an update of the mutable fields.
        await _scaled(lambda: jsm.add_consumer(STREAM, wanted), config, f"consumer {name}")
        if (have.num_replicas or 1) != wanted.num_replicas:
            await _replicated(lambda: jsm.consumer_info(STREAM, name), f"consumer {name}", config.nats.replicas)
    return None


async def recreated_lanes(jsm: JetStreamManager) -> dict[str, int]:
    """The sequence each lane consumer recreated after the fact starts at (lanes made with the stream: none)."""
    starts: dict[str, int] = {}
    for lane in LANES:
        info = await jsm.consumer_info(STREAM, lane_consumer(lane))
        if info.config.deliver_policy == api.DeliverPolicy.BY_START_SEQUENCE and info.config.opt_start_seq:
            starts[lane] = info.config.opt_start_seq
    return starts


def orchestrator_config(name: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=name,
        filter_subjects=ORCHESTRATOR_FILTERS,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=30,
        # Never dropped: a message not handled yet is a task waiting on a decision (it comes again with backoff).
        max_deliver=-1,
        max_ack_pending=2000,
    )


async def orchestrator_consumer(jsm: JetStreamManager, name: str) -> api.ConsumerConfig:
    """The orchestrator's durable consumer as its subscription makes it (or finds it), brought up to date in
    place when an older Darkroom made it with other filters, or with deliveries that end."""
    config = orchestrator_config(name)
    try:
        info = await jsm.consumer_info(STREAM, name)
    except NotFoundError:
        return config
    have = info.config
    filters = have.filter_subjects or [have.filter_subject]
    if filters != ORCHESTRATOR_FILTERS or have.max_deliver != config.max_deliver:
        config.deliver_subject = have.deliver_subject
        await jsm.add_consumer(STREAM, config)
    return config


def read_config(start_seq: int, filters: list[str] | None = None) -> api.ConsumerConfig:
    """An ephemeral consumer that reads the log once, from `start_seq`."""
    config = api.ConsumerConfig(
        ack_policy=api.AckPolicy.NONE,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=max(1, start_seq),
        mem_storage=True,
        inactive_threshold=30.0,
        max_ack_pending=-1,
    )
    if filters and len(filters) == 1:
        config.filter_subject = filters[0]
    elif filters:
        config.filter_subjects = list(filters)
    return config


def follow_config(name: str, inbox: str, subject: str, start_seq: int, heartbeat_s: float) -> api.ConsumerConfig:
    """An ordered push consumer (ephemeral, in memory, flow-controlled, with idle heartbeats) from `start_seq`."""
    return api.ConsumerConfig(
        name=name,
        deliver_subject=inbox,
        filter_subject=subject,
        deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_policy=api.AckPolicy.NONE,
        max_deliver=1,
        flow_control=True,
        idle_heartbeat=heartbeat_s,
        mem_storage=True,
        num_replicas=1,
    )


async def lease_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """The bucket, made on first use, its replicas brought to `replicas`."""
    try:
        kv = await js.key_value(LEASE_BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(
            api.KeyValueConfig(bucket=LEASE_BUCKET, ttl=LEASE_TTL_S, history=1, replicas=replicas)
        )
    config = (await js.stream_info(f"KV_{LEASE_BUCKET}")).config
    if (config.num_replicas or 1) != replicas:
        log.warning("lease bucket %s: replicas %s -> %d (nats.replicas)", LEASE_BUCKET, config.num_replicas, replicas)
        config.num_replicas = replicas
        await js.update_stream(config)
        await _replicated(lambda: js.stream_info(f"KV_{LEASE_BUCKET}"), f"lease bucket {LEASE_BUCKET}", replicas)
    return kv
