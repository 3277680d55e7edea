"""services/kernel/subjects.py: the subject names of CONTRACT §4."""

from __future__ import annotations

import pytest

from darkroom.kernel import subjects
from darkroom.kernel.events import (
    JOB_EVENTS,
    TASK_EVENTS,
    Event,
    JobCompleted,
    JobProgress,
    JobRequested,
    PhotoKeepChanged,
    ProjectCreated,
    Step,
    TaskCancelRequested,
    TaskRequested,
)
from darkroom.kernel.vocabulary import LANES
from tests.subjects_match import matches


def test_matcher_itself():
    assert matches("darkroom.>", "darkroom.task.p.t.started")
    assert not matches("darkroom.>", "darkroom")
    assert matches("a.*.c", "a.b.c") and not matches("a.*.c", "a.b.d") and not matches("a.*", "a.b.c")


def _minimal(cls: type[Event], **envelope) -> Event:
    fields = {
        "task_type": "upload_postprocess",
        "label": "L",
        "user_relevant": True,
        "steps": [Step("x", 1)],
        "job_type": "manifest_check",
        "step_index": 1,
        "priority": 95,
        "lane": "normal",
        "attempt": 1,
        "worker": "w",
        "done": 1,
        "total": 2,
        "error": "e",
        "delay_s": 1.0,
    }
    wanted = {f for f in cls.__struct_fields__}
    return cls(**{k: v for k, v in fields.items() if k in wanted and k not in envelope}, **envelope)


def _lane_tail(event: Event) -> str:
    """A job.requested has its lane and job type after its name (CONTRACT §7.1)."""
    return ".normal.manifest_check" if isinstance(event, JobRequested) else ""


@pytest.mark.parametrize("cls", TASK_EVENTS + JOB_EVENTS, ids=lambda c: c.__name__)
def test_every_task_and_job_event_has_its_contract_subject(cls):
    event = _minimal(cls, project_id="P01", task_id="T01", job_id="T01-1")
    kind, name = event.type.split(".")
    assert subjects.subject_for(event) == f"darkroom.{kind}.P01.T01.{name}{_lane_tail(event)}"
    assert matches(subjects.ALL, subjects.subject_for(event))
    assert matches(f"{subjects.job_prefix('P01', 'T01')}.>", subjects.subject_for(event)) == (kind == "job")


@pytest.mark.parametrize("cls", TASK_EVENTS + JOB_EVENTS, ids=lambda c: c.__name__)
def test_work_without_a_project_uses_underscore(cls):
    event = _minimal(cls, project_id=None, task_id="T01", job_id="T01-1")
    kind, name = event.type.split(".")
    assert subjects.subject_for(event) == f"darkroom.{kind}._.T01.{name}{_lane_tail(event)}"


def test_examples_spelled_out():
    req = TaskRequested(
        project_id="P",
        task_id="T",
        task_type="change_commit",
        label="Commit Changes",
        user_relevant=True,
        steps=[Step("file_removal", 100)],
    )
    assert subjects.subject_for(req) == "darkroom.task.P.T.requested"
    done = JobCompleted(
        project_id="P",
        task_id="T",
        job_id="T-0",
        task_type="change_commit",
        job_type="file_removal",
        step_index=0,
        attempt=1,
    )
    assert subjects.subject_for(done) == "darkroom.job.P.T.completed"


def test_an_event_without_task_id_has_no_subject():
    with pytest.raises(ValueError, match="task.started is missing an id"):
        subjects.subject_for(_minimal(TASK_EVENTS[1], project_id="P"))


def test_an_event_of_another_family_has_no_subject():
    class Oddity(Event, tag="camera.oddity"):
        pass

    with pytest.raises(ValueError, match="no subject for event type camera.oddity"):
        subjects.subject_for(Oddity(task_id="T"))


def test_project_and_photo_subjects_use_the_project_id_and_the_photo_key():
    from darkroom.kernel.photos import photo_key

    assert (
        subjects.subject_for(ProjectCreated(project_id="P01", name="Shoot", folder="Shoot"))
        == "darkroom.project.P01.created"
    )
    key = photo_key("P01", "DSC01")
    assert key == __import__("hashlib").sha256(b"P01/DSC01").hexdigest()[:24]
    event = PhotoKeepChanged(project_id="P01", filename="DSC01", keep_jpg=False)
    assert subjects.subject_for(event) == f"darkroom.photo.P01.{key}.keep_changed"
    assert matches(subjects.photo_subject("P01", "DSC01"), subjects.subject_for(event))
    with pytest.raises(ValueError, match="missing an id"):
        subjects.subject_for(PhotoKeepChanged(filename="DSC01"))


