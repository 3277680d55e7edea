"""The pure parts of the metrics: outcomes counted from stored events, families read at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from darkroom.kernel.events import JobCompleted, JobFailed, JobProgress, JobRetrying, TaskCompleted
from darkroom.kernel.metrics import Gathered, JobMetrics, Metrics, counter, gauge, joined_families


def _samples(registry: CollectorRegistry) -> dict[tuple, float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _job(kind, job_type: str, **fields):
    return kind(
        project_id="_", task_id="T", job_id="J", source="user", task_type="t", job_type=job_type, step_index=0, **fields
    )


def test_job_outcomes_are_counted_by_type_and_known_types_start_at_zero():
    registry = CollectorRegistry()
    jobs = JobMetrics(registry, ["noop", "fail"])
    for event in (
        _job(JobCompleted, "noop", attempt=1),
        _job(JobCompleted, "noop", attempt=1),
        _job(JobRetrying, "fail", attempt=1, error="x", delay_s=1),
        _job(JobFailed, "fail", attempt=2, error="x"),
        _job(JobProgress, "noop", done=1, total=2),
        TaskCompleted(project_id="_", task_id="T"),
    ):
        jobs.stored(event)
    jobs.ran("noop", 0.02)
    found = _samples(registry)
    assert found[("darkroom_jobs_completed_total", (("type", "noop"),))] == 2
    assert found[("darkroom_jobs_retried_total", (("type", "fail"),))] == 1
    assert found[("darkroom_jobs_failed_total", (("type", "fail"),))] == 1
    assert found[("darkroom_jobs_canceled_total", (("type", "noop"),))] == 0
    assert found[("darkroom_job_duration_seconds_bucket", (("le", "0.05"), ("type", "noop")))] == 1
    assert found[("darkroom_job_duration_seconds_count", (("type", "fail"),))] == 0


async def test_families_read_at_scrape_time_are_fresh_or_empty_never_stale():
    answers = [3, RuntimeError("nats away"), 5]

    async def read():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return [gauge("darkroom_stream_messages", "Events in the stream", answer)]

    metrics = Metrics(CollectorRegistry())
    metrics.scraped(read, lambda: [gauge("darkroom_stream_messages", "Events in the stream")])
    texts = [(await metrics.exposition()).decode() for _ in range(3)]
    assert "darkroom_stream_messages 3.0" in texts[0]
    assert "# TYPE darkroom_stream_messages gauge" in texts[1] and "darkroom_stream_messages 3.0" not in texts[1]
    assert "darkroom_stream_messages 5.0" in texts[2]


def test_two_processes_of_one_command_answer_as_one():
    """Counters and histograms both have add up, a series one has is kept, a reading of the same
    thing stays the first's; the result is one family each, as a scraper wants."""
    first, second = CollectorRegistry(), CollectorRegistry()
    JobMetrics(first, ["noop"])  # the orchestrator's: nothing counted
    jobs = JobMetrics(second, ["noop"])
    jobs.ran("noop", 0.02)
    jobs.ran("noop", 0.2)
    for registry, role, published, down in ((first, "api", 5, 1), (second, "worker", 3, 0)):
        Metrics(registry).gathered(
            lambda role=role, published=published, down=down: [
                gauge("darkroom_nats_connected", "up", labels=["connection"], samples=[([role], 1)]),
                counter("darkroom_events_published", "stored", published),
                gauge("darkroom_loops_down", "down", down),
                gauge("darkroom_stream_messages", "in the stream", 40 if role == "api" else 41),
            ]
        )
    joined = CollectorRegistry()
    joined.register(
        Gathered(
            lambda: joined_families(
                text_string_to_metric_families(generate_latest(first).decode()),
                text_string_to_metric_families(generate_latest(second).decode()),
            )
        )
    )
    samples = _samples(joined)
    assert samples[("darkroom_events_published_total", ())] == 8
    assert samples[("darkroom_loops_down", ())] == 1
    assert samples[("darkroom_stream_messages", ())] == 40  # read at another moment: the first's
    assert samples[("darkroom_nats_connected", (("connection", "api"),))] == 1
    assert samples[("darkroom_nats_connected", (("connection", "worker"),))] == 1
    assert samples[("darkroom_job_duration_seconds_count", (("type", "noop"),))] == 2
    assert samples[("darkroom_job_duration_seconds_bucket", (("le", "0.05"), ("type", "noop")))] == 1
    names = [family.name for family in text_string_to_metric_families(generate_latest(joined).decode())]
    assert len(names) == len(set(names))
