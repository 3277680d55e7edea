"""services/orchestrator/state.py + decide.py: what a task needs next, from its folded events.

Besides direct checks of decide(), a small in-memory log stands in for JetStream: it assigns
stream sequences, stores dispatch copies, and enforces the expected-last-subject-sequence guard
(with wildcards) the way the server does, so the guards decide() computes are checked too.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.subjects_match import matches
from services.kernel import subjects
from services.kernel.bus import Conflict, Expect
from services.kernel.definitions import load_definitions
from services.kernel.events import (
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
from services.orchestrator.decide import Dispatch, Emit, decide, lost_dispatches
from services.orchestrator.service import STATE_FILTERS as FILTERS
from services.orchestrator.state import TaskState, evolve, start

THRESHOLD = 90
DEFS = load_definitions()
P, T = "P01", "T01"


def requested(task_type: str = "upload_postprocess", source: str = "user", items=("DSC01", "DSC02"),
              project_id: str | None = P) -> TaskRequested:
    d = DEFS[task_type]
    return TaskRequested(project_id=project_id, task_id=T, source=source, task_type=task_type, label=d.label,
                         user_relevant=d.user_relevant, steps=list(d.steps), items=list(items), folder="Shoot")


def job(cls, step: int, task_type: str = "upload_postprocess", project_id: str | None = P, **fields) -> Event:
    return cls(project_id=project_id, task_id=T, job_id=f"{T}-{step}", source="user", task_type=task_type,
               job_type=DEFS[task_type].steps[step].type, step_index=step, **fields)


def task(cls, project_id: str | None = P, **fields) -> Event:
    return cls(project_id=project_id, task_id=T, source="user", **fields)


class Log:
    """The DARKROOM stream, as far as one task is concerned."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str, Event]] = []
        self.msg_ids: set[str] = set()

    def last_on(self, filter_: str) -> int:
        return max((seq for seq, subject, _ in self.entries if matches(filter_, subject)), default=0)

    def store(self, event: Event, subject: str | None = None) -> int:
        seq = len(self.entries) + 1
        self.entries.append((seq, subject or subjects.subject_for(event), event))
        return seq

    def check(self, expect: Expect | None) -> None:
        if expect is not None and self.last_on(expect.subject) != expect.last_seq:
            raise Conflict(f"{expect}: last is {self.last_on(expect.subject)}")

    def execute(self, actions) -> None:
        for action in actions:
            if isinstance(action, Emit):
                if action.msg_id in self.msg_ids:
                    continue  # Nats-Msg-Id dedupe
                self.check(action.expect)
                self.msg_ids.add(action.msg_id)
                self.store(action.event)
            else:
                self.store(action.job, subjects.dispatch(action.job.lane, action.job.job_type))

    def fold(self) -> TaskState:
        """The task as a full rebuild from the log sees it."""
        state = None
        for seq, subject, event in self.entries:
            if not any(matches(f, subject) for f in FILTERS):
                continue
            state = start(event, seq) if state is None else evolve(state, event, seq)
        assert state is not None
        return state

    def types(self, prefix: str = "darkroom.") -> list[str]:
        return [e.type for _, s, e in self.entries if s.startswith(prefix)]

    def dispatched(self) -> list[JobRequested]:
        return [e for _, s, e in self.entries if subjects.is_dispatch(s)]


def fold(*events: Event) -> TaskState:
    state = start(events[0], 1)
    for seq, event in enumerate(events[1:], start=2):
        state = evolve(state, event, seq)
    return state


def emitted(actions) -> list[Event]:
    return [a.event for a in actions if isinstance(a, Emit)]


# -- a queued task -----------------------------------------------------------------------------


def test_queued_task_starts_and_requests_its_first_step():
    state = fold(requested())
    actions = decide(state, THRESHOLD)
    assert [type(a) for a in actions] == [Emit, Emit, Dispatch]
    started, req, dispatch = actions

    assert isinstance(started.event, TaskStarted)
    assert (started.event.project_id, started.event.task_id, started.event.source) == (P, T, "user")
    assert started.expect == Expect(f"darkroom.task.{P}.{T}.>", 1)
    assert started.msg_id == f"task:{T}:started"

    j = req.event
    assert isinstance(j, JobRequested)
    assert (j.job_id, j.step_index, j.job_type, j.priority, j.lane) == (f"{T}-0", 0, "upload_postprocess", 90,
                                                                         "priority")
    assert (j.task_id, j.project_id, j.task_type, j.source, j.folder) == (T, P, "upload_postprocess", "user", "Shoot")
    assert j.items == ["DSC01", "DSC02"]
    assert req.expect == Expect(f"darkroom.job.{P}.{T}.requested", 0)
    assert req.msg_id == f"job:{T}-0:requested"
    assert dispatch.job == j


