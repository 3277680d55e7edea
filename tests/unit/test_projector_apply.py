"""services/projector/apply.py: how each event changes task, job and photo rows, and what SSE sees."""

from __future__ import annotations

import pytest

from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.events import (
    JobCanceled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    JobRetrying,
    JobStarted,
    PhotoDerivativesUpdated,
    PhotoFileAdded,
    PhotoFilesRestored,
    PhotoFilesTrashed,
    PhotoKeepChanged,
    PhotoSidecarAdded,
    ProjectCreated,
    TaskCanceled,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskRequested,
    TaskStarted,
)
from darkroom.projector.apply import Needs, Rows, apply, needs

DEFS = load_definitions()
P, T = "P01", "T01"


def at(n: int) -> str:
    return f"2001-02-03T04:05:{n:02d}.000Z"  # far from the clock: any use of now() would show


def requested(task_type="upload_postprocess", source="user", n=0, task_id=T) -> TaskRequested:
    d = DEFS[task_type]
    return TaskRequested(
        project_id=P,
        task_id=task_id,
        source=source,
        at=at(n),
        task_type=task_type,
        label=d.label,
        user_relevant=d.user_relevant,
        steps=list(d.steps),
        items=["A", "B", "C"],
        folder="Shoot",
    )


def task(cls, n: int, **fields):
    return cls(project_id=P, task_id=T, source="user", at=at(n), **fields)


def job(cls, step: int, n: int, task_type="upload_postprocess", source="user", **fields):
    return cls(
        project_id=P,
        task_id=T,
        job_id=f"{T}-{step}",
        source=source,
        at=at(n),
        task_type=task_type,
        job_type=DEFS[task_type].steps[step].type,
        step_index=step,
        **fields,
    )


def job_requested(
    step: int, n: int, task_type="upload_postprocess", source="user", items=("A", "B", "C"), lane="priority"
) -> JobRequested:
    return job(
        JobRequested,
        step,
        n,
        task_type,
        source,
        priority=DEFS[task_type].steps[step].priority,
        lane=lane,
        items=list(items) if step == 0 else [],
        folder="Shoot",
    )


def play(*events, rows: Rows | None = None):
    rows = rows or Rows()
    messages = []
    for event in events:
        wanted = Needs()
        needs(event, wanted)
        for t in wanted.tasks:
            rows.tasks.setdefault(t, None)
        for j in wanted.jobs:
            rows.jobs.setdefault(j, None)
        messages.append(apply(rows, event))
    return rows, messages


# -- tasks -----------------------------------------------------------------------------------------


def test_task_requested_creates_a_queued_task():
    rows, [msgs] = play(requested())
    t = rows.tasks[T]
    assert (t.id, t.type, t.label, t.user_relevant, t.source) == (
        T,
        "upload_postprocess",
        "Upload Post-Process",
        True,
        "user",
    )
    assert (t.project_id, t.folder, t.status, t.step_index) == (P, "Shoot", "queued", 0)
    assert [(s.type, s.priority) for s in t.steps] == [(s.type, s.priority) for s in DEFS["upload_postprocess"].steps]
    assert (t.created_at, t.updated_at, t.started_at, t.finished_at) == (at(0), at(0), None, None)
    assert t.cancel_requested is False and t.error is None and t.maintenance is False
    assert [(m.event, m.project_id, m.folder, m.maintenance) for m in msgs] == [("task_update", P, "Shoot", False)]
    assert msgs[0].data == t
    assert rows.dirty_tasks == {T}


def test_a_repeated_task_requested_changes_nothing():
    rows, _ = play(requested(), task(TaskStarted, 1))
    before = rows.tasks[T]
    rows.dirty_tasks.clear()
    assert apply(rows, requested(n=9)) == []
    assert rows.tasks[T] == before and rows.dirty_tasks == set()


