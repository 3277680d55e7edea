"""The README's tour works: the example plugin and definitions run a task end to end."""

from __future__ import annotations

from services.kernel.definitions import load_definitions
from services.worker.handlers import load_handlers
from tests.conftest import REPO, System


async def test_the_example_plugin_runs_the_hello_task(system: System) -> None:
    await system.start(handlers=load_handlers(["examples.hello_jobs"]),
                       definitions=load_definitions(REPO / "examples" / "hello_definitions.json"))
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "hello", "items": ["a", "b"]})
    assert status == 202
    view = await system.wait_task(body["task"]["id"])
    assert view["task"]["status"] == "completed"
    assert [(j["lane"], j["progress_done"], j["progress_total"]) for j in view["jobs"]] == [
        ("priority", 2, 2), ("normal", 0, 0)]
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "nope"})
    assert body["error"] == ("unknown task type 'nope'; valid types: change_commit, hello, maintenance, "
                             "upload_postprocess")
