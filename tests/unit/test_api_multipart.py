"""services/api/multipart.py: every part's name, file name and exact bytes, however the body arrives."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol

from darkroom.api.multipart import MalformedBody, Parts

BOUNDARY = "----darkroom" + "7" * 16
FILES = [
    ("a.jpg", b"\xff\xd8\xff" + os.urandom(5000)),
    ("empty.jpg", b""),
    ("crlf.jpg", b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n--" + BOUNDARY[:10].encode()),  # near misses
    ("b.png", os.urandom(300)),
]


def body(files: list[tuple[str, bytes]], preamble: bytes = b"") -> bytes:
    out = preamble
    out += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\n').encode() + b"hello\r\n"
    for name, content in files:
        out += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="photos"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    return out + f"--{BOUNDARY}--\r\n".encode()


def stream(data: bytes, piece: int) -> StreamReader:
    """The body as the request delivers it: in pieces of `piece` bytes."""
    reader = StreamReader(BaseProtocol(asyncio.get_running_loop()), 1 << 16, loop=asyncio.get_running_loop())
    for start in range(0, len(data), piece):
        reader.feed_data(data[start : start + piece])
    reader.feed_eof()
    return reader


async def read_all(parts: Parts, skip: set[str] = frozenset()) -> list[tuple[str | None, str | None, bytes]]:
    found = []
    while (part := await parts.next()) is not None:
        if part.filename in skip:
            found.append((part.name, part.filename, b"(skipped)"))
            continue
        found.append((part.name, part.filename, b"".join([bytes(p) async for p in parts.content()])))
    return found


@pytest.mark.parametrize("piece", [1, 2, 7, 31, 32, 33, 64, 100, 1000, 1 << 20])
async def test_parts_come_out_exact_whatever_the_pieces_the_body_arrives_in(piece: int):
    parts = Parts(
        stream(body(FILES, preamble=b"ignored preamble\r\n"), piece), f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert await read_all(parts) == [("note", None, b"hello")] + [("photos", n, c) for n, c in FILES]


@pytest.mark.parametrize("piece", [1, 20, 30])
async def test_a_body_that_trickles_in_is_read_exactly_as_it_comes(piece: int):
    """Pieces shorter than the delimiter, each read before the next arrives (a slow client)."""
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    protocol.transport = object()  # connected: the reader waits for more instead of failing
    reader = StreamReader(protocol, 1 << 30, loop=loop)
    data = body(FILES)

    async def trickle() -> None:
        for start in range(0, len(data), piece):
            reader.feed_data(data[start : start + piece])
            await asyncio.sleep(0)
        reader.feed_eof()

    feeding = asyncio.create_task(trickle())
    parts = Parts(reader, f"multipart/form-data; boundary={BOUNDARY}")
    assert await read_all(parts) == [("note", None, b"hello")] + [("photos", n, c) for n, c in FILES]
    await feeding


@pytest.mark.parametrize("piece", [5, 64, 1 << 20])
async def test_a_part_left_unread_is_skipped(piece: int):
    parts = Parts(stream(body(FILES), piece), f"multipart/form-data; boundary={BOUNDARY}")
    found = await read_all(parts, skip={"a.jpg", "b.png"})
    assert [f for f in found if f[1] == "crlf.jpg"] == [("photos", "crlf.jpg", FILES[2][1])]
    assert len(found) == 5


async def test_a_body_cut_short_or_without_a_boundary_is_malformed():
    parts = Parts(stream(body(FILES)[:-200], 64), f"multipart/form-data; boundary={BOUNDARY}")
    with pytest.raises(MalformedBody):
        await read_all(parts)
    with pytest.raises(MalformedBody):
        Parts(stream(b"", 1), "multipart/form-data")