@pytest.mark.parametrize(
    "task_type, source, maintenance",
    [
        ("upload_postprocess", "user", False),
        ("change_commit", "system", False),
        ("change_commit", "maintenance", True),
        ("maintenance", "maintenance", True),
        ("maintenance", "user", True),
    ],
)
def test_maintenance_flag_of_task_and_its_jobs(task_type, source, maintenance):
    rows, msgs = play(requested(task_type, source), job_requested(0, 1, task_type, source))
    assert rows.tasks[T].maintenance is maintenance
    assert rows.jobs[f"{T}-0"].maintenance is maintenance
    assert all(m.maintenance is maintenance for batch in msgs for m in batch)


def test_task_lifecycle_to_completed():
    rows, msgs = play(requested(), task(TaskStarted, 1), task(TaskCompleted, 9))
    t = rows.tasks[T]
    assert (t.status, t.started_at, t.finished_at, t.updated_at, t.created_at) == (
        "completed",
        at(1),
        at(9),
        at(9),
        at(0),
    )
    assert [m.data.status for batch in msgs for m in batch] == ["queued", "running", "completed"]


def test_task_failed_records_error_and_step():
    rows, _ = play(requested(), task(TaskStarted, 1), task(TaskFailed, 5, error="disk full", step_index=2))
    t = rows.tasks[T]
    assert (t.status, t.error, t.step_index, t.finished_at, t.updated_at) == ("failed", "disk full", 2, at(5), at(5))


def test_cancel_requested_then_canceled():
    rows, msgs = play(requested(), task(TaskStarted, 1), task(TaskCancelRequested, 2))
    t = rows.tasks[T]
    assert (t.status, t.cancel_requested, t.updated_at, t.finished_at) == ("running", True, at(2), None)
    rows, _ = play(task(TaskCanceled, 3, step_index=0), rows=rows)
    t = rows.tasks[T]
    assert (t.status, t.cancel_requested, t.finished_at, t.updated_at) == ("canceled", True, at(3), at(3))


def test_task_event_for_an_unknown_task_is_ignored():
    rows, [msgs] = play(task(TaskStarted, 1))
    assert msgs == [] and rows.tasks[T] is None and rows.dirty_tasks == set()


# -- jobs ------------------------------------------------------------------------------------------


def test_job_requested_creates_a_queued_job():
    rows, [_, msgs] = play(requested(), job_requested(0, 1))
    j = rows.jobs[f"{T}-0"]
    assert (j.id, j.task_id, j.task_type, j.source, j.type) == (
        f"{T}-0",
        T,
        "upload_postprocess",
        "user",
        "upload_postprocess",
    )
    assert (j.project_id, j.folder, j.priority, j.lane, j.status, j.step_index) == (
        P,
        "Shoot",
        90,
        "priority",
        "queued",
        0,
    )
    assert (j.attempts, j.progress_done, j.progress_total, j.error) == (0, 0, 3, None)
    assert (j.created_at, j.updated_at, j.started_at, j.finished_at) == (at(1), at(1), None, None)
    # A task is running from its first job.requested (CONTRACT §7.1: no task.started).
    assert [m.event for m in msgs] == ["job_update", "task_update"]
    assert msgs[0].data == j
    assert (msgs[1].data.status, msgs[1].data.started_at, msgs[1].data.step_index) == ("running", at(1), 0)


def test_a_log_from_before_7_1_starts_the_task_at_its_task_started():
    rows, [_, _, msgs] = play(requested(), job_requested(0, 1), task(TaskStarted, 2))
    assert [m.event for m in msgs] == ["task_update"]
    assert (rows.tasks[T].status, rows.tasks[T].started_at) == ("running", at(2))


def test_a_job_that_stored_no_job_started_takes_its_start_and_last_progress_from_its_outcome():
    rows, [_, _, msgs] = play(
        requested(),
        job_requested(0, 1),
        job(JobCompleted, 0, 3, attempt=1, started_at=at(2), worker="w", done=3, total=3),
    )
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.attempts, j.started_at, j.finished_at) == ("completed", 1, at(2), at(3))
    assert (j.progress_done, j.progress_total) == (3, 3)
    assert [m.event for m in msgs] == ["job_update"]
    # A job.started stored for the attempt is when it started; a retry's outcome brings its own start.
    rows, _ = play(
        requested(),
        job_requested(0, 1),
        job(JobStarted, 0, 2, attempt=1, worker="w"),
        job(JobRetrying, 0, 3, attempt=1, error="e", delay_s=1.0, started_at=at(1)),
        job(JobFailed, 0, 5, attempt=2, error="e", started_at=at(4)),
    )
    assert (rows.jobs[f"{T}-0"].started_at, rows.jobs[f"{T}-0"].attempts) == (at(4), 2)


