"""services/api/openapi.py: the document comes from the route table and the Route each handler has."""

from __future__ import annotations

import msgspec
from aiohttp import web
from openapi_spec_validator import validate

from darkroom.api.openapi import document
from darkroom.api.routes import Routes


class Rename(msgspec.Struct):
    name: str


class Options(msgspec.Struct, kw_only=True):
    dry_run: bool = False
    note: str | None = None


def _app() -> tuple[web.Application, Routes]:
    routes = Routes()

    @routes.patch("/api/things/{thing_id}/parts/{part}", body=Rename, query=Options)
    async def rename_part(request: web.Request) -> web.Response:
        """Rename a part of a thing.

        More words that stay out of the summary."""
        return web.json_response({})

    @routes.get("/feed", media="text/event-stream")
    async def feed(request: web.Request) -> web.StreamResponse:
        return web.Response(text="")

    app = web.Application()
    app.add_routes(routes)
    return app, routes


def _document(token: bool) -> dict:
    app, routes = _app()
    return document(app.router.routes(), routes.described, token=token)


def test_a_new_route_is_documented_from_its_handler_alone() -> None:
    spec = _document(token=True)
    validate(spec)
    operation = spec["paths"]["/api/things/{thing_id}/parts/{part}"]["patch"]
    assert operation["summary"] == "Rename a part of a thing."
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        ("thing_id", "path", True),
        ("part", "path", True),
        ("dry_run", "query", False),
        ("note", "query", False),
    ]
    assert operation["parameters"][2]["schema"] == {"type": "boolean", "default": False}
    assert operation["parameters"][3]["schema"] == {"type": "string"}
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Rename"}
    assert spec["components"]["schemas"]["Rename"]["required"] == ["name"]
    assert operation["security"] == [{"bearer": []}, {"session": []}]
    feed = spec["paths"]["/feed"]["get"]
    assert "security" not in feed and set(feed["responses"]["2XX"]["content"]) == {"text/event-stream"}
    assert [p["name"] for p in feed["parameters"]] == ["min_seq"]  # every GET may wait for its writes


def test_without_a_token_nothing_asks_for_one() -> None:
    spec = _document(token=False)
    validate(spec)
    assert all("security" not in op for ops in spec["paths"].values() for op in ops.values())
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "session"}