def test_task_without_a_project_uses_underscore_in_its_guards():
    state = fold(requested(project_id=None))
    started, req, _ = decide(state, THRESHOLD)
    assert started.expect.subject == f"darkroom.task._.{T}.>"
    assert req.expect.subject == f"darkroom.job._.{T}.requested"


@pytest.mark.parametrize("task_type, source, threshold, lanes", [
    ("upload_postprocess", "user", 90, ["priority", "priority", "priority"]),
    ("change_commit", "user", 90, ["priority", "priority", "priority", "normal"]),
    ("change_commit", "user", 96, ["priority", "normal", "normal", "normal"]),
    ("change_commit", "maintenance", 90, ["normal"] * 4),
    ("maintenance", "maintenance", 90, ["normal"] * 5),
    ("maintenance", "system", 0, ["normal"] * 5),
])
def test_each_step_goes_to_its_lane(task_type, source, threshold, lanes):
    log = Log()
    log.store(requested(task_type, source=source))
    run_to_end(log, threshold=threshold)
    assert [j.lane for j in log.dispatched()] == lanes


# -- steps in order ------------------------------------------------------------------------------


def test_completed_step_requests_the_next_one_guarded_by_the_last_request():
    state = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
                 job(JobStarted, 0, attempt=1, worker="w"), job(JobCompleted, 0, attempt=1))
    assert state.last_requested_seq == 3
    actions = decide(state, THRESHOLD)
    assert [type(a) for a in actions] == [Emit, Dispatch]
    req = actions[0]
    assert req.event.step_index == 1 and req.event.job_type == "manifest_check" and req.event.priority == 95
    assert req.event.job_id == f"{T}-1"
    assert req.event.items == []  # later steps work on the whole project
    assert req.expect == Expect(f"darkroom.job.{P}.{T}.requested", 3)
    assert actions[1].job == req.event


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


def test_outstanding_step_needs_nothing_unless_redispatching():
    state = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
                 job(JobStarted, 0, attempt=1, worker="w"), job(JobProgress, 0, done=1, total=2))
    assert decide(state, THRESHOLD) == []
    actions = decide(state, THRESHOLD, redispatch=True)
    assert len(actions) == 1 and isinstance(actions[0], Dispatch)
    assert actions[0].job.job_id == f"{T}-0" and actions[0].job.items == ["DSC01", "DSC02"]
    assert actions[0].job.lane == "priority"


@pytest.mark.parametrize("task_type", sorted(DEFS))
def test_a_task_runs_every_step_once_in_order_then_completes(task_type):
    log = Log()
    log.store(requested(task_type, source="maintenance" if task_type == "maintenance" else "user"))
    run_to_end(log)
    requests = [e for _, s, e in log.entries if isinstance(e, JobRequested) and not subjects.is_dispatch(s)]
    assert [(r.step_index, r.job_type) for r in requests] == list(enumerate(s.type for s in DEFS[task_type].steps))
    assert [r.items for r in requests] == [["DSC01", "DSC02"]] + [[]] * (len(requests) - 1)
    assert [j.job_id for j in log.dispatched()] == [r.job_id for r in requests]
    assert log.types("darkroom.task.") == ["task.requested", "task.started", "task.completed"]
    assert decide(log.fold(), THRESHOLD) == []
    assert decide(log.fold(), THRESHOLD, redispatch=True) == []


def run_to_end(log: Log, threshold: int = THRESHOLD, outcome=JobCompleted, fail_at: int | None = None) -> None:
    """Orchestrate, and play the worker for every dispatched job, until nothing more is asked."""
    for _ in range(50):
        actions = decide(log.fold(), threshold)
        if not actions:
            return
        log.execute(actions)
        for action in actions:
            if isinstance(action, Dispatch):
                j = action.job
                common = dict(project_id=j.project_id, task_id=j.task_id, job_id=j.job_id, source=j.source,
                              task_type=j.task_type, job_type=j.job_type, step_index=j.step_index)
                log.store(JobStarted(**common, attempt=1, worker="w1"))
                if fail_at == j.step_index:
                    log.store(JobFailed(**common, attempt=3, error="cannot read DSC02.JPG"))
                else:
                    log.store(outcome(**common, attempt=1))
    raise AssertionError("the task never settled")