def test_next_step_requested_moves_the_task_too():
    rows, msgs = play(
        requested(), task(TaskStarted, 1), job_requested(0, 2), job(JobCompleted, 0, 3, attempt=1), job_requested(1, 4)
    )
    last = msgs[-1]
    assert [m.event for m in last] == ["job_update", "task_update"]
    assert last[0].data.id == f"{T}-1" and last[0].data.progress_total == 0
    assert last[1].data.step_index == 1 and last[1].data.updated_at == at(4)
    assert rows.tasks[T].step_index == 1 and rows.tasks[T].status == "running"


def test_a_repeated_job_requested_changes_nothing():
    rows, _ = play(requested(), job_requested(0, 1), job(JobStarted, 0, 2, attempt=1, worker="w"))
    before = rows.jobs[f"{T}-0"]
    assert apply(rows, job_requested(0, 7)) == []
    assert rows.jobs[f"{T}-0"] == before


def test_job_lifecycle_started_progress_completed():
    rows, msgs = play(
        requested(),
        job_requested(0, 1),
        job(JobStarted, 0, 2, attempt=1, worker="w1"),
        job(JobProgress, 0, 3, done=2, total=3),
        job(JobCompleted, 0, 4, attempt=1),
    )
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.attempts, j.progress_done, j.progress_total) == ("completed", 1, 2, 3)
    assert (j.started_at, j.finished_at, j.updated_at, j.error) == (at(2), at(4), at(4), None)
    assert [m.data.status for m in msgs[2] + msgs[3] + msgs[4]] == ["running", "running", "completed"]
    assert msgs[3][0].data.progress_done == 2 and msgs[3][0].data.updated_at == at(3)


def test_job_retrying_then_started_again_then_completed_clears_the_error():
    rows, _ = play(
        requested(),
        job_requested(0, 1),
        job(JobStarted, 0, 2, attempt=1, worker="w"),
        job(JobRetrying, 0, 3, attempt=1, error="timeout", delay_s=1.0),
    )
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.attempts, j.error, j.updated_at) == ("retrying", 1, "timeout", at(3))
    rows, _ = play(job(JobStarted, 0, 5, attempt=2, worker="w"), rows=rows)
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.attempts, j.started_at) == ("running", 2, at(5))
    rows, _ = play(job(JobCompleted, 0, 6, attempt=2), rows=rows)
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.attempts, j.error, j.finished_at) == ("completed", 2, None, at(6))


def test_job_failed_keeps_the_highest_attempt_and_the_error():
    rows, _ = play(
        requested(),
        job_requested(0, 1),
        job(JobStarted, 0, 2, attempt=3, worker="w"),
        job(JobFailed, 0, 3, attempt=1, error="corrupt file"),
    )
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.attempts, j.error, j.finished_at, j.updated_at) == ("failed", 3, "corrupt file", at(3), at(3))


def test_job_canceled():
    rows, _ = play(
        requested(), job_requested(0, 1), job(JobStarted, 0, 2, attempt=1, worker="w"), job(JobCanceled, 0, 3)
    )
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.finished_at, j.updated_at) == ("canceled", at(3), at(3))


@pytest.mark.parametrize(
    "final",
    [
        lambda: job(JobCompleted, 0, 4, attempt=1),
        lambda: job(JobFailed, 0, 4, attempt=1, error="x"),
        lambda: job(JobCanceled, 0, 4),
    ],
    ids=["completed", "failed", "canceled"],
)
def test_progress_after_a_terminal_state_is_ignored(final):
    rows, _ = play(requested(), job_requested(0, 1), job(JobStarted, 0, 2, attempt=1, worker="w"), final())
    before = rows.jobs[f"{T}-0"]
    rows.dirty_jobs.clear()
    assert apply(rows, job(JobProgress, 0, 5, done=1, total=3)) == []
    assert rows.jobs[f"{T}-0"] == before and rows.dirty_jobs == set()
    assert before.updated_at == at(4)


