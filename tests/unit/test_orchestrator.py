"""services/orchestrator/state.py + decide.py: what a task needs next, from its folded events.

Besides direct checks of decide(), a small in-memory log stands in for JetStream: it assigns
stream sequences, deduplicates message ids (until the window passes), enforces the
expected-last-subject-sequence guard (with wildcards) the way the server does, so the guards
decide() computes are checked too. A job.requested is the work itself (CONTRACT §7.1): no copy.
"""

from __future__ import annotations

import msgspec
import pytest

from darkroom.kernel import subjects
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.events import (
    Event,
    JobCanceled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    JobRetrying,
    JobStarted,
    TaskCanceled,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskRequested,
    TaskStarted,
)
from darkroom.kernel.messages import Conflict, Expect
from darkroom.kernel.vocabulary import LANES
from darkroom.orchestrator.decide import Emit, OpenRequests, Request, decide, lost_dispatches
from darkroom.orchestrator.state import TaskState, evolve, record, refreshed, start
from tests.subjects_match import matches

THRESHOLD = 90
DEFS = load_definitions()
P, T = "P01", "T01"


def requested(
    task_type: str = "upload_postprocess", source: str = "user", items=("DSC01", "DSC02"), project_id: str | None = P
) -> TaskRequested:
    d = DEFS[task_type]
    return TaskRequested(
        project_id=project_id,
        task_id=T,
        source=source,
        task_type=task_type,
        label=d.label,
        user_relevant=d.user_relevant,
        steps=list(d.steps),
        items=list(items),
        folder="Shoot",
    )


def job(cls, step: int, task_type: str = "upload_postprocess", project_id: str | None = P, **fields) -> Event:
    return cls(
        project_id=project_id,
        task_id=T,
        job_id=f"{T}-{step}",
        source="user",
        task_type=task_type,
        job_type=DEFS[task_type].steps[step].type,
        step_index=step,
        **fields,
    )


def task(cls, project_id: str | None = P, **fields) -> Event:
    return cls(project_id=project_id, task_id=T, source="user", **fields)


class Log:
    """The DARKROOM stream, as far as one task is concerned."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, Event]] = []
        self.msg_ids: set[str] = set()

    def last_on(self, filter_: str) -> int:
        return max((seq for seq, subject, _ in self.entries if matches(filter_, subject)), default=0)

    def newest(self, filter_: str) -> tuple[int, Event] | None:
        return max(
            ((seq, event) for seq, subject, event in self.entries if matches(filter_, subject)),
            default=None,
            key=lambda entry: entry[0],
        )

    def store(self, event: Event, subject: str | None = None) -> int:
        seq = len(self.entries) + 1
        self.entries.append((seq, subject or subjects.subject_for(event), event))
        return seq

    def check(self, expect: Expect | None) -> None:
        if expect is not None and self.last_on(expect.subject) != expect.last_seq:
            raise Conflict(f"{expect}: last is {self.last_on(expect.subject)}")

    def execute(self, actions) -> None:
        """As the orchestrator does: every event settled on its own; a conflict is raised at the end."""
        conflicts = []
        for action in actions:
            if action.msg_id in self.msg_ids:
                continue  # a Nats-Msg-Id duplicate is not stored again
            try:
                self.check(action.expect)
            except Conflict as exc:
                conflicts.append(exc)
                continue
            self.msg_ids.add(action.msg_id)
            self.store(action.event)
        if conflicts:
            raise conflicts[0]

    def window_passes(self) -> None:
        """The duplicate window is over: message ids are forgotten."""
        self.msg_ids.clear()

    def fold(self) -> TaskState:
        """The task as a full rebuild from the log sees it: every event of the task and its jobs."""
        state = None
        for seq, subject, event in self.entries:
            if subjects.is_dispatch(subject):
                continue
            state = start(event, seq) if state is None else evolve(state, event, seq)
        assert state is not None
        return state

    def types(self, prefix: str = "darkroom.") -> list[str]:
        return [e.type for _, s, e in self.entries if s.startswith(prefix)]

    def dispatched(self) -> list[JobRequested]:
        """The work the lanes hand out: the requests, each on its lane's subject."""
        return [
            e
            for _, s, e in self.entries
            if isinstance(e, JobRequested) and any(matches(subjects.lane_filter(lane), s) for lane in LANES)
        ]


