"""The one error path, on a real aiohttp server: whatever a handler raises answers JSON with a status."""

from __future__ import annotations

import errno

import nats.errors
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from darkroom.api.errors import error, json_errors


async def _client(handler) -> TestClient:
    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/x", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def _answer(handler) -> tuple[int, dict]:
    client = await _client(handler)
    try:
        async with client.get("/x") as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()
    finally:
        await client.close()


async def test_an_unexpected_exception_is_a_500_with_a_message_not_its_class() -> None:
    async def broken(request):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    assert await _answer(broken) == (500, {"error": "internal error; see the server log"})


async def test_every_status_the_api_uses_has_its_own_answer() -> None:
    for status in (400, 401, 403, 404, 405, 409, 413, 422, 500, 503, 507):

        async def failing(request, status=status):
            raise error(status, f"status {status}")

        assert await _answer(failing) == (status, {"error": f"status {status}"})


async def test_nats_not_answering_is_a_503() -> None:
    async def no_log(request):
        raise nats.errors.NoRespondersError()

    status, body = await _answer(no_log)
    assert status == 503 and "NATS" in body["error"]


async def test_a_full_disk_is_a_507() -> None:
    async def full(request):
        raise OSError(errno.ENOSPC, "No space left on device")

    assert await _answer(full) == (507, {"error": "the disk is full"})