def test_job_event_for_an_unknown_job_is_ignored():
    rows, [msgs] = play(job(JobStarted, 0, 1, attempt=1, worker="w"))
    assert msgs == [] and rows.jobs[f"{T}-0"] is None


def test_job_without_its_task_row_takes_maintenance_from_its_source():
    rows, [msgs] = play(job_requested(0, 1, "maintenance", "maintenance", lane="normal"))
    assert rows.jobs[f"{T}-0"].maintenance is True and [m.event for m in msgs] == ["job_update"]
    rows, _ = play(job_requested(0, 1))
    assert rows.jobs[f"{T}-0"].maintenance is False


def test_job_update_messages_carry_source_task_id_and_task_type():
    _, msgs = play(requested(), job_requested(0, 1), job(JobStarted, 0, 2, attempt=1, worker="w"))
    for m in msgs[1][:1] + msgs[2]:
        assert m.event == "job_update"
        assert (m.data.source, m.data.task_id, m.data.task_type) == ("user", T, "upload_postprocess")


def test_needs_names_the_rows_an_event_reads():
    def wanted(event):
        into = Needs()
        needs(event, into)
        return into.tasks, into.jobs

    assert wanted(requested()) == ({T}, set())
    assert wanted(job_requested(0, 1)) == ({T}, {f"{T}-0"})
    assert wanted(TaskStarted()) == (set(), set())


def test_every_timestamp_comes_from_the_events():
    events = [
        requested(),
        task(TaskStarted, 1),
        job_requested(0, 2),
        job(JobStarted, 0, 3, attempt=1, worker="w"),
        job(JobProgress, 0, 4, done=1, total=3),
        job(JobCompleted, 0, 5, attempt=1),
        job_requested(1, 6),
        job(JobStarted, 1, 7, attempt=1, worker="w"),
        job(JobFailed, 1, 8, attempt=1, error="e"),
        task(TaskFailed, 9, error="e", step_index=1),
    ]
    rows, _ = play(*events)
    stamps = set()
    for view in [*rows.tasks.values(), *rows.jobs.values()]:
        stamps |= {view.created_at, view.updated_at, view.started_at, view.finished_at} - {None}
    assert stamps <= {at(n) for n in range(10)}
    assert rows.tasks[T].updated_at == at(9) and rows.jobs[f"{T}-1"].updated_at == at(8)


@pytest.mark.parametrize(
    "late",
    [
        lambda: job(JobStarted, 0, 6, attempt=2, worker="w2"),
        lambda: job(JobRetrying, 0, 6, attempt=2, error="late", delay_s=1.0),
    ],
    ids=["started", "retrying"],
)
def test_a_late_start_or_retry_never_reopens_a_finished_job(late):
    rows, _ = play(
        requested(),
        job_requested(0, 1),
        job(JobStarted, 0, 2, attempt=1, worker="w1"),
        job(JobCompleted, 0, 5, attempt=1),
    )
    apply(rows, late())
    j = rows.jobs[f"{T}-0"]
    assert (j.status, j.finished_at) == ("completed", at(5))


# -- photos ----------------------------------------------------------------------------------------


def photo_event(cls, n: int, filename="DSC01", **fields):
    return cls(project_id=P, source="user", at=at(n), filename=filename, **fields)


def shoot(*files: str):
    """A project with one photo of these variant files."""
    kinds = {"JPG": "jpg", "ARW": "raw", "PNG": "other", "HEIC": "other"}
    return [
        ProjectCreated(project_id=P, source="user", at=at(0), name="Shoot", folder="Shoot"),
        *(photo_event(PhotoFileAdded, 1, name=f, kind=kinds[f.rpartition(".")[2]], size=10) for f in files),
    ]


