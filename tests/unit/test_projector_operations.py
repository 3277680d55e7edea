"""services/projector: what operator controls leave in the read models. Lanes paused and resumed, a
retry linked to the task it runs again, and dead letters: set aside, discarded, applied once readable,
and set aside by every rebuild of the log the way the live projector did."""

from __future__ import annotations

import json

import msgspec
import pytest

from darkroom.kernel.events import (
    ALL_EVENTS,
    Codec,
    DeadLetterApplied,
    DeadLetterDiscarded,
    DeadLetterRecorded,
    JobFailed,
    JobRequested,
    LanePaused,
    LaneResumed,
    TaskCompleted,
    TaskFailed,
    TaskStarted,
)
from darkroom.kernel.messages import Stored
from darkroom.projector import store
from darkroom.projector.engine import Projector
from darkroom.projector.queries import ReadModel
from darkroom.projector.views import LaneRow
from darkroom.replay.engine import Rebuild
from darkroom.replay.writer import Writer
from tests.unit.test_projector_engine import CODEC, at, job, log_of, requested, rows, task

# A version of Darkroom that cannot read task.completed: to it, one is a dead letter.
OLD = Codec([t for t in ALL_EVENTS if t is not TaskCompleted])


@pytest.fixture
async def db(tmp_path):
    connection = await store.open_db(tmp_path / "read.sqlite")
    yield connection
    await connection.close()


async def outbox(db) -> list[tuple[str, str, dict]]:
    return [
        (r.id, r.event, json.loads(r.data))
        for r in await ReadModel(db).outbox_after((0, 0), project_id=None, show_maintenance=True)
    ]


async def test_a_lanes_newest_pause_or_resume_is_its_state_and_goes_out_as_lane_update(db):
    projector = await Projector(db, CODEC).open()
    await projector.apply_batch(
        log_of(
            LanePaused(lane="normal", source="user", at=at(1)),
            LanePaused(lane="priority", source="user", at=at(2)),
            LaneResumed(lane="normal", source="user", at=at(3)),
        )
    )
    assert await ReadModel(db).lanes() == {
        "normal": LaneRow(lane="normal", paused=False, updated_at=at(3)),
        "priority": LaneRow(lane="priority", paused=True, updated_at=at(2)),
    }
    assert await outbox(db) == [
        ("1", "lane_update", {"lane": "normal", "paused": True, "updated_at": at(1)}),
        ("2", "lane_update", {"lane": "priority", "paused": True, "updated_at": at(2)}),
        ("3", "lane_update", {"lane": "normal", "paused": False, "updated_at": at(3)}),
    ]
    # Not a project's message: a project's page does not get it.
    assert await ReadModel(db).outbox_after((0, 0), project_id="P01", show_maintenance=True) == []


async def test_a_retry_starts_at_its_step_and_links_both_tasks(db):
    projector = await Projector(db, CODEC).open()
    failed = [
        requested("T1", "change_commit"),
        task(TaskStarted, "T1", 1),
        job(JobRequested, "T1", 0, 2, "change_commit"),
        job(JobFailed, "T1", 0, 3, "change_commit", attempt=3, error="disk gone"),
        task(TaskFailed, "T1", 4, error="disk gone", step_index=0),
    ]
    retry = msgspec.structs.replace(requested("T1r1", "change_commit"), retry_of="T1", start_step=0, at=at(5))
    await projector.apply_batch(log_of(*failed))
    await projector.apply_batch(log_of(retry, start=6))
    model = ReadModel(db)
    old, new = await model.task("T1"), await model.task("T1r1")
    assert (old.status, old.retried_by, old.updated_at) == ("failed", "T1r1", at(5))
    assert (new.status, new.retry_of, new.start_step, new.step_index) == ("queued", "T1", 0, 0)
    assert [(i, e, d["id"]) for i, e, d in await outbox(db) if i.startswith("6")] == [
        ("6", "task_update", "T1r1"),
        ("6.1", "task_update", "T1"),
    ]

    later = msgspec.structs.replace(requested("T2", "change_commit"), retry_of="T1r1", start_step=2, at=at(7))
    await projector.apply_batch(log_of(later, start=7))
    assert (await model.task("T2")).step_index == 2  # its first step is the one it starts at
    assert (await model.task("T1r1")).retried_by == "T2"


def _failed_log() -> list[Stored]:
    """A task whose completion the old version cannot read, set aside and recorded as such."""
    return log_of(
        requested("T1"),
        task(TaskStarted, "T1", 1),
        task(TaskCompleted, "T1", 2),
        DeadLetterRecorded(
            seq=3, subject="darkroom.task.P01.T1.completed", reason="unknown event type 'task.completed'", at=at(3)
        ),
    )


