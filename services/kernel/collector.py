"""The cyclic garbage collector, set for processes that make many short-lived objects.

CPython collects its youngest objects every 700 net allocations; a service handling thousands of
messages a second then spends a large share of its time there (up to a third of `up`'s CPU under
load), rescanning objects that die by reference counting anyway. Each rescan also walks what the
process made while starting, which lives as long as the process.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

# Net allocations between collections of the youngest objects: a few MB of garbage cycles at most.
YOUNG = 20_000


def settle() -> None:
    """From now on: what exists now is never scanned again, and the young are collected less often."""
    gc.freeze()
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG), *older)


@contextmanager
def spared() -> Iterator[None]:
    """`settle` for a while (a rebuild), then as before."""
    threshold = gc.get_threshold()
    settle()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