def fold(*events: Event) -> TaskState:
    state = start(events[0], 1)
    for seq, event in enumerate(events[1:], start=2):
        state = evolve(state, event, seq)
    return state


def emitted(actions) -> list[Event]:
    return [a.event for a in emitted_actions(actions)]


def emitted_actions(actions) -> list[Emit]:
    return [a for a in actions if isinstance(a, Emit)]


# -- a queued task -----------------------------------------------------------------------------


def test_queued_task_requests_its_first_step_and_runs_from_it():
    state = fold(requested())
    actions = decide(state, THRESHOLD)
    assert [type(a) for a in actions] == [Emit]  # no task.started (CONTRACT §7.1)
    (req,) = actions

    j = req.event
    assert isinstance(j, JobRequested)
    assert (j.job_id, j.step_index, j.job_type, j.priority, j.lane) == (
        f"{T}-0",
        0,
        "upload_postprocess",
        90,
        "priority",
    )
    assert (j.task_id, j.project_id, j.task_type, j.source, j.folder) == (T, P, "upload_postprocess", "user", "Shoot")
    assert j.items == ["DSC01", "DSC02"]
    # The first request needs the task's whole history to be what the state holds: nothing since.
    assert req.expect == Expect(f"darkroom.*.{P}.{T}.>", 1)
    assert req.msg_id == f"job:{T}-0:requested"
    assert subjects.subject_for(j) == f"darkroom.job.{P}.{T}.requested.priority.upload_postprocess"
    assert record(state, j, 2).status == "running"  # a task is running from its first job.requested


def test_task_without_a_project_uses_underscore_in_its_guards():
    state = fold(requested(project_id=None))
    (req,) = decide(state, THRESHOLD)
    assert req.expect.subject == f"darkroom.*._.{T}.>"
    run_until_step_done(log := Log(), 0, requested(project_id=None))
    (later,) = decide(log.fold(), THRESHOLD)
    assert later.expect.subject == f"darkroom.job._.{T}.requested.>"


@pytest.mark.parametrize(
    "task_type, source, threshold, lanes",
    [
        ("upload_postprocess", "user", 90, ["priority", "priority", "priority"]),
        ("change_commit", "user", 90, ["priority", "priority", "priority", "normal"]),
        ("change_commit", "user", 96, ["priority", "normal", "normal", "normal"]),
        ("change_commit", "maintenance", 90, ["normal"] * 4),
        ("maintenance", "maintenance", 90, ["normal"] * 5),
        ("maintenance", "system", 0, ["normal"] * 5),
    ],
)
def test_each_step_goes_to_its_lane(task_type, source, threshold, lanes):
    log = Log()
    log.store(requested(task_type, source=source))
    run_to_end(log, threshold=threshold)
    assert [j.lane for j in log.dispatched()] == lanes


# -- steps in order ------------------------------------------------------------------------------


def test_completed_step_requests_the_next_one_guarded_by_the_last_request():
    state = fold(requested(), job(JobRequested, 0, priority=90, lane="priority"), job(JobCompleted, 0, attempt=1))
    assert state.last_requested_seq == 2
    actions = decide(state, THRESHOLD)
    assert [type(a) for a in actions] == [Emit]
    req = actions[0]
    assert req.event.step_index == 1 and req.event.job_type == "manifest_check" and req.event.priority == 95
    assert req.event.job_id == f"{T}-1"
    assert req.event.items == []  # later steps work on the whole project
    assert req.expect == Expect(f"darkroom.job.{P}.{T}.requested.>", 2)


def test_last_step_completed_completes_the_task():
    events = [requested(), task(TaskStarted)]
    for step in range(3):
        events += [job(JobRequested, step, priority=90, lane="priority"), job(JobCompleted, step, attempt=1)]
    state = fold(*events)
    actions = decide(state, THRESHOLD)
    assert len(actions) == 1
    assert isinstance(actions[0].event, TaskCompleted)
    assert actions[0].expect == Expect(f"darkroom.task.{P}.{T}.>", 2)
    assert actions[0].msg_id == f"task:{T}:finished"


def test_outstanding_step_needs_nothing():
    state = fold(
        requested(),
        task(TaskStarted),
        job(JobRequested, 0, priority=90, lane="priority"),
        job(JobStarted, 0, attempt=1, worker="w"),
        job(JobProgress, 0, done=1, total=2),
    )
    assert decide(state, THRESHOLD) == []