# -- failure and cancel ----------------------------------------------------------------------------


def test_failed_job_fails_the_task_with_its_error():
    state = fold(requested("change_commit"), task(TaskStarted),
                 job(JobRequested, 0, "change_commit", priority=100, lane="priority"),
                 job(JobFailed, 0, "change_commit", attempt=3, error="permission denied: DSC01.ARW"))
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
    assert log.types("darkroom.task.") == ["task.requested", "task.started", "task.failed"]
    failed = [e for _, _, e in log.entries if isinstance(e, TaskFailed)][0]
    assert (failed.step_index, failed.error) == (1, "cannot read DSC02.JPG")
    # A late completion of the failed step (another worker's attempt) starts nothing either.
    log.store(job(JobCompleted, 1, "change_commit", attempt=2))
    assert decide(log.fold(), THRESHOLD) == []
    assert decide(log.fold(), THRESHOLD, redispatch=True) == []


def test_cancel_before_start_cancels_without_starting():
    state = fold(requested(), task(TaskCancelRequested))
    actions = decide(state, THRESHOLD)
    assert len(actions) == 1
    assert isinstance(actions[0].event, TaskCanceled) and actions[0].event.step_index is None
    assert actions[0].expect == Expect(f"darkroom.task.{P}.{T}.>", 2)


def test_cancel_waits_for_the_running_step_then_cancels_instead_of_the_next():
    base = [requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
            job(JobStarted, 0, attempt=1, worker="w1"), task(TaskCancelRequested)]
    assert decide(fold(*base), THRESHOLD) == []  # the running job stops at its next item
    for finished in (job(JobCanceled, 0), job(JobCompleted, 0, attempt=1)):
        actions = decide(fold(*base, finished), THRESHOLD)
        assert [type(e) for e in emitted(actions)] == [TaskCanceled]
        assert emitted(actions)[0].step_index == 0
        assert not any(isinstance(a, Dispatch) for a in actions)


def test_cancel_of_a_queued_step_cancels_its_job_and_the_task_at_once():
    log = Log()
    log.store(requested())
    log.execute(decide(log.fold(), THRESHOLD))
    log.store(task(TaskCancelRequested))  # no worker has taken step 0 yet
    actions = decide(log.fold(), THRESHOLD)
    assert [type(e) for e in emitted(actions)] == [JobCanceled, TaskCanceled]
    canceled, finished = emitted(actions)
    assert (canceled.job_id, canceled.step_index, finished.step_index) == (f"{T}-0", 0, 0)
    assert actions[0].msg_id == f"job:{T}-0:canceled"  # what a worker taking it later reports: a duplicate
    log.execute(actions)
    assert log.types("darkroom.task.") == ["task.requested", "task.started", "task.cancel_requested",
                                           "task.canceled"]
    assert decide(log.fold(), THRESHOLD) == [] and decide(log.fold(), THRESHOLD, redispatch=True) == []


def test_cancel_of_a_step_waiting_to_be_retried_cancels_it_at_once_and_of_a_retried_one_waits():
    base = [requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
            job(JobStarted, 0, attempt=1, worker="w1"),
            job(JobRetrying, 0, attempt=1, error="timeout", delay_s=30.0), task(TaskCancelRequested)]
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
    assert log.types("darkroom.task.") == ["task.requested", "task.started", "task.cancel_requested",
                                           "task.canceled"]
    assert [j.step_index for j in log.dispatched()] == [0]
    assert decide(log.fold(), THRESHOLD) == []


# -- never advancing twice ---------------------------------------------------------------------------


def test_duplicate_completion_requests_nothing_new():
    events = [requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
              job(JobCompleted, 0, attempt=1), job(JobRequested, 1, priority=95, lane="priority")]
    # The same completion published again (a retried publish outside the dedupe window).
    state = fold(*events, job(JobCompleted, 0, attempt=1))
    assert decide(state, THRESHOLD) == []


