"""services/projector/engine.py (and replay/engine.py, a rebuild's) on a real SQLite file: batches, checkpoint,
outbox, dead letters."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from darkroom.kernel import subjects
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.events import (
    Codec,
    Event,
    JobCompleted,
    JobProgress,
    JobRequested,
    JobStarted,
    TaskCompleted,
    TaskRequested,
    TaskStarted,
)
from darkroom.kernel.messages import Stored
from darkroom.projector import engine as engine_module
from darkroom.projector import store
from darkroom.projector.checkpoints import Checkpoints
from darkroom.projector.engine import Projector
from darkroom.projector.queries import AFTER_EVERYTHING, OutboxTail, ReadModel, parse_event_id
from darkroom.projector.store import CHECKPOINT, PRUNED_THROUGH
from darkroom.replay.engine import Rebuild
from darkroom.replay.writer import WriteError, Writer

DEFS = load_definitions()
CODEC = Codec()


def at(n: int) -> str:
    return f"2001-02-03T04:{n // 60:02d}:{n % 60:02d}.000Z"


def stream_at(seq: int) -> str:
    return f"2030-01-01T00:00:{seq % 60:02d}.000Z"


def requested(
    task_id: str, task_type: str = "upload_postprocess", source: str = "user", project_id="P01", folder="Shoot"
) -> TaskRequested:
    d = DEFS[task_type]
    return TaskRequested(
        project_id=project_id,
        task_id=task_id,
        source=source,
        task_type=task_type,
        label=d.label,
        user_relevant=d.user_relevant,
        steps=list(d.steps),
        items=["A", "B"],
        folder=folder,
        at=at(0),
    )


def job(
    cls,
    task_id: str,
    step: int,
    n: int,
    task_type="upload_postprocess",
    source="user",
    project_id="P01",
    folder="Shoot",
    **fields,
) -> Event:
    if cls is JobRequested:
        fields = dict(
            priority=DEFS[task_type].steps[step].priority,
            lane="priority",
            items=["A", "B"] if step == 0 else [],
            folder=folder,
            **fields,
        )
    return cls(
        project_id=project_id,
        task_id=task_id,
        job_id=f"{task_id}-{step}",
        source=source,
        at=at(n),
        task_type=task_type,
        job_type=DEFS[task_type].steps[step].type,
        step_index=step,
        **fields,
    )


def task(cls, task_id: str, n: int, project_id="P01", **fields) -> Event:
    return cls(project_id=project_id, task_id=task_id, source="user", at=at(n), **fields)


def log_of(*events: Event, start: int = 1) -> list[Stored]:
    return [
        Stored(seq, subjects.subject_for(e), CODEC.encode(e), stream_at(seq))
        for seq, e in enumerate(events, start=start)
    ]


def dispatch_copy(event: JobRequested, seq: int) -> Stored:
    """A log from before CONTRACT §7.1: the workers' copy of a job.requested, on its lane's subject."""
    return Stored(seq, f"darkroom.dispatch.{event.lane}.{event.job_type}", CODEC.encode(event), stream_at(seq))


def one_task_log(task_id: str = "T1") -> list[Stored]:
    return log_of(
        requested(task_id),
        task(TaskStarted, task_id, 1),
        job(JobRequested, task_id, 0, 2),
        job(JobStarted, task_id, 0, 3, attempt=1, worker="w"),
        job(JobProgress, task_id, 0, 4, done=1, total=2),
        job(JobCompleted, task_id, 0, 5, attempt=1),
        job(JobRequested, task_id, 1, 6),
        job(JobCompleted, task_id, 1, 7, attempt=1),
        job(JobRequested, task_id, 2, 8),
        job(JobCompleted, task_id, 2, 9, attempt=1),
        task(TaskCompleted, task_id, 10),
    )


@pytest.fixture
async def db(tmp_path):
    connection = await store.open_db(tmp_path / "read.sqlite")
    yield connection
    await connection.close()


@pytest.fixture
async def projector(db):
    return await Projector(db, CODEC).open()


async def rows(db, sql: str, args=()) -> list[tuple]:
    async with db.execute(sql, args) as cursor:
        return list(await cursor.fetchall())


async def dump(db) -> dict[str, list[tuple]]:
    return {
        table: await rows(db, f"SELECT * FROM {table} ORDER BY 1, 2")
        for table in ("tasks", "jobs", "outbox", "dead_letters", "meta")
    }


# -- one batch ----------------------------------------------------------------------------------


async def test_a_batch_writes_rows_outbox_and_checkpoint(db, projector):
    applied = []
    projector.on_applied = lambda seq, outbox: applied.append(seq)
    await projector.apply_batch(one_task_log())
    model = ReadModel(db)

    t = await model.task("T1")
    assert (t.status, t.step_index, t.created_at, t.started_at, t.finished_at, t.updated_at) == (
        "completed",
        2,
        at(0),
        at(1),
        at(10),
        at(10),
    )
    assert [(s.type, s.priority) for s in t.steps] == [(s.type, s.priority) for s in DEFS["upload_postprocess"].steps]
    jobs = await model.jobs_of("T1")
    assert [(j.id, j.type, j.status, j.attempts, j.finished_at) for j in jobs] == [
        ("T1-0", "upload_postprocess", "completed", 1, at(5)),
        ("T1-1", "manifest_check", "completed", 1, at(7)),
        ("T1-2", "folder_check", "completed", 1, at(9)),
    ]
    assert jobs[0].progress_done == 1 and jobs[0].progress_total == 2

    assert await store.get_meta(db, CHECKPOINT) == 11 and projector.checkpoint == 11
    assert applied == [11]
    assert projector.counts.events == 11 and projector.counts.poisoned == 0

    outbox = await model.outbox_after((0, 0), project_id=None, show_maintenance=True)
    assert [(r.id, r.event) for r in outbox] == [
        ("1", "task_update"),
        ("2", "task_update"),
        ("3", "job_update"),
        ("4", "job_update"),
        ("5", "job_update"),
        ("6", "job_update"),
        ("7", "job_update"),
        ("7.1", "task_update"),
        ("8", "job_update"),
        ("9", "job_update"),
        ("9.1", "task_update"),
        ("10", "job_update"),
        ("11", "task_update"),
    ]
    # Each message is the row as it was right after its event, not the final row.
    states = [json.loads(r.data)["status"] for r in outbox if r.event == "task_update"]
    assert states == ["queued", "running", "running", "running", "completed"]
    assert json.loads(outbox[-1].data) == json.loads(json.dumps(_builtins(t)))


def _builtins(view):
    import msgspec

    return msgspec.to_builtins(view)


async def test_rows_read_back_equal_what_apply_made(db, projector):
    await projector.apply_batch(
        log_of(
            requested("T1", "maintenance", "maintenance"), job(JobRequested, "T1", 0, 1, "maintenance", "maintenance")
        )
    )
    model = ReadModel(db)
    t = await model.task("T1")
    assert t.user_relevant is False and t.maintenance is True and t.cancel_requested is False
    (j,) = await model.jobs_of("T1")
    assert j.maintenance is True and j.lane == "priority" and j.priority == 100


# -- idempotence ----------------------------------------------------------------------------------


async def test_reapplying_at_or_below_the_checkpoint_changes_nothing(db, projector):
    log = one_task_log()
    await projector.apply_batch(log[:6])
    before = await dump(db)
    applied = []
    projector.on_applied = lambda seq, outbox: applied.append(seq)
    await projector.apply_batch(log[:6])
    await projector.apply_batch(log[2:4])
    assert await dump(db) == before
    assert applied == [] and projector.counts.events == 6


async def test_an_overlapping_batch_applies_only_the_new_part(db, projector, tmp_path):
    log = one_task_log()
    await projector.apply_batch(log[:6])
    await projector.apply_batch(log[3:])  # 4..5 again, then 6..11
    assert projector.counts.events == 11

    other = await store.open_db(tmp_path / "other.sqlite")
    try:
        fresh = await Projector(other, CODEC).open()
        await fresh.apply_batch(log)
        assert await dump(db) == await dump(other)
    finally:
        await other.close()


async def test_a_restarted_projector_resumes_from_its_checkpoint(tmp_path):
    path = tmp_path / "read.sqlite"
    log = one_task_log()
    first = await store.open_db(path)
    await (await Projector(first, CODEC).open()).apply_batch(log[:5])
    await first.close()

    second = await store.open_db(path)
    try:
        projector = await Projector(second, CODEC).open()
        assert projector.checkpoint == 5
        await projector.apply_batch(log)  # a consumer restarting from 1 again
        assert projector.counts.events == 6
        outbox = await rows(second, "SELECT seq, k FROM outbox ORDER BY seq, k")
        assert len(outbox) == len(set(outbox)) == 13
    finally:
        await second.close()


async def test_a_read_model_with_an_older_versions_columns_is_folded_again_from_the_start(tmp_path):
    path = tmp_path / "read.sqlite"
    log = one_task_log()
    first = await store.open_db(path)
    await (await Projector(first, CODEC).open()).apply_batch(log)
    await first.execute("ALTER TABLE photos DROP COLUMN keep_other")  # as a version without it wrote the file
    await first.commit()
    await first.close()

    second = await store.open_db(path)
    try:
        projector = await Projector(second, CODEC).open()
        assert projector.checkpoint == 0 and await rows(second, "SELECT * FROM tasks") == []
        await projector.apply_batch(log)
        assert projector.checkpoint == len(log) and len(await rows(second, "SELECT * FROM jobs")) == 3
        reopened = await Projector(second, CODEC).open()
        assert reopened.checkpoint == len(log)  # a current file is kept as it is
    finally:
        await second.close()


@pytest.mark.parametrize("keep_rows", [0, 3, 1000])  # none kept; kept and forgotten again; all kept
@pytest.mark.parametrize("size", [1, 2, 3, 5])
async def test_batch_boundaries_do_not_change_the_result(tmp_path, size, keep_rows):
    log = one_task_log("T1") + one_task_log("T2")
    log = [Stored(i, s.subject, s.data, s.at) for i, s in enumerate(log, start=1)]
    whole = await store.open_db(tmp_path / "whole.sqlite")
    split = await store.open_db(tmp_path / "split.sqlite")
    try:
        await (await Projector(whole, CODEC, relay=not keep_rows).open()).apply_batch(log)
        p = await (Rebuild(split, CODEC, keep_rows) if keep_rows else Projector(split, CODEC)).open()
        for i in range(0, len(log), size):
            await p.apply_batch(log[i : i + size])
        assert await dump(whole) == await dump(split)
    finally:
        await whole.close()
        await split.close()


@pytest.mark.parametrize("keep_rows", [0, 1000])
async def test_a_failed_transaction_leaves_nothing_behind(db, monkeypatch, keep_rows):
    projector = await (Rebuild(db, CODEC, keep_rows) if keep_rows else Projector(db, CODEC)).open()
    log = one_task_log()
    await projector.apply_batch(log[:2])
    before = await dump(db)

    def broken(folded):  # fails after everything else the transaction writes, checkpoint included
        return statements(folded) + [("INSERT INTO nowhere VALUES (?)", [(1,)])]

    statements = projector._statements
    monkeypatch.setattr(projector, "_statements", broken)
    with pytest.raises(sqlite3.OperationalError):
        await projector.apply_batch(log[2:])
    assert await dump(db) == before  # no rows, no outbox without the checkpoint that covers them
    assert projector.checkpoint == 2

    monkeypatch.undo()
    await projector.apply_batch(log[2:])
    assert (await ReadModel(db).task("T1")).status == "completed"
    assert await store.get_meta(db, CHECKPOINT) == 11


def trips_to_thread(db) -> list:
    """Each call aiosqlite makes to its thread from now on (a trip costs about 90 µs of CPU)."""
    trips = []
    execute = db._execute

    def counted(fn, *args, **kwargs):
        trips.append(fn)
        return execute(fn, *args, **kwargs)

    db._execute = counted
    return trips


async def test_a_batch_goes_to_the_sqlite_thread_twice_whatever_it_holds(db, projector):
    # Each trip to aiosqlite's thread costs about 90 µs of CPU (a statement a few): one to read the
    # rows a batch touches, one to write them. It was one a table read and one a statement written.
    trips = trips_to_thread(db)
    log = one_task_log()
    for seq in range(len(log)):
        trips.clear()
        await projector.apply_batch(log[seq : seq + 1])
        assert len(trips) == 2, log[seq].subject
    trips.clear()
    two = [CODEC.decode(stored.data) for stored in (*one_task_log("T2"), *one_task_log("T3"))]
    await projector.apply_batch(log_of(*two, start=len(log) + 1))
    assert len(trips) == 2
    assert (await ReadModel(db).task("T3")).status == "completed"


async def test_a_read_of_the_read_model_is_one_trip_to_the_sqlite_thread(db, projector):
    # A cursor's execute, fetch and close were a trip each (about 90 µs of CPU apiece): an upload
    # asks two such reads, and each job of a photo's task one or two, in the worker.
    await projector.apply_batch(one_task_log())
    model = ReadModel(db)
    trips = trips_to_thread(db)
    reads = {
        "tasks": (model.tasks(project_id="P01"), lambda found: [t.id for t in found] == ["T1"]),
        "open tasks": (model.open_tasks("P01"), lambda found: found == []),
        "jobs": (model.jobs_of("T1"), lambda found: [j.status for j in found] == ["completed"] * 3),
        "job counts": (model.job_counts(), lambda found: found == []),
        "photos named": (model.photos_named(["A", "B"]), lambda found: found == []),
        "photos missing derivatives": (model.missing_derivatives("P01"), lambda found: found == 0),
        "dead letters": (model.dead_letters(), lambda found: found == []),
        "dead letter count": (model.dead_letter_count(), lambda found: found == 0),
        "outbox": (
            model.outbox_after((0, 0), project_id="P01", show_maintenance=True),
            lambda found: [row.seq for row in found][:2] == [1, 2],
        ),
    }
    for name, (read, holds) in reads.items():
        trips.clear()
        assert holds(await read), name
        assert len(trips) == 1, name


# -- dispatch copies (a log from before §7.1) and poison ---------------------------------------


async def test_dispatch_copies_are_not_applied(db, projector):
    req = job(JobRequested, "T1", 0, 2)
    batch = log_of(requested("T1"), task(TaskStarted, "T1", 1), req) + [dispatch_copy(req, 4)]
    await projector.apply_batch(batch)
    outbox = await rows(db, "SELECT seq, k, event FROM outbox ORDER BY seq, k")
    assert outbox == [(1, 0, "task_update"), (2, 0, "task_update"), (3, 0, "job_update")]
    assert projector.checkpoint == 4


async def test_a_dispatch_copy_alone_creates_no_job(db, projector):
    # Even if the copy is seen first, only the event on the job subject creates the row.
    req = job(JobRequested, "T1", 0, 2)
    await projector.apply_batch(log_of(requested("T1")) + [dispatch_copy(req, 2)])
    assert await ReadModel(db).jobs_of("T1") == []
    assert await rows(db, "SELECT seq FROM outbox") == [(1,)]
    assert await store.get_meta(db, CHECKPOINT) == 2


async def test_poison_messages_become_dead_letters_and_do_not_block(db, projector):
    good = log_of(requested("T1"), task(TaskStarted, "T1", 1))
    bad = [
        Stored(3, "darkroom.task.P01.T1.started", b"{not json", "2030-01-01T00:00:03.000Z"),
        Stored(
            4, "darkroom.photo.P01.k.teleported", b'{"type": "photo.teleported", "v": 1}', "2030-01-01T00:00:04.000Z"
        ),
        Stored(
            5,
            "darkroom.task.P01.T1.started",
            b'{"type": "task.started", "v": 7, "task_id": "T1"}',
            "2030-01-01T00:00:05.000Z",
        ),
    ]
    after = log_of(task(TaskCompleted, "T1", 9), start=6)
    await projector.apply_batch(good + bad + after)

    dead = await ReadModel(db).dead_letters()
    assert [(d.seq, d.subject, d.at) for d in dead] == [
        (5, "darkroom.task.P01.T1.started", "2030-01-01T00:00:05.000Z"),
        (4, "darkroom.photo.P01.k.teleported", "2030-01-01T00:00:04.000Z"),
        (3, "darkroom.task.P01.T1.started", "2030-01-01T00:00:03.000Z"),
    ]
    assert "not valid JSON" in dead[2].reason
    assert "unknown event type 'photo.teleported'" in dead[1].reason
    assert "unsupported version 7" in dead[0].reason
    assert (await ReadModel(db).task("T1")).status == "completed"
    assert projector.checkpoint == 6 and projector.counts.poisoned == 3

    await projector.apply_batch(good + bad + after)  # a replayed delivery adds nothing
    assert len(await ReadModel(db).dead_letters()) == 3 and projector.counts.poisoned == 3


# -- outbox ------------------------------------------------------------------------------------------


async def test_outbox_resume_filters_and_ids(db, projector):
    batch = log_of(
        requested("U1", folder="Shoot"),
        requested("M1", "maintenance", "maintenance", folder="Shoot"),
        requested("O1", project_id="P02", folder="Other"),
        task(TaskStarted, "U1", 1),
        job(JobRequested, "U1", 0, 2),
        job(JobCompleted, "U1", 0, 3, attempt=1),
        job(JobRequested, "U1", 1, 4),
    )
    await projector.apply_batch(batch)
    model = ReadModel(db)

    everything = await model.outbox_after((0, 0), project_id=None, show_maintenance=True)
    assert [r.id for r in everything] == ["1", "2", "3", "4", "5", "6", "7", "7.1"]
    assert [parse_event_id(r.id) for r in everything] == [(r.seq, r.k) for r in everything]

    user_shoot = await model.outbox_after((0, 0), project_id="P01", show_maintenance=False)
    assert [r.id for r in user_shoot] == ["1", "4", "5", "6", "7", "7.1"]

    # Last-Event-ID resume: strictly after the given id, in order, once.
    assert [r.id for r in await model.outbox_after((7, 0), project_id=None, show_maintenance=True)] == ["7.1"]
    assert [r.id for r in await model.outbox_after((6, 0), project_id=None, show_maintenance=True)] == ["7", "7.1"]
    assert await model.outbox_after((7, 1), project_id=None, show_maintenance=True) == []
    assert [r.id for r in await model.outbox_after((0, 0), project_id=None, show_maintenance=True, limit=3)] == [
        "1",
        "2",
        "3",
    ]


def mixed_log(tasks: int) -> list[Stored]:
    """Tasks of a user project, of another project and of maintenance, interleaved."""
    events = []
    for n in range(tasks):
        for task_id, kind, folder, project in (
            (f"U{n}", "upload_postprocess", "Shoot", "P01"),
            (f"M{n}", "maintenance", "Shoot", "P01"),
            (f"O{n}", "upload_postprocess", "Other", "P02"),
        ):
            source = "maintenance" if kind == "maintenance" else "user"
            events += [
                requested(task_id, kind, source, project_id=project, folder=folder),
                task(TaskStarted, task_id, 1, project_id=project),
                job(JobRequested, task_id, 0, 2, kind, source, project_id=project, folder=folder),
                job(JobCompleted, task_id, 0, 3, kind, source, project_id=project, folder=folder, attempt=1),
            ]
    return log_of(*events)


async def test_the_outbox_tail_answers_as_the_file_does(db, projector, monkeypatch):
    monkeypatch.setattr(OutboxTail, "KEEP", 16)
    log = mixed_log(12)
    await projector.apply_batch(log[:5])  # before the tail: only the file has these
    live = ReadModel(db)
    live.follow_projector(projector.checkpoint)
    projector.on_applied = live.applied
    start, sizes = 5, [1, 3, 2, 7]
    while start < len(log):  # batches of several sizes, the tail trimmed on the way
        size = sizes[start % len(sizes)]
        await projector.apply_batch(log[start : start + size])
        start += size
    assert live.tail.since > (5, AFTER_EVERYTHING) and len(live.tail.rows) >= OutboxTail.KEEP

    from_file = ReadModel(db)  # no tail: every answer is a query
    last = projector.checkpoint
    cursors = [(seq, k) for seq in range(0, last + 1, 3) for k in (0, 1, AFTER_EVERYTHING)]
    served = asked = 0
    for cursor in cursors:
        for project, show_maintenance, limit in ((None, True, 500), ("P01", False, 500), ("P02", True, 4)):
            expected = await from_file.outbox_after(
                cursor, project_id=project, show_maintenance=show_maintenance, limit=limit
            )
            assert (
                await live.outbox_after(cursor, project_id=project, show_maintenance=show_maintenance, limit=limit)
                == expected
            ), (cursor, project, show_maintenance)
            served, asked = served + live.tail.covers(cursor), asked + 1
    assert 0 < served < asked  # the tail answered some, the file the rest


async def test_with_a_tail_only_the_projector_advances_the_checkpoint(db, projector):
    """Were the poll to see a commit before the projector's call, an SSE client would look in the
    tail before its rows were there, and then wait for the next change."""
    live, polled = ReadModel(db), ReadModel(db)
    for model in (live, polled):  # polling as ReadModel.open starts it
        model.poll_s = 0.001
        model._poller = asyncio.create_task(model._poll())
    live.follow_projector(0)
    committed = []
    projector.on_applied = lambda seq, outbox: committed.append((seq, outbox))
    await projector.apply_batch(one_task_log()[:2])
    try:
        assert await polled.wait_for(2, timeout=5.0)  # the poll has run, and seen the commit
        await asyncio.sleep(0.01)  # and had time to run at least once more for the model with a tail
        assert live.checkpoint == 0
        live.applied(*committed[0])
        assert live.checkpoint == 2
        assert [
            r.id for r in await live.outbox_after((0, AFTER_EVERYTHING), project_id=None, show_maintenance=True)
        ] == ["1", "2"]
    finally:
        polled._poller.cancel()


async def test_a_commit_made_before_the_projector_could_tell_is_known_once_it_is_followed(db, projector):
    # `up` starts its projector, which applies the stored log at once, before it is wired to tell the
    # read model; nothing may be committed after that, and a reader waiting for it must not wait for ever.
    model = ReadModel(db)
    await projector.apply_batch(one_task_log()[:2])
    model.follow_projector(projector.checkpoint)
    assert await model.wait_for(2, timeout=0.05)


async def test_old_outbox_rows_are_pruned_and_the_horizon_recorded(db, monkeypatch):
    monkeypatch.setattr(engine_module, "PRUNE_EVERY", 1)
    projector = await Projector(db, CODEC, outbox_keep=3).open()
    log = one_task_log()
    for stored in log:
        await projector.apply_batch([stored])
    assert await store.get_meta(db, PRUNED_THROUGH) == 8
    remaining = await ReadModel(db).outbox_after((0, 0), project_id=None, show_maintenance=True)
    assert [r.id for r in remaining] == ["9", "9.1", "10", "11"]
    assert await ReadModel(db).pruned_through() == 8
    # The rows themselves are never pruned.
    assert (await ReadModel(db).task("T1")).status == "completed"


async def test_nothing_is_pruned_before_there_is_enough_history(db, monkeypatch):
    monkeypatch.setattr(engine_module, "PRUNE_EVERY", 1)
    projector = await Projector(db, CODEC, outbox_keep=100).open()
    await projector.apply_batch(one_task_log())
    assert await store.get_meta(db, PRUNED_THROUGH) == 0
    assert len(await rows(db, "SELECT 1 FROM outbox")) == 13


async def test_read_model_knows_the_checkpoint(db, projector, tmp_path):
    await projector.apply_batch(one_task_log()[:3])
    model = await ReadModel.open(tmp_path / "read.sqlite")  # a second connection, as the API has
    try:
        assert model.checkpoint == 3
        assert await model.wait_for(3, timeout=0.01) is True
        assert await model.wait_for(4, timeout=0.05) is False
        await projector.apply_batch(one_task_log()[3:4])
        assert await model.wait_for(4, timeout=2.0) is True
    finally:
        await model.close()


@pytest.mark.parametrize("writer", [False, True])
async def test_a_rebuild_without_relay_has_the_same_rows_and_no_outbox(tmp_path, writer):
    log = one_task_log("T1") + one_task_log("T2")
    log = [Stored(i, s.subject, s.data, s.at) for i, s in enumerate(log, start=1)]
    live = await store.open_db(tmp_path / "live.sqlite")
    rebuilt = await store.open_db(tmp_path / "rebuilt.sqlite")
    try:
        await (await Projector(live, CODEC).open()).apply_batch(log)
        # writer: as replay rebuilds, every row kept and the transactions committed by a writer process
        p = await Rebuild(
            rebuilt, CODEC, 1000 if writer else 0, await Writer.start(tmp_path / "rebuilt.sqlite") if writer else None
        ).open()
        await p.apply_batch(log[:10])
        await p.apply_batch(log[10:])
        await p.settle()
        for table in store.COMPARED:
            assert await rows(live, f"SELECT * FROM {table} ORDER BY 1") == await rows(
                rebuilt, f"SELECT * FROM {table} ORDER BY 1"
            ), table
        assert await rows(rebuilt, "SELECT 1 FROM outbox") == []
        # A client resuming from before the rebuilt checkpoint is told to refetch.
        assert await ReadModel(rebuilt).pruned_through() == len(log) == await store.get_meta(rebuilt, CHECKPOINT)
    finally:
        await live.close()
        await rebuilt.close()


async def test_a_writer_that_fails_says_why_and_leaves_whole_batches(db, tmp_path):
    log = one_task_log()
    writer = await Writer.start(tmp_path / "read.sqlite")
    projector = await Rebuild(db, CODEC, 1000, writer).open()
    await projector.apply_batch(log[:2])
    await writer.write([("INSERT INTO nowhere VALUES (?)", [(1,)])])
    with pytest.raises(WriteError, match="no such table: nowhere"):
        await projector.apply_batch(log[2:])
        await projector.settle()
    await writer.abort()
    assert await store.get_meta(db, CHECKPOINT) == 2


async def test_the_projectors_commits_leave_copying_the_wal_into_the_file_to_a_connection_of_its_own(tmp_path):
    """A checkpoint ends in an fsync: made by the commit that crossed 1,000 WAL pages, it held up
    that commit and every SSE client waiting for it."""
    path = tmp_path / "read.sqlite"
    db = await store.open_db(path)
    checkpoints = await Checkpoints.open(path, db)
    try:
        projector = await Projector(db, CODEC).open()
        before = path.stat().st_size
        for n in range(150):  # a commit per task, some ten pages each: well past 1,000 pages
            await projector.apply_batch(
                [Stored(s.seq + 11 * n, s.subject, s.data, s.at) for s in one_task_log(f"T{n}")]
            )
        assert path.stat().st_size == before  # every commit went to the WAL, none into the file
        await checkpoints.once()
        assert path.stat().st_size > before
        assert len(await rows(db, "SELECT id FROM tasks")) == 150
    finally:
        await checkpoints.close()
        await db.close()
