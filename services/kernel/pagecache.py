"""Originals and the page cache. A shoot's originals are read once, to make their derivatives; kept in
the page cache they would crowd out what is read again (thumbnails, previews, the read model), and
every page a large upload takes new costs the kernel more than one given back and taken again (on a
virtual machine, a fault in its host for each page it never touched before: 2-3 ms per MB here)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("darkroom.pagecache")

_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", None)  # None where there is no posix_fadvise (macOS)


def let_go(path: Path) -> None:
    """An original whose derivatives are made: on the disk, and out of the page cache. Never raises:
    what it saves is memory, and a failure here is no failure of the photo's derivatives."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # trashed or replaced meanwhile: nothing of it to drop
        return
    except OSError as exc:
        log.warning("%s stays in the page cache: %s", path, exc)
        return
    try:
        try:
            os.fdatasync(fd)  # pages still dirty or under writeback cannot be dropped
        except OSError as exc:  # EIO: the disk did not take the file
            log.error("%s may not be on the disk: %s", path, exc)
            return
        if _DONTNEED is not None:
            try:
                os.posix_fadvise(fd, 0, 0, _DONTNEED)
            except OSError as exc:  # a file system that takes no advice
                log.warning("%s stays in the page cache: %s", path, exc)
    finally:
        os.close(fd)
