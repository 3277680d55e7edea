"""The image processes end with their worker, leaving nothing for the interpreter's exit to race."""

from __future__ import annotations

import time

from darkroom.worker.pool import end_pool, open_pool


async def test_ending_the_pool_stops_its_processes_and_its_manager_thread() -> None:
    pool = open_pool(2)
    running = pool.submit(time.sleep, 60)  # image work a stop cuts short
    processes = list(pool._processes.values())
    manager = pool._executor_manager_thread
    assert manager is not None and manager.is_alive()

    await end_pool(pool)

    # A manager thread still running at exit writes to a closed wake-up pipe: "Exception ignored in
    # <module 'threading'>" on the worker's stderr, a line that is not a log line.
    assert not manager.is_alive()
    assert [p.exitcode for p in processes if p.exitcode is None] == []
    assert running.done()