def test_a_basename_has_one_claim_subject_in_every_project():
    from darkroom.kernel.events import BasenameClaimed

    key = __import__("hashlib").sha256(b"DSC01").hexdigest()[:24]
    left = subjects.subject_for(BasenameClaimed(project_id="P01", filename="DSC01"))
    assert left == f"darkroom.basename.{key}.claimed"
    assert subjects.subject_for(BasenameClaimed(project_id="P02", filename="DSC01")) == left
    assert subjects.subject_for(BasenameClaimed(project_id="P01", filename="dsc01")) != left  # exact, case and all
    assert matches(f"{subjects.basename_prefix('DSC01')}.>", left)


def test_prefixes_cover_the_aggregate_and_nothing_else():
    task_all = f"{subjects.task_prefix('P', 'T')}.>"
    assert task_all == "darkroom.task.P.T.>"
    assert subjects.job_prefix(None, "T") == "darkroom.job._.T"
    assert matches(task_all, subjects.subject_for(_minimal(TaskCancelRequested, project_id="P", task_id="T")))
    assert not matches(task_all, subjects.subject_for(_minimal(TaskCancelRequested, project_id="P", task_id="T2")))
    assert not matches(task_all, subjects.subject_for(_minimal(JobProgress, project_id="P", task_id="T")))


def test_a_lane_takes_the_requests_with_its_name_in_their_subject():
    assert LANES == ("priority", "normal")
    assert subjects.lane_filter("priority") == "darkroom.job.*.*.requested.priority.>"
    for lane in LANES:
        own = subjects.subject_for(_minimal(JobRequested, project_id="P", task_id="T", job_id="T-0", lane=lane))
        other = subjects.subject_for(
            _minimal(JobRequested, project_id=None, task_id="T", job_id="T-0", lane=next(x for x in LANES if x != lane))
        )
        assert matches(subjects.lane_filter(lane), own) and not matches(subjects.lane_filter(lane), other)
        assert matches(subjects.requests("P", "T"), own) and not matches(subjects.requests("P", "T2"), own)
        assert any(matches(f, own) for f in subjects.REQUESTS)
        assert not subjects.is_dispatch(own)
    # A log from before CONTRACT §7.1: its requests are still requests, its copies are no lane's work.
    assert any(matches(f, "darkroom.job.P.T.requested") for f in subjects.REQUESTS)
    assert subjects.is_dispatch("darkroom.dispatch.normal.folder_check")


@pytest.mark.parametrize("cls", [c for c in JOB_EVENTS if c is not JobRequested], ids=lambda c: c.__name__)
def test_no_other_job_event_is_a_lanes_work_and_each_is_in_the_tasks_history_without_requests(cls):
    event = _minimal(cls, project_id="P", task_id="T", job_id="T-0")
    subject = subjects.subject_for(event)
    assert not any(matches(subjects.lane_filter(lane), subject) for lane in LANES)
    assert matches(subjects.job_events("P", "T"), subject) and matches(subjects.task_history("P", "T"), subject)
    request = subjects.subject_for(_minimal(JobRequested, project_id="P", task_id="T", job_id="T-0"))
    assert not matches(subjects.job_events("P", "T"), request) and not matches(subjects.task_history("P", "T"), request)


def test_cancel_requests_filter_matches_every_cancel_request_only():
    f = subjects.cancel_requests()
    assert matches(f, subjects.subject_for(_minimal(TaskCancelRequested, project_id="P", task_id="T")))
    assert matches(f, subjects.subject_for(_minimal(TaskCancelRequested, project_id=None, task_id="T")))
    assert not matches(f, subjects.subject_for(_minimal(TaskRequested, project_id="P", task_id="T")))


def test_stream_names():
    assert subjects.STREAM == "DARKROOM"
    assert subjects.ALL == "darkroom.>"


def test_lane_and_dead_letter_subjects():
    from darkroom.kernel.events import DeadLetterApplied, DeadLetterRecorded, LanePaused, LaneResumed

    paused, resumed = LanePaused(lane="normal", source="user"), LaneResumed(lane="normal", source="user")
    assert subjects.subject_for(paused) == "darkroom.lane.normal.paused"
    assert subjects.subject_for(resumed) == "darkroom.lane.normal.resumed"
    assert matches(subjects.lane_events("normal"), subjects.subject_for(resumed))
    assert not matches(subjects.lane_events("priority"), subjects.subject_for(resumed))
    recorded = DeadLetterRecorded(seq=42, subject="darkroom.x", reason="unknown event type 'x'")
    assert subjects.subject_for(recorded) == "darkroom.dead_letter.42.recorded"
    assert matches(subjects.DEAD_LETTERS_RECORDED, subjects.subject_for(recorded))
    assert matches(subjects.dead_letter_events(42), subjects.subject_for(DeadLetterApplied(seq=42)))
    assert not matches(subjects.dead_letter_events(4), subjects.subject_for(DeadLetterApplied(seq=42)))