@pytest.mark.parametrize("task_type", sorted(DEFS))
def test_a_task_runs_every_step_once_in_order_then_completes(task_type):
    log = Log()
    log.store(requested(task_type, source="maintenance" if task_type == "maintenance" else "user"))
    run_to_end(log)
    requests = [e for _, s, e in log.entries if isinstance(e, JobRequested)]
    assert [(r.step_index, r.job_type) for r in requests] == list(enumerate(s.type for s in DEFS[task_type].steps))
    assert [r.items for r in requests] == [["DSC01", "DSC02"]] + [[]] * (len(requests) - 1)
    assert log.dispatched() == requests
    assert log.types("darkroom.task.") == ["task.requested", "task.completed"]
    assert decide(log.fold(), THRESHOLD) == []


def run_to_end(log: Log, threshold: int = THRESHOLD, outcome=JobCompleted, fail_at: int | None = None) -> None:
    """Orchestrate, and play the worker for every dispatched job, until nothing more is asked."""
    for _ in range(50):
        actions = decide(log.fold(), threshold)
        if not actions:
            return
        log.execute(actions)
        for action in actions:
            if isinstance(action.event, JobRequested):
                j = action.event
                common = dict(
                    project_id=j.project_id,
                    task_id=j.task_id,
                    job_id=j.job_id,
                    source=j.source,
                    task_type=j.task_type,
                    job_type=j.job_type,
                    step_index=j.step_index,
                )
                log.store(JobStarted(**common, attempt=1, worker="w1"))
                if fail_at == j.step_index:
                    log.store(JobFailed(**common, attempt=3, error="cannot read DSC02.JPG"))
                else:
                    log.store(outcome(**common, attempt=1))
    raise AssertionError("the task never settled")


# -- failure and cancel ----------------------------------------------------------------------------


def test_failed_job_fails_the_task_with_its_error():
    state = fold(
        requested("change_commit"),
        task(TaskStarted),
        job(JobRequested, 0, "change_commit", priority=100, lane="priority"),
        job(JobFailed, 0, "change_commit", attempt=3, error="permission denied: DSC01.ARW"),
    )
    actions = decide(state, THRESHOLD)
    assert len(actions) == 1
    failed = actions[0].event
    assert isinstance(failed, TaskFailed)
    assert (failed.error, failed.step_index) == ("permission denied: DSC01.ARW", 0)
    assert actions[0].msg_id == f"task:{T}:finished"


def test_after_a_failed_step_nothing_later_runs():
    log = Log()
    log.store(requested("change_commit"))
    run_to_end(log, fail_at=1)
    assert [j.step_index for j in log.dispatched()] == [0, 1]
    assert log.types("darkroom.task.") == ["task.requested", "task.failed"]
    failed = [e for _, _, e in log.entries if isinstance(e, TaskFailed)][0]
    assert (failed.step_index, failed.error) == (1, "cannot read DSC02.JPG")
    # A late completion of the failed step (another worker's attempt) starts nothing either.
    log.store(job(JobCompleted, 1, "change_commit", attempt=2))
    assert decide(log.fold(), THRESHOLD) == []


# -- a retry: a task that starts at a later step ---------------------------------------------------


def retry_of(event: TaskRequested, start_step: int) -> TaskRequested:
    return msgspec.structs.replace(event, retry_of="T00", start_step=start_step)


def test_a_retry_starts_at_its_start_step_guarded_by_its_whole_history():
    retry = retry_of(requested("change_commit", items=()), 2)
    actions = decide(fold(retry), THRESHOLD)
    assert [type(a) for a in actions] == [Emit]
    req = actions[0]
    j = req.event
    assert (j.job_id, j.step_index, j.job_type, j.items) == (f"{T}-2", 2, "folder_check", [])
    # Its first request, like any task's, needs the task to be exactly what the state holds.
    assert req.expect == Expect(f"darkroom.*.{P}.{T}.>", 1)


def test_a_retry_runs_its_start_step_and_those_after_it_once_then_completes():
    log = Log()
    log.store(retry_of(requested("change_commit"), 1))
    run_to_end(log)
    requests = [e for _, s, e in log.entries if isinstance(e, JobRequested)]
    assert [(r.step_index, r.job_type) for r in requests] == [
        (1, "manifest_check"),
        (2, "folder_check"),
        (3, "manifest_cleaning"),
    ]
    assert [r.items for r in requests] == [[], [], []]  # a later step works on the whole project
    assert log.types("darkroom.task.") == ["task.requested", "task.completed"]


