"""A process's Prometheus metrics: one registry it is given (never the library's global one), the
families its services add, and what is read afresh at each scrape.

A scrape costs the same at any history size: counters count as work happens, and what is read at
scrape time is a handful of NATS requests and queries over small tables or partial indexes."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Awaitable, Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .bus import Bus, Counters
from .events import Event
from .provision import stream_size
from .retention import StreamSize
from .subjects import STREAM, lane_consumer
from .supervise import Loops
from .vocabulary import LANES

log = logging.getLogger("darkroom.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600)
# The outcome each stored job event counts as.
OUTCOMES = {"job.completed": "completed", "job.failed": "failed", "job.retrying": "retried", "job.canceled": "canceled"}

Families = Callable[[], Iterable[Metric]]


def new_registry() -> CollectorRegistry:
    """A registry of this process's own, with the process, Python and garbage-collector metrics."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class Gathered:
    """Families read from state the process keeps in memory, when scraped."""

    def __init__(self, families: Families) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families()


class Scraped:
    """Families that need a NATS request or a query: `refresh` reads them before each scrape. When
    that fails (NATS away) the families are there without samples, never with stale ones."""

    def __init__(self, read: Callable[[], Awaitable[list[Metric]]], empty: Families) -> None:
        self._read = read
        self._empty = empty
        self._families: list[Metric] = list(empty())

    async def refresh(self) -> None:
        try:
            self._families = await self._read()
        except Exception as exc:  # metrics still answer while NATS is away
            log.debug("metrics: %s", exc)
            self._families = list(self._empty())

    def collect(self) -> Iterable[Metric]:
        return self._families


class Metrics:
    """What `/metrics` answers for this process (and for the one `beside` it, as one command's)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._scraped: list[Scraped] = []
        self._beside: Callable[[], Awaitable[bytes | None]] | None = None

    def beside(self, read: Callable[[], Awaitable[bytes | None]]) -> None:
        """Another process of the same command: its exposition (None while it does not answer) joins this one's."""
        self._beside = read

    def gathered(self, families: Families) -> None:
        self.registry.register(Gathered(families))

    def scraped(self, read: Callable[[], Awaitable[list[Metric]]], empty: Families) -> None:
        scraped = Scraped(read, empty)
        self._scraped.append(scraped)
        self.registry.register(scraped)

    async def exposition(self) -> bytes:
        await asyncio.gather(*(scraped.refresh() for scraped in self._scraped))
        own = generate_latest(self.registry)
        other = await self._beside() if self._beside is not None else None
        if not other:
            return own
        joined = CollectorRegistry()
        joined.register(Gathered(lambda: joined_families(_parsed(own), _parsed(other))))
        return generate_latest(joined)


# Gauges that add up over the processes of one command; any other gauge both have is the same
# reading (the stream, the lanes) or this process's own (its start time), and stays this one's.
ADDED_GAUGES = frozenset(
    {"darkroom_loops_down", "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds"}
)


def joined_families(own: Iterable[Metric], other: Iterable[Metric]) -> list[Metric]:
    """The families of two processes of one command as one's: a series only one has is kept; counters
    and histograms the two have are added up, and so are the ADDED_GAUGES."""
    families = {family.name: family for family in own}
    for family in other:
        mine = families.setdefault(family.name, family)
        if mine is family:
            continue
        adds = family.type in ("counter", "histogram", "summary") or family.name in ADDED_GAUGES
        index = {(s.name, tuple(sorted(s.labels.items()))): i for i, s in enumerate(mine.samples)}
        for sample in family.samples:
            at = index.get((sample.name, tuple(sorted(sample.labels.items()))))
            if at is None:
                mine.samples.append(sample)
            elif adds:
                mine.samples[at] = mine.samples[at]._replace(value=mine.samples[at].value + sample.value)
    return list(families.values())


def _parsed(exposition: bytes) -> list[Metric]:
    return list(text_string_to_metric_families(exposition.decode()))


Samples = Iterable[tuple[Sequence[str], float]]


def gauge(
    name: str, help: str, value: float | None = None, labels: Sequence[str] = (), samples: Samples = ()
) -> Metric:
    """A gauge family: one value, or a sample for each tuple of label values."""
    return _family(GaugeMetricFamily(name, help, value=value, labels=labels if value is None else None), samples)


def counter(
    name: str, help: str, value: float | None = None, labels: Sequence[str] = (), samples: Samples = ()
) -> Metric:
    """A counter family (`_total` added to its name): one value, or one for each tuple of label values."""
    return _family(CounterMetricFamily(name, help, value=value, labels=labels if value is None else None), samples)


def _family(family: GaugeMetricFamily | CounterMetricFamily, samples: Samples) -> Metric:
    for values, sample in samples:
        family.add_metric(list(values), sample)
    return family


