"""How many of a file's pages the page cache holds (mincore(2) on a mapping of it): what tests of
Darkroom's page cache use, reading nothing of the file."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)


def cached_pages(path: Path) -> int:
    size = os.path.getsize(path)
    if size == 0:
        return 0
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        view = (ctypes.c_char * size).from_buffer(mapped)  # its address; no page is touched
        try:
            pages = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
            if _libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), pages) != 0:
                raise OSError(ctypes.get_errno(), f"mincore of {path}")
            return sum(page & 1 for page in pages)
        finally:
            del view  # the mapping cannot close while exported