def test_a_retry_of_a_first_step_gets_the_tasks_items():
    log = Log()
    log.store(retry_of(requested(), 0))
    run_to_end(log)
    assert [j.items for j in log.dispatched()] == [["DSC01", "DSC02"], [], []]


def test_a_retry_that_fails_again_fails_at_the_step_it_reached():
    log = Log()
    log.store(retry_of(requested("change_commit"), 1))
    run_to_end(log, fail_at=2)
    failed = [e for _, _, e in log.entries if isinstance(e, TaskFailed)]
    assert [(f.step_index, f.error) for f in failed] == [(2, "cannot read DSC02.JPG")]


@pytest.mark.parametrize("start_step", [-1, 3, 9])
def test_a_start_step_the_task_does_not_have_fails_it_without_a_job(start_step):
    actions = decide(fold(retry_of(requested(), start_step)), THRESHOLD)
    assert len(actions) == 1
    failed = actions[0].event
    assert isinstance(failed, TaskFailed)
    assert failed.step_index == start_step and "not one of its 3 steps" in failed.error


def test_cancel_before_start_cancels_without_starting():
    state = fold(requested(), task(TaskCancelRequested))
    actions = decide(state, THRESHOLD)
    assert len(actions) == 1
    assert isinstance(actions[0].event, TaskCanceled) and actions[0].event.step_index is None
    assert actions[0].expect == Expect(f"darkroom.task.{P}.{T}.>", 2)


def test_cancel_waits_for_the_running_step_then_cancels_instead_of_the_next():
    base = [
        requested(),
        task(TaskStarted),
        job(JobRequested, 0, priority=90, lane="priority"),
        job(JobStarted, 0, attempt=1, worker="w1"),
        task(TaskCancelRequested),
    ]
    assert decide(fold(*base), THRESHOLD) == []  # the running job stops at its next item
    for finished in (job(JobCanceled, 0), job(JobCompleted, 0, attempt=1)):
        actions = decide(fold(*base, finished), THRESHOLD)
        assert [type(e) for e in emitted(actions)] == [TaskCanceled]
        assert emitted(actions)[0].step_index == 0


def test_cancel_of_a_queued_step_cancels_its_job_and_the_task_at_once():
    log = Log()
    log.store(requested())
    log.execute(decide(log.fold(), THRESHOLD))
    log.store(task(TaskCancelRequested))  # no worker has taken step 0 yet
    actions = decide(log.fold(), THRESHOLD)
    assert [type(e) for e in emitted(actions)] == [JobCanceled, TaskCanceled]
    canceled, finished = emitted(actions)
    assert (canceled.job_id, canceled.step_index, finished.step_index) == (f"{T}-0", 0, 0)
    assert actions[0].msg_id == f"job:{T}-0:canceled"
    assert actions[0].expect == actions[1].expect == Expect(f"darkroom.task.{P}.{T}.>", 3)  # both, or neither
    log.execute(actions)
    assert log.types("darkroom.task.") == ["task.requested", "task.cancel_requested", "task.canceled"]
    assert decide(log.fold(), THRESHOLD) == []


def test_cancel_of_a_step_waiting_to_be_retried_cancels_it_at_once_and_of_a_retried_one_waits():
    base = [
        requested(),
        task(TaskStarted),
        job(JobRequested, 0, priority=90, lane="priority"),
        job(JobStarted, 0, attempt=1, worker="w1"),
        job(JobRetrying, 0, attempt=1, error="timeout", delay_s=30.0),
        task(TaskCancelRequested),
    ]
    assert [type(e) for e in emitted(decide(fold(*base), THRESHOLD))] == [JobCanceled, TaskCanceled]
    again = fold(*base[:-1], job(JobStarted, 0, attempt=2, worker="w2"), base[-1])  # the retry is running
    assert decide(again, THRESHOLD) == []


