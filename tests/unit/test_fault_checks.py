"""The fault suite's checks (bench/_faults/checks.py): each finds what it is there to find, in logs
and folders made up to show it, and says nothing of a run where all went well."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _faults import checks  # noqa: E402
from _faults.checks import Entry, Listing  # noqa: E402
from _faults.schedule import PARTS, plan  # noqa: E402

P = "P1"


class Log:
    """A made-up event log: each `add` stores one event, a second after the one before."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, kind: str, subject: str, **event) -> Log:
        seq = len(self.entries) + 1
        at = 1_000_000.0 + seq
        self.entries.append(Entry(seq, f"darkroom.{subject}", at, {"type": kind, "project_id": P, **event}))
        return self

    def task(self, task: str, task_type: str = "upload_postprocess", at: str = "2026-01-01T00:00:00.000Z") -> Log:
        return self.add("task.requested", f"task.{P}.{task}.requested", task_id=task, task_type=task_type, at=at)

    def job(self, task: str, step: int, kind: str, job_type: str = "upload_postprocess", **event) -> Log:
        name = kind.split(".")[1]
        return self.add(
            kind,
            f"job.{P}.{task}.{name}",
            task_id=task,
            job_id=f"{task}-{step}",
            job_type=job_type,
            step_index=step,
            **event,
        )

    def end(self, task: str, outcome: str = "completed") -> Log:
        return self.add(f"task.{outcome}", f"task.{P}.{task}.{outcome}", task_id=task)

    def photo(self, kind: str, filename: str, **event) -> Log:
        return self.add(kind, f"photo.{P}.key-{filename}.{kind.split('.')[1]}", filename=filename, **event)


def a_clean_commit() -> Log:
    log = Log().task("T1").job("T1", 0, "job.requested").job("T1", 0, "job.started", attempt=1)
    log.photo("photo.file_added", "DSC01", name="DSC01.JPG").job("T1", 0, "job.completed", attempt=1).end("T1")
    log.photo("photo.keep_changed", "DSC01", keep_jpg=False, keep_raw=None)
    log.task("C1", "change_commit").job("C1", 0, "job.requested", "file_removal")
    log.job("C1", 0, "job.started", "file_removal", attempt=1)
    log.photo(
        "photo.files_trashed", "DSC01", names=["DSC01.JPG"], trash_names=["DSC01.JPG"], task_id="C1", job_id="C1-0"
    )
    return log.job("C1", 0, "job.completed", "file_removal", attempt=1).end("C1")


def test_a_run_where_all_went_well_has_no_problems() -> None:
    log = a_clean_commit().entries
    assert checks.jobs_twice(log) == []
    assert checks.tasks_twice(log) == []
    assert checks.trashed_without_commit(log) == []
    assert checks.unfinished_tasks(log) == []
    assert checks.task_outcomes(log) == {"completed": 2}


def test_a_job_with_two_outcomes_and_one_that_ran_after_its_outcome_are_found() -> None:
    log = a_clean_commit()
    log.job("T1", 0, "job.started", attempt=2).job("T1", 0, "job.completed", attempt=2)
    assert checks.jobs_twice(log.entries) == [
        "job T1-0 (upload_postprocess): 2 outcomes (completed@5, completed@15); "
        "ran again after its first outcome: job.started@14"
    ]


def test_a_retried_job_has_one_outcome() -> None:
    log = Log().task("T1").job("T1", 0, "job.requested").job("T1", 0, "job.started", attempt=1)
    log.job("T1", 0, "job.retrying", attempt=1).job("T1", 0, "job.started", attempt=2)
    log.job("T1", 0, "job.completed", attempt=2).end("T1")
    assert checks.jobs_twice(log.entries) == []


def test_an_effect_of_a_job_after_its_outcome_is_found() -> None:
    log = a_clean_commit()
    log.photo(
        "photo.files_trashed", "DSC02", names=["DSC02.JPG"], trash_names=["DSC02.JPG"], task_id="C1", job_id="C1-0"
    )
    assert checks.jobs_twice(log.entries) == [
        f"job C1-0 (file_removal): ran again after its first outcome: photo.files_trashed@{len(log.entries)}"
    ]


def test_a_task_that_ended_twice_is_found() -> None:
    log = a_clean_commit().end("T1", "failed")
    assert checks.tasks_twice(log.entries) == [f"task T1 ended 2 times: completed@6, failed@{len(log.entries)}"]


def test_two_maintenance_tasks_of_a_project_in_one_interval_are_found() -> None:
    log = Log().task("M1", "maintenance", at="2026-01-01T00:00:01.000Z")
    log.task("M2", "maintenance", at="2026-01-01T00:00:25.000Z")
    assert checks.maintenance_twice(log.entries, 30) != []
    assert checks.maintenance_twice(log.entries, 20) == []  # one at 0-20 s, one at 20-40 s
    assert checks.maintenance_twice(log.entries, 0) == []  # no schedule


