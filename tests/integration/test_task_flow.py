"""Tasks through the real services: order, failure, cancel, retries, timeouts, API answers."""

from __future__ import annotations

from darkroom.kernel.clock import parse_iso
from darkroom.kernel.subjects import lane_consumer
from tests.conftest import System


async def test_steps_run_in_order_and_the_task_completes(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    assert task["status"] == "queued" and len(task["steps"]) == 3
    view = await system.wait_task(task["id"])
    assert view["task"]["status"] == "completed"
    jobs = view["jobs"]
    assert [j["step_index"] for j in jobs] == [0, 1, 2]
    assert all(j["status"] == "completed" and j["attempts"] == 1 for j in jobs)
    for earlier, later in zip(jobs, jobs[1:]):
        assert parse_iso(earlier["finished_at"]) <= parse_iso(later["started_at"])
    assert [j["lane"] for j in jobs] == ["priority", "priority", "normal"]  # 90, 95 ≥ 90 > 80
    log = [e for _, _, e in await system.log(f"darkroom.*._.{task['id']}.>")]
    kinds = [e["type"] for e in log if e["type"] != "job.progress"]
    # No task.started, no job.started for a job done within 250 ms (CONTRACT §7.1): the outcome says when.
    assert kinds == ["task.requested"] + ["job.requested", "job.completed"] * 3 + ["task.completed"]
    assert view["task"]["started_at"] == log[1]["at"]  # running from its first job.requested
    assert [j["started_at"] for j in jobs] == [e["started_at"] for e in log if e["type"] == "job.completed"]
    assert all(e["source"] == "user" and e["task_id"] == task["id"] for e in log)


async def test_a_failed_step_fails_the_task_and_nothing_later_runs(system: System) -> None:
    await system.start()
    task = await system.start_task("fails_second")
    view = await system.wait_task(task["id"])
    assert view["task"]["status"] == "failed"
    assert view["task"]["error"] == "PermanentError: this step always fails"
    assert view["task"]["step_index"] == 1
    assert [(j["step_index"], j["status"]) for j in view["jobs"]] == [(0, "completed"), (1, "failed")]
    await system.settled()
    requested = await system.log(f"darkroom.job._.{task['id']}.requested.>")
    assert [e["step_index"] for _, _, e in requested] == [0, 1]


async def test_cancel_stops_the_running_job_at_its_next_item_and_no_later_step_starts(system: System) -> None:
    await system.start()
    task = await system.start_task("slow_items", items=[f"item-{i}" for i in range(40)])
    await system.wait_job(task["id"], 0, "running")
    status, body, headers = await system.request("POST", f"/api/tasks/{task['id']}/cancel")
    assert status == 202 and body["task"]["cancel_requested"] is True
    assert int(headers["X-Darkroom-Seq"]) > task["_seq"]
    view = await system.wait_task(task["id"])
    assert view["task"]["status"] == "canceled"
    job = view["jobs"][0]
    assert job["status"] == "canceled"
    assert job["progress_done"] < 40  # it stopped early, not after all 40 items
    assert len(view["jobs"]) == 1
    status, body, _ = await system.request("POST", f"/api/tasks/{task['id']}/cancel")
    assert status == 409 and "already canceled" in body["error"]


async def test_cancel_of_a_task_whose_job_waits_for_a_busy_slot_ends_it_at_once(system: System) -> None:
    await system.start(pipeline__max_parallel_jobs=1, pipeline__priority_lane_slots=1)
    busy = await system.start_task("long_priority", items=["3"])
    await system.wait_job(busy["id"], 0, "running")
    queued = await system.start_task("quick_priority")
    await system.wait_job(queued["id"], 0, "queued")
    status, _, _ = await system.request("POST", f"/api/tasks/{queued['id']}/cancel")
    assert status == 202
    view = await system.wait_task(queued["id"], timeout=2)  # not when the slot frees up, 3 s on
    assert view["task"]["status"] == "canceled"
    assert [(j["status"], j["started_at"]) for j in view["jobs"]] == [("canceled", None)]
    assert (await system.task(busy["id"]))["task"]["status"] == "running"
    # Once free, the slot takes the canceled job off its lane without running it.
    assert (await system.wait_task(busy["id"]))["task"]["status"] == "completed"
    await system.settled(lane_consumer("priority"))
    # Never run (no job.started, no outcome); the worker's report of it was the same fact, stored once.
    assert [e["type"] for _, _, e in await system.log(f"darkroom.job._.{queued['id']}.*")] == ["job.canceled"]


async def test_cancel_of_a_task_whose_job_waits_to_be_retried_ends_it_at_once(system: System) -> None:
    await system.start(pipeline__max_attempts=3, pipeline__backoff_base_s=4, pipeline__backoff_max_s=4)
    task = await system.start_task("flaky")
    await system.wait_job(task["id"], 0, "retrying")  # backed off for 2-4 s
    status, _, _ = await system.request("POST", f"/api/tasks/{task['id']}/cancel")
    assert status == 202
    view = await system.wait_task(task["id"], timeout=1.5)
    assert view["task"]["status"] == "canceled" and view["jobs"][0]["status"] == "canceled"
    # When the retry comes due, the worker acknowledges it without another attempt.
    await system.settled(lane_consumer("priority"), timeout=15)
    attempts = [e["attempt"] for _, _, e in await system.log(f"darkroom.job._.{task['id']}.*") if "attempt" in e]
    assert set(attempts) == {1}, attempts  # its job.retrying (and a job.started, were it slow)


async def test_a_failing_job_retries_with_growing_backoff_then_fails(system: System) -> None:
    await system.start(pipeline__max_attempts=3, pipeline__backoff_base_s=0.3, pipeline__backoff_max_s=5)
    task = await system.start_task("flaky")
    view = await system.wait_task(task["id"], timeout=20)
    assert view["task"]["status"] == "failed"
    job = view["jobs"][0]
    assert job["status"] == "failed" and job["attempts"] == 3
    assert job["error"] == "RuntimeError: transient trouble on attempt 3"
    events = [e for _, _, e in await system.log(f"darkroom.job._.{task['id']}.>")]
    retries = [e for e in events if e["type"] == "job.retrying"]
    assert [r["attempt"] for r in retries] == [1, 2]
    assert 0.15 <= retries[0]["delay_s"] <= 0.3 and 0.3 <= retries[1]["delay_s"] <= 0.6
    # Each attempt's outcome says when it started (a quick one stores no job.started).
    starts = [parse_iso(e["started_at"]) for e in events if e["type"] in ("job.retrying", "job.failed")]
    assert len(starts) == 3
    for retry, (before, after) in zip(retries, zip(starts, starts[1:])):
        assert (after - before).total_seconds() >= retry["delay_s"]  # the delay was honoured


async def test_a_job_without_progress_is_abandoned_as_a_failed_attempt(system: System) -> None:
    await system.start(pipeline__job_timeout_s=0.6, pipeline__max_attempts=2)
    task = await system.start_task("hang")
    view = await system.wait_task(task["id"], timeout=20)
    job = view["jobs"][0]
    assert view["task"]["status"] == "failed"
    assert job["attempts"] == 2 and "no progress for 0.6s" in job["error"]


async def test_a_job_type_without_handler_fails_at_once_with_a_clear_error(system: System) -> None:
    await system.start(job_types={})
    task = await system.start_task("three")
    view = await system.wait_task(task["id"])
    assert view["task"]["status"] == "failed"
    assert view["jobs"][0]["error"] == "no handler for job type 'noop'"
    assert view["jobs"][0]["attempts"] == 1


async def test_api_errors_are_clear_and_change_nothing(system: System) -> None:
    await system.start()
    before = await system.bus.last_seq()
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "nope"})
    assert status == 400 and "unknown task type 'nope'" in body["error"] and "three" in body["error"]
    status, body, _ = await system.request("POST", "/api/tasks", raw=b"{not json")
    assert status == 400 and "malformed JSON" in body["error"]
    status, body, _ = await system.request("POST", "/api/tasks", {"type": "three", "colour": "red"})
    assert status == 400 and "colour" in body["error"]
    status, body, _ = await system.request("GET", "/api/tasks/01NOSUCHTASK")
    assert status == 404 and "01NOSUCHTASK" in body["error"]
    status, body, _ = await system.request("POST", "/api/tasks/01NOSUCHTASK/cancel")
    assert status == 404
    status, body, _ = await system.request("GET", "/api/jobs?show_maintenance=perhaps")
    assert status == 400 and "show_maintenance" in body["error"]
    status, body, _ = await system.request("GET", "/api/tasks/x?min_seq=abc")
    assert status == 400 and "min_seq" in body["error"]
    assert await system.bus.last_seq() == before


