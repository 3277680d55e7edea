#!/usr/bin/env python3
"""What a Prometheus scrape of `darkroom up`'s /metrics costs on a big history.

    python bench/metrics_scrape.py            # 300k jobs; --jobs N for another size

1. Writes a read model with N jobs (bench/operations.py's mix: most completed, a few thousand
   queued, running, retrying or failed), each finished one with its start and end times.
2. Starts all four services on it in one process (as `darkroom up`), with a real nats-server.
3. Times GET /metrics over HTTP (best and median of --runs), and what the code before
   prometheus_client did on every scrape on top of that: every finished job's duration read from the
   jobs table and bucketed into a histogram.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import bench_main
from operations import _fill

from darkroom.kernel.config import load_config
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.natsd import NatsServer
from darkroom.projector.queries import ReadModel
from darkroom.projector.store import read_model_path
from darkroom.runtime import Runtime
from darkroom.worker.handlers import BUILTIN

BUDGET_MS = 50.0  # a scrape every 15 s must stay far below what it observes
OLD_DURATIONS = (
    "SELECT type, (julianday(finished_at) - julianday(started_at)) * 86400.0 FROM jobs "
    "WHERE finished_at IS NOT NULL AND started_at IS NOT NULL"
)
OLD_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600)


async def _times(call, runs: int) -> tuple[float, float]:
    """Best and median, in milliseconds."""
    spent = []
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - began) * 1000)
    return min(spent), statistics.median(spent)


async def _old_durations(read: ReadModel) -> None:
    """The histogram the api rebuilt from the whole jobs table on each scrape before."""
    async with read.db.execute(OLD_DURATIONS) as cursor:
        rows = [(row[0], max(0.0, row[1])) for row in await cursor.fetchall()]
    by_type: dict[str, list[float]] = {}
    for job_type, seconds in rows:
        by_type.setdefault(job_type, []).append(seconds)
    for values in by_type.values():
        [sum(1 for v in values if v <= bound) for bound in OLD_BUCKETS]


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        began = time.perf_counter()
        await _fill(read_model_path(data), args.jobs, random.Random(17))
        read = await ReadModel.open(read_model_path(data))
        await read.db.execute(
            "UPDATE jobs SET started_at = '2026-01-01T00:00:00.000Z', "
            "finished_at = '2026-01-01T00:00:01.500Z' WHERE status IN ('completed', 'failed', "
            "'canceled')"
        )
        await read.db.commit()
        print(f"read model: {args.jobs:,} jobs, written in {time.perf_counter() - began:.1f}s")
        old_best, old_median = await _times(lambda: _old_durations(read), max(3, args.runs // 10))
        await read.close()

        server = await NatsServer(Path(tmp) / "nats").start()
        config = load_config(
            data, environ={}, overrides={"api.port": 0, "processing.workers": 1, "maintenance.interval_s": 0}
        )
        runtime = Runtime(
            config=config, data_dir=data, nats_url=server.url, definitions=load_definitions(), job_types=BUILTIN
        )
        try:
            await runtime.start()
            async with aiohttp.ClientSession() as http:

                async def scrape() -> bytes:
                    async with http.get(f"{runtime.base_url}/metrics") as response:
                        assert response.status == 200
                        return await response.read()

                body = await scrape()
                best, median = await _times(scrape, args.runs)
        finally:
            await runtime.stop()
            await server.stop()
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    print(
        f"GET /metrics of darkroom up: best {best:.2f} ms, median {median:.2f} ms over {args.runs} scrapes "
        f"({len(body):,} bytes, {series} series)"
    )
    print(
        f"before (job durations rebuilt from the jobs table per scrape, on top of the rest): "
        f"best {old_best:.1f} ms, median {old_median:.1f} ms"
    )
    return 0 if median <= BUDGET_MS else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=50)
    sys.exit(bench_main(run, parser.parse_args()))
