"""Child processes that a rebuild shares its work with, and the frames it exchanges with them over
pipes: 4 bytes big-endian length, then that many bytes. Frames are read straight into a buffer of
their own size (asyncio's StreamReader grows, copies and trims one: dear on a rebuild)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
from types import ModuleType
from typing import Callable

PIPE_BYTES = 1 << 20  # Linux's default most for a pipe: either side runs on while the other is busy


def pipe() -> tuple[int, int]:
    """A pipe (read end, write end) as large as the system allows an unprivileged process."""
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (AttributeError, OSError):  # not Linux, or a lower limit: the default size still works
        pass
    return read_end, write_end


async def spawn(
    module: ModuleType, *args: str, stdin: int | None = None, stdout: int | None = None
) -> asyncio.subprocess.Process:
    """`python -m module args…` in this interpreter (which has Darkroom installed), its stderr kept for
    the reason it fails."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module.__name__, *args, stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.PIPE
    )


def _resolve(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


class _PipeEnd:
    def __init__(self, fd: int, watch: Callable, unwatch: Callable) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._watch, self._unwatch = watch, unwatch  # the event loop's add_/remove_reader or _writer

    async def _io(self, call: Callable[..., int], *args) -> int:
        """`call(fd, *args)`, once the event loop says the pipe is ready whenever it was not."""
        while True:
            try:
                return call(self.fd, *args)
            except BlockingIOError:
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._watch(self.fd, _resolve, ready)
                try:
                    await ready
                finally:
                    self._unwatch(self.fd)


class FrameReader(_PipeEnd):
    def __init__(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(fd, loop.add_reader, loop.remove_reader)

    async def frame(self) -> bytearray | None:
        """The next frame's bytes; None if the pipe ended first (the writer is gone)."""
        head = await self._exactly(4)
        return None if head is None else await self._exactly(int.from_bytes(head, "big"))

    async def _exactly(self, size: int) -> bytearray | None:
        buf = bytearray(size)
        view, got = memoryview(buf), 0
        while got < size:
            n = await self._io(os.readv, [view[got:]])
            if n == 0:
                return None
            got += n
        return buf


class FrameWriter(_PipeEnd):
    def __init__(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(fd, loop.add_writer, loop.remove_writer)

    async def write(self, frame: bytes) -> None:
        """Writes one frame; BrokenPipeError if the reader is gone."""
        for part in (len(frame).to_bytes(4, "big"), frame):
            view = memoryview(part)
            while view:
                view = view[await self._io(os.write, view) :]

    def close(self) -> None:
        """The end of the pipe for the reader (again: nothing)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