async def test_a_dead_letter_is_listed_until_discarded_and_its_discard_goes_out(db):
    projector = await Projector(db, OLD).open()
    set_aside = await projector.apply_batch(_failed_log())
    assert [(d.seq, d.reason) for d in set_aside] == [(3, "unknown event type 'task.completed'")]
    assert [(d.seq, d.subject) for d in await ReadModel(db).dead_letters()] == [(3, "darkroom.task.P01.T1.completed")]
    await projector.apply_batch(
        log_of(
            DeadLetterDiscarded(seq=3, source="user", at=at(5)),
            DeadLetterDiscarded(seq=99, source="user", at=at(6)),
            start=5,
        )
    )
    assert await ReadModel(db).dead_letters() == []
    assert (await ReadModel(db).task("T1")).status == "running"  # discarded: never applied
    messages = await outbox(db)
    assert (
        "3",
        "dead_letter",
        {
            "seq": 3,
            "subject": "darkroom.task.P01.T1.completed",
            "reason": "unknown event type 'task.completed'",
            "at": "2030-01-01T00:00:03.000Z",
        },
    ) in messages
    assert messages[-1] == ("5", "dead_letter_removed", {"seq": 3, "how": "discarded"})
    # A projector opened again on the file knows what is listed.
    assert (await Projector(db, OLD).open()).listed == set()


async def test_a_dead_letter_still_unreadable_stays_listed_when_asked_to_apply(db):
    log = _failed_log()
    projector = await Projector(db, OLD, fetch=_fetch(log)).open()
    await projector.apply_batch(log + log_of(DeadLetterApplied(seq=3, source="user", at=at(5)), start=5))
    assert [d.seq for d in await ReadModel(db).dead_letters()] == [3]
    assert (await ReadModel(db).task("T1")).status == "running"


async def test_a_dead_letter_readable_now_is_applied_where_it_is_asked_for(db):
    log = _failed_log()
    await (await Projector(db, OLD).open()).apply_batch(log)
    # The new version, with the upcaster (here: the type) shipped, reads the file on from there.
    applied = log_of(DeadLetterApplied(seq=3, source="user", at=at(5)), start=5)
    projector = await Projector(db, CODEC, fetch=_fetch(log)).open()
    assert projector.listed == {3}
    await projector.apply_batch(applied)
    t = await ReadModel(db).task("T1")
    assert (t.status, t.finished_at) == ("completed", at(2))
    assert await ReadModel(db).dead_letters() == []
    assert [(i, e) for i, e, _ in await outbox(db) if i.startswith("5")] == [
        ("5", "dead_letter_removed"),
        ("5.1", "task_update"),
    ]


@pytest.mark.parametrize("keep_rows, writer", [(0, False), (1000, True)])
async def test_a_rebuild_by_a_version_that_reads_a_dead_letter_sets_it_aside_as_recorded(tmp_path, keep_rows, writer):
    log = _failed_log()
    later = log_of(task(TaskStarted, "T9", 6), DeadLetterApplied(seq=3, source="user", at=at(7)), start=5)
    live = await store.open_db(tmp_path / "live.sqlite")
    try:
        await (await Projector(live, OLD).open()).apply_batch(log)
        before = {t: await rows(live, f"SELECT * FROM {t} ORDER BY 1") for t in store.COMPARED}
        assert before["dead_letters"] != []
        assert await _rebuilt(tmp_path / "a.sqlite", log, keep_rows, writer) == before

        await (await Projector(live, CODEC, fetch=_fetch(log + later)).open()).apply_batch(later)
        after = {t: await rows(live, f"SELECT * FROM {t} ORDER BY 1") for t in store.COMPARED}
        assert after["dead_letters"] == [] and after != before
        assert await _rebuilt(tmp_path / "b.sqlite", log + later, keep_rows, writer) == after
    finally:
        await live.close()


async def test_only_recorded_dead_letters_ahead_of_the_checkpoint_are_kept(db):
    projector = await Projector(db, CODEC).open()
    await projector.apply_batch(log_of(requested("T1"), task(TaskStarted, "T1", 1)))
    for stored in _failed_log()[1:] + log_of(DeadLetterRecorded(seq=1, subject="s", reason="old", at=at(9)), start=9):
        projector.note_recorded(stored)
    assert projector.recorded == {3: "unknown event type 'task.completed'"}
    projector.note_recorded(Stored(10, "darkroom.dead_letter.5.recorded", b"{nope", at(10)))  # unreadable: ignored
    assert projector.recorded == {3: "unknown event type 'task.completed'"}


async def _rebuilt(path, log: list[Stored], keep_rows: int, writer: bool) -> dict[str, list[tuple]]:
    """As `darkroom replay` rebuilds: the recorded dead letters read first, then the whole log."""
    db = await store.open_db(path)
    try:
        made = await Writer.start(path) if writer else None
        projector = await Rebuild(db, CODEC, keep_rows, made, fetch=_fetch(log)).open()
        for stored in log:
            projector.note_recorded(stored)
        await projector.apply_batch(log)
        await projector.settle()
        return {t: await rows(db, f"SELECT * FROM {t} ORDER BY 1") for t in store.COMPARED}
    finally:
        await db.close()


def _fetch(log: list[Stored]):
    by_seq = {s.seq: s for s in log}

    async def fetch(seq: int) -> Stored | None:
        return by_seq.get(seq)

    return fetch
