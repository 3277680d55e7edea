"""A multipart/form-data upload whose file bytes go from the page cache to the socket with sendfile(2).

An upload client in Python (aiohttp) spends 20-40 ms of CPU per 8 MB photo, on the same cores the
server's image processes need; a browser does not spend the server's CPU. This client costs about
what the kernel's copy costs, so the bench measures the server, not its client."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from _common import BenchError


def _part_head(boundary: str, field: str, name: str, content_type: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()


async def post_files(
    url: str, field: str, files: list[tuple[Path, str]], content_type: str = "image/jpeg"
) -> tuple[int, bytes]:
    """POST one part in `field` per (path, name to upload it as), over a connection of its own; the
    response's status and body."""
    if any('"' in name or "\r" in name or "\n" in name for _, name in files):
        raise BenchError(f"cannot send these names in a multipart header: {[name for _, name in files]}")
    target = urlsplit(url)
    boundary = uuid.uuid4().hex
    heads = [_part_head(boundary, field, name, content_type) for _, name in files]
    sizes = [path.stat().st_size for path, _ in files]
    end = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + size + 2 for h, size in zip(heads, sizes)) + len(end)
    reader, writer = await asyncio.open_connection(target.hostname, target.port)
    try:
        writer.write(
            f"POST {target.path or '/'}{'?' + target.query if target.query else ''} HTTP/1.1\r\n"
            f"Host: {target.netloc}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
        )
        loop = asyncio.get_running_loop()
        try:
            for head, (path, _) in zip(heads, files):
                writer.write(head)
                with path.open("rb") as handle:
                    await loop.sendfile(writer.transport, handle)
                writer.write(b"\r\n")
            writer.write(end)
            await writer.drain()
        except ConnectionError:  # the server answered early and closed: its answer says why
            pass
        return await _response(reader)
    finally:
        writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise BenchError(f"the upload's connection closed without an answer ({len(exc.partial)} bytes)") from None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {key.strip().lower(): value.strip() for key, _, value in (line.partition(":") for line in lines if line)}
    if "chunked" in headers.get("transfer-encoding", ""):
        raise BenchError("the upload's answer is chunked, which this client does not read")
    length = headers.get("content-length")
    body = await (reader.readexactly(int(length)) if length is not None else reader.read())
    return int(status_line.split()[1]), body