def test_cancel_in_the_log_stops_a_task_at_the_step_boundary():
    log = Log()
    log.store(requested())
    log.execute(decide(log.fold(), THRESHOLD))
    log.store(task(TaskCancelRequested))
    log.store(job(JobCompleted, 0, attempt=1))
    log.execute(decide(log.fold(), THRESHOLD))
    assert log.types("darkroom.task.") == ["task.requested", "task.cancel_requested", "task.canceled"]
    assert [j.step_index for j in log.dispatched()] == [0]
    assert decide(log.fold(), THRESHOLD) == []


# -- never advancing twice ---------------------------------------------------------------------------


def test_duplicate_completion_requests_nothing_new():
    events = [
        requested(),
        task(TaskStarted),
        job(JobRequested, 0, priority=90, lane="priority"),
        job(JobCompleted, 0, attempt=1),
        job(JobRequested, 1, priority=95, lane="priority"),
    ]
    # The same completion published again (a retried publish outside the dedupe window).
    state = fold(*events, job(JobCompleted, 0, attempt=1))
    assert decide(state, THRESHOLD) == []


def test_redelivered_completion_at_an_old_sequence_changes_nothing():
    state = fold(
        requested(),
        task(TaskStarted),
        job(JobRequested, 0, priority=90, lane="priority"),
        job(JobCompleted, 0, attempt=1),
        job(JobRequested, 1, priority=95, lane="priority"),
    )
    again = evolve(state, job(JobCompleted, 0, attempt=1), seq=4)
    assert again is state
    assert decide(again, THRESHOLD) == []


def test_a_second_orchestrator_with_stale_state_is_refused_by_the_guard():
    log = Log()
    log.store(requested())
    run_until_step_done(log, 0)
    stale = log.fold()
    first = decide(stale, THRESHOLD)
    log.execute(first)
    second = decide(stale, THRESHOLD)  # same decision, from the state before the first one was stored
    guarded = emitted_actions(second)
    assert guarded and guarded[0].event.step_index == 1
    with pytest.raises(Conflict):
        log.check(guarded[0].expect)
    # Having seen its own (or the other's) request, it asks for nothing.
    assert decide(log.fold(), THRESHOLD) == []


def test_two_orchestrators_cannot_both_finish_a_task():
    log = Log()
    log.store(requested())
    run_until_step_done(log, 2)
    stale = log.fold()
    log.execute(decide(stale, THRESHOLD))
    (finish,) = decide(stale, THRESHOLD)
    with pytest.raises(Conflict):
        log.check(finish.expect)


def test_a_cancel_stored_between_read_and_start_invalidates_the_start():
    log = Log()
    log.store(requested())
    stale = log.fold()
    log.store(task(TaskCancelRequested))
    for guarded in emitted_actions(decide(stale, THRESHOLD)):
        with pytest.raises(Conflict):
            log.check(guarded.expect)
    (cancel,) = decide(log.fold(), THRESHOLD)
    assert isinstance(cancel.event, TaskCanceled)
    log.check(cancel.expect)


def look_again(log: Log, state: TaskState) -> TaskState | None:
    """What the orchestrator does after a conflict: the newest task event and the newest request."""
    return refreshed(state, log.newest(f"darkroom.task.{P}.{T}.>"), log.newest(f"darkroom.job.{P}.{T}.requested.>"))


def test_after_a_conflict_two_reads_are_enough_to_decide_again():
    # Another orchestrator requested step 1: this one's view of step 0's completion asks for nothing more.
    log = Log()
    log.store(requested())
    run_until_step_done(log, 0)
    stale = log.fold()
    log.execute(decide(stale, THRESHOLD))
    again = look_again(log, stale)
    assert again.requested_step == 1 and again.last_requested_seq == log.last_on(f"darkroom.job.{P}.{T}.requested.>")
    assert decide(again, THRESHOLD) == []
    # Step 1 completes: the next request is guarded by the other's request, and accepted.
    log.store(job(JobCompleted, 1, attempt=1))
    log.execute(decide(evolve(again, job(JobCompleted, 1, attempt=1), len(log.entries)), THRESHOLD))
    assert [e.step_index for _, _, e in log.entries if isinstance(e, JobRequested)][-1] == 2


def test_after_a_conflict_a_cold_view_sees_the_task_started_or_ended():
    log = Log()
    log.store(requested())
    log.execute(decide(log.fold(), THRESHOLD))
    again = look_again(log, fold(requested()))
    assert again.status == "running" and again.requested_step == 0 and decide(again, THRESHOLD) == []
    finished = finished_log()
    again = look_again(finished, fold(requested()))
    assert again.terminal and decide(again, THRESHOLD) == []