def process_families(counters: Counters, loops: Loops, buses: dict[str, Bus]) -> Families:
    """Every process: the events it stored, its loops, each of its NATS connections."""

    def families() -> Iterable[Metric]:
        yield counter("darkroom_events_published", "Events this process stored in the log", counters.published)
        yield counter(
            "darkroom_events_duplicate",
            "Events this process published that the log already held (a retry of a stored one)",
            counters.duplicates,
        )
        yield gauge("darkroom_loops_down", "Loops of this process retrying right now", len(loops.down))
        yield gauge(
            "darkroom_gc_frozen_objects",
            "Objects made at start-up that garbage collections leave out (a full one walks only the rest)",
            gc.get_freeze_count(),
        )
        connections = sorted(buses.items())
        yield gauge(
            "darkroom_nats_connected",
            "1 while this NATS connection is up",
            labels=["connection"],
            samples=[([role], int(bus.nc.is_connected)) for role, bus in connections],
        )
        for stat, name, help in (
            ("reconnects", "darkroom_nats_reconnects", "Reconnects of this NATS connection"),
            ("in_msgs", "darkroom_nats_received_messages", "Messages received on it"),
            ("out_msgs", "darkroom_nats_sent_messages", "Messages sent on it"),
            ("in_bytes", "darkroom_nats_received_bytes", "Bytes received on it"),
            ("out_bytes", "darkroom_nats_sent_bytes", "Bytes sent on it"),
        ):
            yield counter(
                name, help, labels=["connection"], samples=[([role], bus.nc.stats[stat]) for role, bus in connections]
            )

    return families


def log_families(
    bus: Bus, checkpoint: Callable[[], int] | None
) -> tuple[Callable[[], Awaitable[list[Metric]]], Families]:
    """Every process: the stream's size and the lanes' queues, as NATS says now (one stream info and
    one consumer info per lane); with a read model, how far it is behind the log."""

    def families(size: StreamSize | None = None, lanes: dict[str, tuple[int, int]] | None = None) -> list[Metric]:
        last = size.last_seq if size is not None else None
        out: list[Metric] = [
            gauge("darkroom_stream_messages", "Events in the stream", size.messages if size is not None else None),
            gauge("darkroom_stream_bytes", "Bytes the stream stores", size.bytes if size is not None else None),
            gauge(
                "darkroom_stream_first_seq",
                "Sequence of the oldest event the stream holds",
                size.first_seq if size is not None else None,
            ),
            gauge("darkroom_stream_last_seq", "Sequence of the newest event", last),
            gauge(
                "darkroom_lane_depth",
                "Jobs waiting in a lane",
                labels=["lane"],
                samples=[([lane], depth) for lane, (depth, _) in (lanes or {}).items()],
            ),
            gauge(
                "darkroom_lane_in_flight",
                "Jobs of a lane handed to a worker and not yet acknowledged",
                labels=["lane"],
                samples=[([lane], n) for lane, (_, n) in (lanes or {}).items()],
            ),
        ]
        if checkpoint is not None:
            at = checkpoint()
            out.append(
                gauge("darkroom_projector_checkpoint", "Last event applied to the read model this process reads", at)
            )
            out.append(
                gauge(
                    "darkroom_projector_lag",
                    "Events stored but not yet applied to that read model",
                    None if last is None else max(0, last - at),
                )
            )
        return out

    async def read() -> list[Metric]:
        size = await stream_size(bus.jsm)
        lanes: dict[str, tuple[int, int]] = {}
        for lane in LANES:
            consumer = await bus.jsm.consumer_info(STREAM, lane_consumer(lane))
            lanes[lane] = (consumer.num_pending, consumer.num_ack_pending)
        return families(size, lanes)

    return read, lambda: families()


class JobMetrics:
    """What happened to jobs in this process (its worker, its orchestrator), counted as it stores each
    outcome, by job type; and how long each attempt ran, in the worker that ran it."""

    def __init__(self, registry: CollectorRegistry | None = None, job_types: Iterable[str] = ()) -> None:
        registry = registry if registry is not None else CollectorRegistry()  # a part tested alone keeps its own
        self.outcomes = {
            outcome: Counter(
                f"darkroom_jobs_{outcome}",
                f"Jobs {outcome} by this process, by job type"
                + (" (each attempt that is tried again)" if outcome == "retried" else ""),
                ["type"],
                registry=registry,
            )
            for outcome in OUTCOMES.values()
        }
        self.durations = Histogram(
            "darkroom_job_duration_seconds",
            "How long each attempt of a job ran, by job type",
            ["type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        # Each series looked up once (by event class and job type: both few), not on every job.
        self._counted: dict[tuple[type, str], Counter | None] = {}
        self._timed: dict[str, Histogram] = {}
        for job_type in job_types:  # every series there from the start, at 0
            for family in self.outcomes.values():
                family.labels(job_type)
            self.durations.labels(job_type)

    def stored(self, event: Event) -> None:
        """Counts a job event this process stored, when it is an outcome."""
        key = (type(event), getattr(event, "job_type", "") or "")
        if key not in self._counted:
            outcome = OUTCOMES.get(event.type)
            self._counted[key] = self.outcomes[outcome].labels(key[1]) if outcome is not None else None
        series = self._counted[key]
        if series is not None:
            series.inc()

    def ran(self, job_type: str, seconds: float) -> None:
        series = self._timed.get(job_type)
        if series is None:
            series = self._timed[job_type] = self.durations.labels(job_type)
        series.observe(seconds)


class HttpMetrics:
    """The API's requests by route and status, and its live SSE clients."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "darkroom_http_requests",
            "HTTP requests answered, by route (its pattern), method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.sse_clients = Gauge("darkroom_sse_clients", "Clients following /api/events now", registry=registry)
        self.sse_behind = Counter(
            "darkroom_sse_behind",
            "Times an SSE client read too slowly for its queue and was served from the outbox instead",
            registry=registry,
        )
        self._answered: dict[tuple[str, str, int], Counter] = {}  # routes, methods and statuses are few

    def answered(self, route: str, method: str, status: int) -> None:
        """Counts a request answered (each series looked up once, not through labels() on every request)."""
        key = (route, method, status)
        series = self._answered.get(key)
        if series is None:
            series = self._answered[key] = self.requests.labels(route, method, str(status))
        series.inc()