async def test_a_get_with_min_seq_sees_the_change_the_post_made(system: System) -> None:
    await system.start()
    status, body, headers = await system.request("POST", "/api/tasks", {"type": "three"})
    seq = int(headers["X-Darkroom-Seq"])
    status, view, _ = await system.request("GET", f"/api/tasks/{body['task']['id']}?min_seq={seq}")
    assert status == 200 and view["task"]["id"] == body["task"]["id"]
    status, defs, _ = await system.request("GET", "/api/tasks/definitions")
    assert defs["definitions"]["three"]["steps"][0] == {"type": "noop", "priority": 90}


async def test_maintenance_work_is_hidden_unless_asked_for_and_runs_in_the_normal_lane(system: System) -> None:
    await system.start()
    sweep = await system.start_task("sweep")
    user = await system.start_task("three")
    await system.wait_task(sweep["id"])
    await system.wait_task(user["id"])
    _, hidden, _ = await system.request("GET", "/api/jobs")
    _, shown, _ = await system.request("GET", "/api/jobs?show_maintenance=true")
    assert {j["task_id"] for j in hidden["jobs"]} == {user["id"]}
    sweep_jobs = [j for j in shown["jobs"] if j["task_id"] == sweep["id"]]
    assert len(sweep_jobs) == 2 and all(j["lane"] == "normal" for j in sweep_jobs)  # priority 100 and 95


async def test_operations_endpoints(system: System) -> None:
    await system.start()
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    status, body, _ = await system.request("GET", "/healthz")
    assert status == 200
    status, body, _ = await system.request("GET", "/readyz")
    assert status == 200 and body["checkpoint"] == body["seq"]
    status, text, _ = await system.request("GET", "/metrics")
    for name in (
        "darkroom_events_published_total",
        "darkroom_events_applied_total",
        "darkroom_projector_lag",
        'darkroom_lane_depth{lane="priority"}',
        'darkroom_job_duration_seconds_count{type="noop"} 3.0',
    ):
        assert name in text, name
    status, spec, _ = await system.request("GET", "/api/openapi.json")
    assert {"/api/tasks", "/api/tasks/{task_id}", "/api/events", "/api/jobs"} <= set(spec["paths"])
    assert "StartTask" in spec["components"]["schemas"]