def test_after_a_conflict_a_cancel_on_a_task_still_queued_here_needs_its_history():
    log = Log()
    log.store(requested())
    log.store(task(TaskCancelRequested))
    assert look_again(log, fold(requested())) is None
    assert refreshed(fold(requested()), (1, None), None) is None  # unreadable: the history decides


def test_after_a_conflict_a_stranger_newest_on_the_requests_subject_needs_the_history():
    # Folded as if it were no news, it left the guard on step 1 stale: every decision conflicted.
    log = Log()
    log.store(requested())
    run_until_step_done(log, 0)
    stale = log.fold()
    stranger = len(log.entries) + 1
    assert refreshed(stale, (1, requested()), (stranger, task(TaskStarted))) is None
    assert refreshed(stale, (1, requested()), (stranger, None)) is None  # unreadable: the same


def run_until_step_done(log: Log, step: int, first: TaskRequested | None = None) -> None:
    if first is not None:
        log.store(first)
    while True:
        actions = decide(log.fold(), THRESHOLD)
        log.execute(actions)
        for a in actions:
            if isinstance(a.event, JobRequested):
                log.store(job(JobCompleted, a.event.step_index, attempt=1))
                if a.event.step_index == step:
                    return


# -- terminal and folding ------------------------------------------------------------------------


@pytest.mark.parametrize("final", [TaskCompleted, TaskCanceled])
def test_terminal_task_needs_nothing(final):
    state = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"), task(final))
    assert state.terminal
    assert decide(state, THRESHOLD) == []


def test_terminal_failed_task_needs_nothing():
    state = fold(
        requested(),
        task(TaskStarted),
        job(JobRequested, 0, priority=90, lane="priority"),
        job(JobFailed, 0, attempt=3, error="x"),
        task(TaskFailed, error="x", step_index=0),
    )
    assert state.status == "failed"
    assert decide(state, THRESHOLD) == []


def test_evolve_ignores_events_at_or_below_what_it_has_seen():
    state = fold(requested(), task(TaskStarted))
    assert state.seen_seq == 2
    assert evolve(state, task(TaskCompleted), 2) is state
    assert evolve(state, task(TaskCompleted), 1) is state
    assert evolve(state, task(TaskCompleted), 3).status == "completed"


def test_evolve_tracks_what_decide_relies_on():
    state = fold(
        requested(),
        task(TaskStarted),
        job(JobRequested, 0, priority=90, lane="priority"),
        job(JobStarted, 0, attempt=1, worker="w"),
        job(JobProgress, 0, done=1, total=2),
        task(TaskCancelRequested),
        job(JobFailed, 0, attempt=1, error="boom"),
    )
    assert state.status == "running"
    assert state.requested_step == 0 and state.last_requested_seq == 3
    assert state.last_task_seq == 6  # task.* events only: job events do not move it
    assert state.cancel_requested
    assert state.finished_steps == frozenset({0}) and state.failed_step == 0 and state.error == "boom"
    assert state.seen_seq == 7
    assert state.items == ("DSC01", "DSC02") and state.steps == tuple(DEFS["upload_postprocess"].steps)


def test_started_but_not_yet_requested_requests_step_zero():
    # A log from before CONTRACT §7.1: TaskStarted was stored but the first request was lost.
    state = fold(requested(), task(TaskStarted))
    actions = decide(state, THRESHOLD)
    assert [type(a) for a in actions] == [Emit]
    assert actions[0].event.step_index == 0 and actions[0].expect == Expect(f"darkroom.*.{P}.{T}.>", 2)


def test_a_task_is_running_from_its_first_request_and_needs_no_start():
    state = fold(requested(), job(JobRequested, 0, priority=90, lane="priority"))
    assert state.status == "running"
    assert decide(state, THRESHOLD) == []


def test_decide_does_not_change_the_state():
    state = fold(requested())
    snapshot = msgspec.structs.replace(state)
    decide(state, THRESHOLD)
    assert state == snapshot


# -- a late or cold view: nothing is run again ------------------------------------------------------


def finished_log(final=None) -> Log:
    log = Log()
    log.store(requested())
    run_to_end(log)
    return log