def test_trash_moved_by_anything_but_a_commit_or_of_a_kept_variant_is_found() -> None:
    log = a_clean_commit()
    log.task("M1", "maintenance").job("M1", 0, "job.requested", "trash_maintenance")
    log.photo(
        "photo.files_trashed", "DSC03", names=["DSC03.JPG"], trash_names=["DSC03.JPG"], task_id="M1", job_id="M1-0"
    )
    log.photo("photo.keep_changed", "DSC04", keep_jpg=False).photo("photo.keep_changed", "DSC04", keep_jpg=True)
    log.task("C2", "change_commit").job("C2", 0, "job.requested", "file_removal")
    log.photo(
        "photo.files_trashed", "DSC04", names=["DSC04.JPG"], trash_names=["DSC04.JPG"], task_id="C2", job_id="C2-0"
    )
    log.photo(
        "photo.files_trashed", "DSC05", names=["DSC05.JPG"], trash_names=["DSC05.JPG"], task_id="C2", job_id="C2-0"
    )
    log.photo("photo.keep_changed", "DSC06", keep_jpg=False)
    log.task("C3", "change_commit").job("C3", 0, "job.requested", "file_removal")
    log.job("C3", 0, "job.started", "file_removal", attempt=1)
    log.photo("photo.keep_changed", "DSC06", keep_jpg=True)  # ticked again while the commit ran: a race
    log.photo(
        "photo.files_trashed", "DSC06", names=["DSC06.JPG"], trash_names=["DSC06.JPG"], task_id="C3", job_id="C3-0"
    )
    problems = checks.trashed_without_commit(log.entries)
    assert len(problems) == 3, problems
    assert "by maintenance/trash_maintenance, not by a commit" in problems[0]
    assert "DSC04.JPG" in problems[1] and "while the user kept it" in problems[1]
    assert "DSC05.JPG" in problems[2]  # never unticked at all


def test_an_original_is_lost_unless_in_its_folder_or_its_trash_unchanged() -> None:
    acknowledged = {
        ("A", "a.jpg"): "1",
        ("A", "b.jpg"): "2",
        ("A", "c.jpg"): "3",
        ("A", "d.jpg"): "4",
        ("B", "e.jpg"): "5",
    }
    disk = {"A": Listing(files={"a.jpg": "1", "c.jpg": "changed"}, trash={"b (2).jpg": "2", "d.jpg.bak": "4"})}
    assert checks.lost_originals(acknowledged, disk) == ["A/c.jpg: changed", "A/d.jpg: gone", "B/e.jpg: gone"]


def test_an_original_the_api_does_not_list_is_found() -> None:
    disk = {"A": Listing(files={"DSC01.JPG": "1", "DSC01.ARW": "2", "DSC02.JPG": "3"}), "B": Listing()}
    listed = {"A": {"DSC01": ["DSC01.JPG", "DSC01.ARW"], "DSC02": []}, "B": None}
    assert checks.unlisted_originals(disk, listed) == [
        "A/DSC02.JPG: on disk, not among the photos the API lists",
        "B: the API did not list its photos",
    ]


def test_a_file_in_a_trash_without_its_event_is_found() -> None:
    log = a_clean_commit().add("project.created", f"project.{P}.created", folder="A")
    disk = {"A": Listing(trash={"DSC01.JPG": "x", "DSC09.JPG": "y"})}
    problems = checks.unrecorded_trash(log.entries, disk)
    assert len(problems) == 1 and problems[0].startswith("A/.trash/DSC09.JPG")


def test_a_task_without_an_end_by_the_deadline_is_found_with_its_last_event() -> None:
    log = a_clean_commit().task("T2").job("T2", 0, "job.requested")
    deadline = len(log.entries)
    problem = f"task T2 (upload_postprocess) had not ended by the deadline; last: job.requested@{deadline}"
    assert checks.unfinished_tasks(log.entries) == [problem]
    log.end("T2").task("T3")  # ended too late; asked after the deadline: not judged
    assert checks.unfinished_tasks(log.entries, deadline) == [problem]


def test_recovery_counts_only_a_job_taken_after_the_server_answered() -> None:
    log = Log().task("T1").job("T1", 0, "job.started", attempt=1)  # at +2
    answered = log.entries[-1].at + 0.5
    log.job("T1", 0, "job.completed", attempt=1)  # began before: work had not flowed again yet
    log.task("T2").job("T2", 0, "job.started", attempt=1).job("T2", 0, "job.completed", attempt=1)
    assert checks.recoveries([answered], log.entries) == [log.entries[-1].at - answered]
    assert checks.recoveries([log.entries[-1].at + 1], log.entries) == [None]


def test_sse_once_in_order_without_gaps() -> None:
    expected = [("5", "task_update", "{}"), ("5.1", "item", "{}"), ("7", "job_update", "{}")]
    assert checks.sse_problems(expected, expected, 0, 0) == []
    assert checks.sse_problems(expected + [("9", "item", "{}")], expected, 0, 0) == []  # after the outbox was read
    problems = checks.sse_problems([expected[1], expected[0], expected[0], ("6", "item", "{}")], expected, 1, 1)
    assert problems == [
        "1 messages arrived more than once, first 5",
        "1 messages arrived out of order, first 5",
        "1 of 3 messages never arrived, first 7",
        "1 messages arrived that the outbox does not hold, first 6",
        "1 resets, though every resume point was still in the outbox",
        "1 times the stream was silent for 30 s (the contract: a line every 15 s)",
    ]
    changed = [expected[0], expected[1], ("7", "job_update", '{"x": 1}')]
    assert checks.sse_problems(changed, expected, 0, 0) == ["1 messages differ from the outbox, first 7"]


def test_the_schedule_holds_every_kind_of_fault_and_follows_its_seed() -> None:
    nine = plan(7, 9, (1.0, 2.0))
    assert sorted(str(e) for e in nine if e.kind == "kill") == sorted(f"kill {p}" for p in PARTS)
    assert {e.kind for e in nine} == {"kill", "nats-restart", "orchestrator-away", "disk-full"}
    assert all(1.0 <= e.gap_s <= 2.0 for e in nine)
    assert plan(7, 9, (1.0, 2.0)) == nine and plan(8, 9, (1.0, 2.0)) != nine
    assert len(plan(7, 24, (1.0, 2.0))) == 24 and len(plan(7, 3, (1.0, 2.0))) == 3