def test_an_other_variant_is_kept_when_it_appears_and_can_be_unkept_and_committed():
    rows, _ = play(*shoot("DSC01.JPG", "DSC01.HEIC"))
    photo = next(iter(rows.photos.values()))
    assert photo.other_available and photo.keep_other and not photo.pending_other
    rows, [msgs] = play(photo_event(PhotoKeepChanged, 2, keep_other=False), rows=rows)
    photo, project = rows.photos[photo.id], rows.projects[P]
    assert photo.pending_other and photo.has_pending and not photo.pending_jpg
    assert (project.pending_photos, project.pending_jpg, project.pending_raw, project.pending_other) == (1, 0, 0, 1)
    changed = [m.data for m in msgs if m.event == "pending_changes"]
    assert [(c.pending.photos, c.pending.other) for c in changed] == [(1, 1)]
    assert [m.data.photo.keep_other for m in msgs if m.event == "item"] == [False]
    rows, [msgs] = play(
        photo_event(PhotoFilesTrashed, 3, names=["DSC01.HEIC"], trash_names=["DSC01.HEIC"], trashed_at=at(3)), rows=rows
    )
    photo, project = rows.photos[photo.id], rows.projects[P]
    assert not photo.other_available and not photo.has_pending and photo.files == ["DSC01.JPG"]
    assert (project.pending_photos, project.pending_other) == (0, 0)
    rows, _ = play(photo_event(PhotoFilesRestored, 4, names=["DSC01.HEIC"], trash_names=["DSC01.HEIC"]), rows=rows)
    assert rows.photos[photo.id].keep_other  # back, and kept, as any variant that newly appears


def test_a_sidecar_changes_no_photo_and_what_it_replaced_is_in_the_trash():
    rows, _ = play(*shoot("DSC01.ARW"))
    before = next(iter(rows.photos.values()))
    rows, [msgs] = play(
        photo_event(PhotoSidecarAdded, 5, name="DSC01.ARW.xmp", size=300, replaced="DSC01 (2).ARW.xmp"), rows=rows
    )
    assert msgs == [] and rows.photos[before.id] is before and before.files == ["DSC01.ARW"]
    trash = rows.trash[f"{P}/DSC01 (2).ARW.xmp"]
    assert (trash.name, trash.filename, trash.trashed_at) == ("DSC01.ARW.xmp", "DSC01", at(5))
    rows, [msgs] = play(photo_event(PhotoSidecarAdded, 6, filename="NOPE", name="NOPE.xmp", size=3), rows=rows)
    assert msgs == [] and len(rows.photos) == 1  # never a photo of its own


def test_derivatives_record_what_they_were_made_from_and_a_late_report_records_nothing():
    rows, _ = play(*shoot("DSC01.JPG", "DSC01.PNG"))
    key = next(iter(rows.photos))
    rows, _ = play(
        photo_event(
            PhotoDerivativesUpdated,
            2,
            thumbnail_status="generated",
            preview_status="generated",
            made_from="DSC01.JPG",
            made_from_size=10,
            made_from_mtime_ns=7,
        ),
        rows=rows,
    )
    photo = rows.photos[key]
    assert (photo.made_from, photo.made_from_size, photo.made_from_mtime_ns, photo.error_kind) == (
        "DSC01.JPG",
        10,
        7,
        None,
    )
    rows, _ = play(
        photo_event(
            PhotoDerivativesUpdated,
            3,
            thumbnail_status="failed",
            preview_status="failed",
            error="No space left on device",
            error_kind="no_space",
            made_from="DSC01.JPG",
            made_from_size=10,
            made_from_mtime_ns=7,
        ),
        rows=rows,
    )
    assert (rows.photos[key].thumbnail_status, rows.photos[key].error_kind) == ("failed", "no_space")
    rows, _ = play(
        photo_event(
            PhotoFilesTrashed,
            4,
            names=["DSC01.JPG", "DSC01.PNG"],
            trash_names=["DSC01.JPG", "DSC01.PNG"],
            trashed_at=at(4),
        ),
        photo_event(
            PhotoDerivativesUpdated,
            5,
            thumbnail_status="generated",
            preview_status="generated",
            made_from="DSC01.JPG",
            made_from_size=10,
            made_from_mtime_ns=7,
        ),
        rows=rows,
    )
    photo = rows.photos[key]
    assert (photo.thumbnail_status, photo.made_from, photo.error_kind) == ("missing", None, None)
