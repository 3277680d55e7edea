#!/usr/bin/env python3
"""What the Operations page and `GET /api/lanes` cost on a big read model.

    python bench/operations.py             # 300k jobs; --jobs N for another size

1. Writes a read model (the projector's own schema and rows) with N jobs over 8 job types and both
   lanes, most of them completed, a few thousand queued, running, retrying or failed, and N/3
   tasks of which some failed (half of those retried).
2. Times the job counts per lane, type and state (one query over the partial index that holds only
   the counted states), the failed tasks not yet retried, and the same counts with the index dropped
   (what they would cost without it). Best of 20 runs each.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from darkroom.kernel.events import Step
from darkroom.projector import store
from darkroom.projector.queries import ReadModel
from darkroom.projector.store import JOBS, TASKS
from darkroom.projector.views import JobView, TaskView

TYPES = (
    "upload_postprocess",
    "manifest_check",
    "folder_check",
    "file_removal",
    "manifest_cleaning",
    "trash_maintenance",
    "derivatives_check",
    "regenerate",
)
BUDGET_MS = 50.0  # a page that refetches the lanes on every burst of job updates must stay cheap


def _state(rng: random.Random) -> str:
    roll = rng.random()
    return (
        "queued"
        if roll < 0.01
        else "running"
        if roll < 0.012
        else "retrying"
        if roll < 0.013
        else "failed"
        if roll < 0.02
        else "canceled"
        if roll < 0.03
        else "completed"
    )


async def _fill(path: Path, jobs: int, rng: random.Random) -> None:
    db = await store.open_db(path)
    try:
        at = "2026-01-01T00:00:00.000Z"
        task_rows, job_rows = [], []
        for t in range(jobs // 3):
            status = "failed" if rng.random() < 0.02 else "completed"
            retried = f"T{t:08d}r1" if status == "failed" and rng.random() < 0.5 else None
            task_rows.append(
                TASKS.to_row(
                    TaskView(
                        id=f"T{t:08d}",
                        type="upload_postprocess",
                        label="Upload",
                        user_relevant=True,
                        source="user",
                        project_id="P",
                        folder="Shoot",
                        status=status,
                        step_index=0,
                        steps=[Step("upload_postprocess", 90)],
                        created_at=at,
                        updated_at=at,
                        finished_at=at,
                        retried_by=retried,
                    )
                )
            )
        for j in range(jobs):
            job_type = rng.choice(TYPES)
            job_rows.append(
                JOBS.to_row(
                    JobView(
                        id=f"T{j // 3:08d}-{j % 3}",
                        task_id=f"T{j // 3:08d}",
                        task_type="upload_postprocess",
                        source="user",
                        type=job_type,
                        project_id="P",
                        folder="Shoot",
                        priority=90,
                        lane="normal"
                        if job_type in ("trash_maintenance", "derivatives_check", "regenerate")
                        else "priority",
                        status=_state(rng),
                        step_index=j % 3,
                        created_at=at,
                        updated_at=at,
                    )
                )
            )
        await db.executemany(TASKS.upsert(), task_rows)
        await db.executemany(JOBS.upsert(), job_rows)
        await db.commit()
    finally:
        await db.close()


async def _best(call, runs: int = 20) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        await call()
        best = min(best, time.perf_counter() - began)
    return best * 1000


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "read-model.sqlite"
        began = time.perf_counter()
        await _fill(path, args.jobs, random.Random(17))
        print(
            f"read model: {args.jobs:,} jobs, {args.jobs // 3:,} tasks, written in {time.perf_counter() - began:.1f}s"
        )
        read = await ReadModel.open(path)
        try:
            counts = await read.job_counts()
            print(f"  {len(counts)} (lane, type, state) counts, {sum(n for *_, n in counts):,} jobs counted")
            indexed = await _best(read.job_counts)
            unretried = await _best(lambda: read.tasks(status="failed", retried=False, show_maintenance=True))
            await read.db.execute("DROP INDEX jobs_counted")
            scanned = await _best(read.job_counts, runs=5)
        finally:
            await read.close()
    print(f"job counts per lane, type and state: {indexed:.2f} ms (without the partial index: {scanned:.1f} ms)")
    print(f"failed tasks not yet retried (100 newest): {unretried:.2f} ms")
    return 0 if indexed <= BUDGET_MS else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300_000)
    sys.exit(asyncio.run(run(parser.parse_args())))
