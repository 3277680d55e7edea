"""A multipart/form-data body read part by part, each part's content handed on as it arrives.

aiohttp's part reader joins what arrives into chunks and copies each chunk again to look for the
boundary: a large share of what receiving a camera file costs. Here every piece of the
request is searched where it lies and handed on as a view of itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from aiohttp import StreamReader
from aiohttp.helpers import parse_mimetype
from aiohttp.multipart import content_disposition_filename, parse_content_disposition


class MalformedBody(ValueError):
    pass


@dataclass
class Part:
    name: str | None  # the form field
    filename: str | None
    content_type: str


class Parts:
    """The parts of one request body, in order; a part's content is read with `content()` before
    the next part is asked for, or skipped by asking for it."""

    def __init__(self, content: StreamReader, content_type: str) -> None:
        boundary = parse_mimetype(content_type).parameters.get("boundary")
        if not boundary:
            raise MalformedBody("multipart body without a boundary")
        self._stream = content
        self._first = b"--" + boundary.encode()
        self._delimiter = b"\r\n" + self._first
        self._pending = b""  # read from the request, not handed on yet
        self._unread: AsyncIterator[memoryview] | None = None  # the current part's content
        self._started = self._ended = False

    async def next(self) -> Part | None:
        """The next part, its headers read; None after the last one."""
        if self._unread is not None:
            async for _ in self._unread:  # what the caller did not read is skipped
                pass
            self._unread = None
        if not self._started:
            self._started = True
            await self._skip_preamble()
        elif (after := await self._take(2)) == b"--":
            self._ended = True
        elif after != b"\r\n":
            await self._line()  # padding after the delimiter, to the end of its line
        if self._ended:
            return None
        headers = {}
        while line := (await self._line()).rstrip(b"\r\n"):
            key, _, value = line.decode("utf-8", "surrogateescape").partition(":")
            headers[key.strip().lower()] = value.strip()
        _, params = parse_content_disposition(headers.get("content-disposition"))
        self._unread = self._content()
        return Part(
            content_disposition_filename(params, "name"),
            content_disposition_filename(params, "filename"),
            headers.get("content-type", "text/plain"),
        )

    def content(self) -> AsyncIterator[memoryview]:
        """The current part's bytes, in pieces as they arrived: views of bytes never reused, safe to keep."""
        if self._unread is None:
            raise RuntimeError("no part to read")
        return self._unread

    async def _content(self) -> AsyncIterator[memoryview]:
        delimiter = self._delimiter
        keep = len(delimiter) - 1
        tail = b""  # the end of the last piece, held back: the delimiter may begin in it
        while True:
            piece = self._pending or await self._piece()
            self._pending = b""
            if not piece:
                raise MalformedBody("multipart body ends inside a part")
            if len(piece) < 2 * keep:  # a sliver: cheaper joined to the tail
                piece, tail = tail + piece, b""
            joined = tail + piece[:keep]
            at = joined.find(delimiter)
            if 0 <= at < len(tail):  # it begins in the tail
                self._pending = joined[at + len(delimiter) :] + piece[keep:]
                if at:
                    yield memoryview(tail)[:at]
                return
            if tail:
                yield memoryview(tail)
            at = piece.find(delimiter)
            if at >= 0:
                self._pending = piece[at + len(delimiter) :]
                if at:
                    yield memoryview(piece)[:at]
                return
            if len(piece) > keep:
                yield memoryview(piece)[: len(piece) - keep]
            tail = piece[max(0, len(piece) - keep) :]  # a piece shorter than keep is all tail

    async def _skip_preamble(self) -> None:
        while (line := await self._line()).rstrip() != self._first:
            if line.rstrip() == self._first + b"--":
                self._ended = True
                return

    async def _line(self) -> bytes:
        while (end := self._pending.find(b"\n")) < 0:
            self._pending += await self._more()
        line, self._pending = self._pending[: end + 1], self._pending[end + 1 :]
        return line

    async def _take(self, size: int) -> bytes:
        while len(self._pending) < size:
            self._pending += await self._more()
        taken, self._pending = self._pending[:size], self._pending[size:]
        return taken

    async def _more(self) -> bytes:
        more = await self._piece()
        if not more:
            raise MalformedBody("multipart body ends early")
        return more

    async def _piece(self) -> bytes:
        """The next piece as it arrived, b"" at the end: readany would join what is buffered, a copy."""
        while True:
            piece, chunk_end = await self._stream.readchunk()
            if piece or not chunk_end:  # (b"", True) only marks where a chunk of a chunked body ended
                return piece