def test_a_cold_view_of_a_finished_task_stores_nothing_even_past_the_window():
    # An orchestrator restarted long after: its first sight of the task is the old task.requested.
    log = finished_log()
    before = list(log.entries)
    log.window_passes()
    with pytest.raises(Conflict):
        log.execute(decide(fold(requested()), THRESHOLD))
    assert log.entries == before  # no job.requested, no task.started, and no copy for a worker
    assert decide(log.fold(), THRESHOLD) == []


def test_a_cold_view_of_a_task_canceled_while_queued_requests_no_job():
    log = Log()
    log.store(requested())
    log.store(task(TaskCancelRequested))
    log.execute(decide(log.fold(), THRESHOLD))
    assert log.types() == ["task.requested", "task.cancel_requested", "task.canceled"]
    log.window_passes()
    with pytest.raises(Conflict):
        log.execute(decide(fold(requested()), THRESHOLD))
    assert log.types() == ["task.requested", "task.cancel_requested", "task.canceled"]


def test_a_stale_view_of_a_finished_step_requests_nothing_past_the_window():
    log = Log()
    log.store(requested())
    run_until_step_done(log, 0)
    stale = log.fold()
    log.execute(decide(stale, THRESHOLD))  # another orchestrator requests step 1
    log.store(job(JobCompleted, 1, attempt=1))
    log.window_passes()
    before = list(log.entries)
    with pytest.raises(Conflict):
        log.execute(decide(stale, THRESHOLD))
    assert log.entries == before


def test_a_stale_cancel_of_a_queued_step_stores_no_second_outcome():
    log = Log()
    log.store(requested())
    log.execute(decide(log.fold(), THRESHOLD))
    log.store(task(TaskCancelRequested))
    stale = log.fold()
    log.execute(decide(stale, THRESHOLD))  # the first orchestrator cancels the job and the task
    log.window_passes()
    before = list(log.entries)
    with pytest.raises(Conflict):
        log.execute(decide(stale, THRESHOLD))
    assert log.entries == before


# -- requests that no worker would be handed ------------------------------------------------------


def open_requests(*later: Event, before_7_1: bool = False) -> list[Request]:
    """The open requests after a task's request of step 0 at sequence 3 (stored on the subject of a log
    before CONTRACT §7.1, with its dispatch copy at 4, if `before_7_1`), then `later` events."""
    first = job(JobRequested, 0, priority=90, lane="priority", items=["DSC01", "DSC02"])
    if before_7_1:
        entries = [
            (3, f"darkroom.job.{P}.{T}.requested", first),
            (4, f"darkroom.dispatch.priority.{first.job_type}", first),
        ]
    else:
        entries = [(3, subjects.subject_for(first), first)]
    entries += [(20 + i, subjects.subject_for(e), e) for i, e in enumerate(later)]
    requests = OpenRequests()
    for entry in entries:
        requests.add(*entry)
    return list(requests.by_task.values())


def test_a_request_is_the_work_itself_lost_only_before_a_recreated_lane():
    (request,) = open_requests()
    assert (request.seq, request.guard_seq, request.job.job_id) == (3, 3, f"{T}-0")
    assert request.job.items == ["DSC01", "DSC02"] and request.job.lane == "priority"
    assert lost_dispatches([request], {}) == []
    assert lost_dispatches([request], {"priority": 10}) == [request]
    assert lost_dispatches([request], {"priority": 3, "normal": 10}) == []


def test_a_request_over_or_of_an_ended_task_is_never_dispatched_again():
    for ending in (
        job(JobCompleted, 0, attempt=1),
        job(JobFailed, 0, attempt=3, error="x"),
        job(JobCanceled, 0),
        task(TaskCanceled, step_index=0),
        task(TaskCompleted),
    ):
        assert open_requests(ending) == []
        assert open_requests(ending, before_7_1=True) == []


def test_a_task_has_one_open_request_its_newest():
    (request,) = open_requests(
        job(JobCompleted, 0, attempt=1), job(JobRequested, 1, priority=95, lane="priority"), before_7_1=True
    )
    assert (request.job.step_index, request.seq, request.guard_seq) == (1, 21, 21)


def test_a_request_stored_before_7_1_is_stored_again_guarded_by_no_request_on_todays_subjects():
    (request,) = open_requests(before_7_1=True)
    assert (request.seq, request.guard_seq) == (3, 0)  # its dispatch copy is no request of its own
    assert lost_dispatches([request], {"priority": 10}) == [request]