def test_redelivered_completion_at_an_old_sequence_changes_nothing():
    state = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
                 job(JobCompleted, 0, attempt=1), job(JobRequested, 1, priority=95, lane="priority"))
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
    guarded = [a for a in second if isinstance(a, Emit)]
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
    started = decide(stale, THRESHOLD)[0]
    with pytest.raises(Conflict):
        log.check(started.expect)
    (cancel,) = decide(log.fold(), THRESHOLD)
    assert isinstance(cancel.event, TaskCanceled)
    log.check(cancel.expect)


def run_until_step_done(log: Log, step: int) -> None:
    while True:
        actions = decide(log.fold(), THRESHOLD)
        log.execute(actions)
        for a in actions:
            if isinstance(a, Dispatch):
                log.store(job(JobCompleted, a.job.step_index, attempt=1))
                if a.job.step_index == step:
                    return


# -- terminal and folding ------------------------------------------------------------------------


@pytest.mark.parametrize("final", [TaskCompleted, TaskCanceled])
def test_terminal_task_needs_nothing(final):
    state = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"), task(final))
    assert state.terminal
    assert decide(state, THRESHOLD) == []
    assert decide(state, THRESHOLD, redispatch=True) == []


def test_terminal_failed_task_needs_nothing():
    state = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
                 job(JobFailed, 0, attempt=3, error="x"), task(TaskFailed, error="x", step_index=0))
    assert state.status == "failed"
    assert decide(state, THRESHOLD, redispatch=True) == []


def test_evolve_ignores_events_at_or_below_what_it_has_seen():
    state = fold(requested(), task(TaskStarted))
    assert state.seen_seq == 2
    assert evolve(state, task(TaskCompleted), 2) is state
    assert evolve(state, task(TaskCompleted), 1) is state
    assert evolve(state, task(TaskCompleted), 3).status == "completed"


def test_evolve_tracks_what_decide_relies_on():
    state = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"),
                 job(JobStarted, 0, attempt=1, worker="w"), job(JobProgress, 0, done=1, total=2),
                 task(TaskCancelRequested), job(JobFailed, 0, attempt=1, error="boom"))
    assert state.status == "running"
    assert state.requested_step == 0 and state.last_requested_seq == 3
    assert state.last_task_seq == 6  # task.* events only: job events do not move it
    assert state.cancel_requested
    assert state.finished_steps == frozenset({0}) and state.failed_step == 0 and state.error == "boom"
    assert state.seen_seq == 7
    assert state.items == ("DSC01", "DSC02") and state.steps == tuple(DEFS["upload_postprocess"].steps)


def test_started_but_not_yet_requested_requests_step_zero():
    # TaskStarted was stored but the first request was lost: decide asks for step 0 again.
    state = fold(requested(), task(TaskStarted))
    actions = decide(state, THRESHOLD)
    assert [type(a) for a in actions] == [Emit, Dispatch]
    assert actions[0].event.step_index == 0 and actions[0].expect.last_seq == 0


def test_queued_with_its_first_request_stored_only_starts():
    state = fold(requested(), job(JobRequested, 0, priority=90, lane="priority"))
    actions = decide(state, THRESHOLD)
    assert [type(e) for e in emitted(actions)] == [TaskStarted]
    assert not any(isinstance(a, Dispatch) for a in actions)


def test_decide_does_not_change_the_state():
    state = fold(requested())
    snapshot = replace(state)
    decide(state, THRESHOLD)
    assert state == snapshot


# -- recovery after a lane consumer was recreated ------------------------------------------------


def test_only_jobs_whose_dispatch_lies_before_the_recreated_lane_are_lost():
    waiting = fold(requested(), task(TaskStarted), job(JobRequested, 0, priority=90, lane="priority"))
    finished = evolve(waiting, job(JobCompleted, 0, attempt=1), 10)
    job_id = f"{T}-0"
    lost = lost_dispatches([waiting], {job_id: 4}, {"priority": 10}, THRESHOLD)
    assert [j.job_id for j in lost] == [job_id] and lost[0].lane == "priority" and lost[0].items == ["DSC01", "DSC02"]
    assert lost_dispatches([finished], {job_id: 4}, {"priority": 10}, THRESHOLD) == []
    # Dispatched again after the new start, or that lane was never recreated: nothing is lost.
    assert lost_dispatches([waiting], {job_id: 12}, {"priority": 10}, THRESHOLD) == []
    assert lost_dispatches([waiting], {job_id: 4}, {"normal": 10}, THRESHOLD) == []
