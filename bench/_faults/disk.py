"""A disk that fills and frees: the data folder's writes fail (ENOSPC), then succeed again.

Where the suite may mount (root with CAP_SYS_ADMIN), the data folder is a small tmpfs in a mount
namespace of the suite's own, so the mount goes with the suite and nothing outside sees it; it is
filled to the last byte by a ballast file, kept full, then the ballast goes. Elsewhere the projector
alone gets RLIMIT_FSIZE for the while (its SQLite writes fail with EFBIG): weaker, and said so."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import resource
import shutil
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PAGE = 4096
TOP_UP_S = 0.2  # what the system frees meanwhile is filled again this soon


class SmallFilesystem:
    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.ballast = path / ".faults-ballast"
        self._keeper: asyncio.Task | None = None
        self.how = f"the data folder on a {size_mb} MB tmpfs, filled to the last byte (ENOSPC)"

    @classmethod
    def mount(cls, path: Path, size_mb: int) -> SmallFilesystem | None:
        """Call before any thread starts (unshare applies to the calling thread's process)."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            path.mkdir(parents=True, exist_ok=True)
            if libc.unshare(CLONE_NEWNS) != 0:
                return None
            # Private from here on: the mount below never shows outside the suite's processes.
            if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
                return None
            options = f"size={size_mb}m,mode=0700".encode()
            if libc.mount(b"darkroom-faults", os.fsencode(path), b"tmpfs", 0, options) != 0:
                return None
        except (OSError, AttributeError):
            return None
        return cls(path, size_mb)

    def used_mb(self) -> float:
        usage = shutil.disk_usage(self.path)
        return (usage.total - usage.free) / (1 << 20)

    def _top_up(self) -> None:
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            free = shutil.disk_usage(self.path).free
            if free > PAGE:
                try:
                    os.posix_fallocate(fd, os.fstat(fd).st_size, free)
                except OSError:
                    pass
            page = bytes(PAGE)
            while True:  # the last pages, until the kernel says so
                try:
                    os.write(fd, page)
                except OSError as exc:
                    if exc.errno == errno.ENOSPC:
                        return
                    raise
        finally:
            os.close(fd)

    async def _keep_full(self) -> None:
        while True:
            await asyncio.to_thread(self._top_up)
            await asyncio.sleep(TOP_UP_S)

    def fill(self) -> None:
        self._top_up()
        self._keeper = asyncio.create_task(self._keep_full(), name="disk full")

    async def free(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        self.ballast.unlink(missing_ok=True)

    def started(self, pid: int) -> None:
        """A full filesystem needs nothing per process."""

    def release(self, keep: Path | None) -> None:
        """Unmount (the files go with the tmpfs), keeping a copy in `keep` if given."""
        self.ballast.unlink(missing_ok=True)
        if keep is not None:
            shutil.copytree(self.path, keep, dirs_exist_ok=True)
        ctypes.CDLL(None, use_errno=True).umount2(os.fsencode(self.path), MNT_DETACH)


class FileSizeLimit:
    how = "RLIMIT_FSIZE on the projector (no privilege to mount a small filesystem; its writes fail with EFBIG)"

    def __init__(self) -> None:
        self.pid: int | None = None
        self.full = False

    def used_mb(self) -> float:
        return 0.0

    def _limit(self, soft: int) -> None:
        if self.pid is None:
            return
        try:
            hard = resource.prlimit(self.pid, resource.RLIMIT_FSIZE)[1]
            resource.prlimit(self.pid, resource.RLIMIT_FSIZE, (soft if soft >= 0 else hard, hard))
        except (ProcessLookupError, PermissionError):
            pass

    def fill(self) -> None:
        self.full = True
        self._limit(1)

    async def free(self) -> None:
        self.full = False
        self._limit(-1)

    def started(self, pid: int) -> None:
        """The projector (re)started: while the disk is full, it finds it full."""
        self.pid = pid
        if self.full:
            self._limit(1)

    def release(self, keep: Path | None) -> None:
        """The data folder is an ordinary one: nothing to undo or copy."""


Disk = SmallFilesystem | FileSizeLimit
