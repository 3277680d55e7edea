"""The image processes: a spawned process pool that dies with its worker and ends with it."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from ..kernel.supervise import retrieved
from .imaging import init_worker

# How long ending the pool may wait for its manager thread once its processes are terminated.
END_S = 5.0


def open_pool(workers: int) -> ProcessPoolExecutor:
    # The image processes die with this one, even when it is killed while they start.
    pool = ProcessPoolExecutor(
        workers, mp_context=get_context("spawn"), initializer=init_worker, initargs=(os.getpid(),)
    )
    # Starting image processes takes a moment: do it now, not in the first upload's time.
    loop = asyncio.get_running_loop()
    for _ in range(workers):
        # Only a head start: one that a stop cuts short says nothing (the pool is gone).
        loop.run_in_executor(pool, init_worker).add_done_callback(retrieved)
    return pool


async def end_pool(pool: ProcessPoolExecutor) -> None:
    """End image work still running (its jobs will be redelivered) and wait, off the loop, until the
    pool's manager thread has gone: one left running races the interpreter's exit hook for the pool's
    wake-up pipe and prints a traceback on the way out (CPython 3.11)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown forgets it
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    if manager is not None:
        await asyncio.wait_for(asyncio.to_thread(manager.join), END_S)
