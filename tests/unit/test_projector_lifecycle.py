"""The project lifecycle in the read model, on real SQLite files: rename, delete, restore and purge of a
project, a photo that moves between projects, refused folders; the same rows live and rebuilt."""

from __future__ import annotations

import pytest

from darkroom.kernel import subjects
from darkroom.kernel.events import (
    Codec,
    Event,
    FolderRefused,
    PhotoDerivativesUpdated,
    PhotoFileAdded,
    PhotoFileMoved,
    PhotoFilesTrashed,
    PhotoKeepChanged,
    PhotoMoved,
    PhotoMoveStarted,
    ProjectCreated,
    ProjectDeleted,
    ProjectPurged,
    ProjectRenamed,
    ProjectRestored,
)
from darkroom.kernel.messages import Stored
from darkroom.kernel.photos import photo_key
from darkroom.projector import store
from darkroom.projector.engine import Projector
from darkroom.projector.queries import ReadModel
from darkroom.replay.engine import Rebuild
from darkroom.replay.rebuild import compare

CODEC = Codec()
A, B = "PA", "PB"


def at(n: int) -> str:
    return f"2001-02-03T04:05:{n:02d}.000Z"


def lifecycle() -> list[Event]:
    n = iter(range(60))
    return [
        ProjectCreated(project_id=A, name="A", folder="A", at=at(next(n))),
        ProjectCreated(project_id=B, name="B", folder="B", at=at(next(n))),
        PhotoFileAdded(project_id=A, filename="P1", name="P1.JPG", kind="jpg", size=1, at=at(next(n))),
        PhotoFileAdded(project_id=A, filename="P1", name="P1.ARW", kind="raw", size=1, at=at(next(n))),
        PhotoFileAdded(project_id=A, filename="P2", name="P2.JPG", kind="jpg", size=1, at=at(next(n))),
        PhotoDerivativesUpdated(
            project_id=A,
            filename="P1",
            thumbnail_status="generated",
            preview_status="generated",
            made_from="P1.JPG",
            at=at(next(n)),
        ),
        PhotoKeepChanged(project_id=A, filename="P1", keep_raw=False, at=at(next(n))),
        PhotoMoveStarted(project_id=A, filename="P1", to_project_id=B, names=["P1.ARW", "P1.JPG"], at=at(next(n))),
        PhotoFileMoved(project_id=A, filename="P1", name="P1.ARW", to_project_id=B, at=at(next(n))),
        PhotoFileMoved(project_id=A, filename="P1", name="P1.JPG", to_project_id=B, at=at(next(n))),
        PhotoMoved(project_id=B, filename="P1", from_project_id=A, names=["P1.ARW", "P1.JPG"], at=at(next(n))),
        PhotoMoved(project_id=B, filename="P1", from_project_id=A, names=["P1.ARW", "P1.JPG"], at=at(next(n))),
        ProjectRenamed(project_id=B, name="B: day 2", folder="B day 2", previous_folder="B", at=at(next(n))),
        FolderRefused(folder="Odd: one", reason="not a name Darkroom serves", at=at(next(n))),
        FolderRefused(folder="Later", reason="a copy", at=at(next(n))),
        ProjectCreated(project_id="PC", name="Later", folder="Later", at=at(next(n))),  # adopted after all
        PhotoFilesTrashed(
            project_id=A, filename="P2", names=["P2.JPG"], trash_names=["P2.JPG"], trashed_at=at(20), at=at(next(n))
        ),
        ProjectDeleted(project_id=A, folder="A", at=at(next(n))),
        ProjectCreated(project_id="PD", name="A", folder="A", at=at(next(n))),  # the folder name is free again
        ProjectRestored(project_id=A, folder="A (2)", at=at(next(n))),
        ProjectDeleted(project_id=B, folder="B day 2", at=at(next(n))),
        ProjectPurged(project_id=B, at=at(next(n))),
        PhotoKeepChanged(project_id=B, filename="P1", keep_raw=True, at=at(next(n))),  # late: changes nothing
    ]


def log(events: list[Event]) -> list[Stored]:
    return [Stored(seq, subjects.subject_for(e), CODEC.encode(e), at(seq % 60)) for seq, e in enumerate(events, 1)]


async def rows(db, sql: str, args=()) -> list[tuple]:
    async with db.execute(sql, args) as cursor:
        return list(await cursor.fetchall())


@pytest.fixture
async def live(tmp_path):
    db = await store.open_db(tmp_path / "live.sqlite")
    yield db
    await db.close()


async def test_each_step_of_the_lifecycle_as_a_reader_sees_it(live):
    projector = await Projector(live, CODEC).open()
    stored = log(lifecycle())
    model = ReadModel(live)
    for end in (11, 13, 16, 21, len(stored)):  # batches that end between the steps
        await projector.apply_batch(stored[:end])
        if end == 11:  # P1 arrived in B with its decision and derivatives; A keeps P2
            [p1] = await model.all_photos(B)
            assert p1.id == photo_key(B, "P1") and p1.project_id == B
            assert (p1.files, p1.keep_raw, p1.thumbnail_status, p1.made_from, p1.moving_to) == (
                ["P1.ARW", "P1.JPG"],
                False,
                "generated",
                "P1.JPG",
                None,
            )
            assert [p.filename for p in await model.all_photos(A)] == ["P2"]
            a, b = await model.project(A), await model.project(B)
            assert (a.photo_count, a.pending_photos, b.photo_count, b.pending_photos, b.pending_raw) == (1, 0, 1, 1, 1)
        if end == 13:
            assert (await model.project_by_folder("B day 2")).id == B and await model.project_by_folder("B") is None
        if end == 16:
            assert [(f.folder, f.reason) for f in await model.refused_folders()] == [
                ("Odd: one", "not a name Darkroom serves")
            ]
        if end == 21:
            assert [p.id for p in await model.deleted_projects()] == [B]
            assert (await model.project_by_folder("A (2)")).id == A
            assert {p.folder for p in await model.projects()} == {"A", "A (2)", "Later"}
    assert await model.project(B) is None and await model.photos_named(["P1"]) == []  # purged: the basename is free
    assert await rows(live, "SELECT trash_name FROM trash") == [("P2.JPG",)]  # A's trash came back with it
    outbox = [(e, d) for e, d in await rows(live, "SELECT event, data FROM outbox WHERE event LIKE 'project_%'")]
    assert [e for e, _ in outbox] == ["project_renamed", "project_deleted", "project_restored", "project_deleted"]
    assert '"previous_folder":"B"' in outbox[0][1]


async def test_a_rebuild_keeping_every_row_in_memory_makes_the_same_rows(live, tmp_path):
    stored = log(lifecycle())
    projector = await Projector(live, CODEC).open()
    for one in stored:  # live: one event a batch, every row read back from the file
        await projector.apply_batch([one])
    rebuilt = await store.open_db(tmp_path / "rebuilt.sqlite")
    try:
        again = await Rebuild(rebuilt, CODEC, 10_000).open()
        await again.apply_batch(stored)
        assert await compare(live, rebuilt) == []
    finally:
        await rebuilt.close()


async def test_photos_named_finds_each_of_more_names_than_one_statement_takes(live):
    # SQLite takes a bounded number of parameters: an upload of a whole card asks in statements of 500.
    projector = await Projector(live, CODEC).open()
    added = [
        PhotoFileAdded(project_id=A, filename=f"P{i:04d}", name=f"P{i:04d}.JPG", kind="jpg", size=1, at=at(1))
        for i in range(1001)
    ]
    await projector.apply_batch(log([ProjectCreated(project_id=A, name="A", folder="A", at=at(0)), *added]))
    asked = [f"P{i:04d}" for i in range(0, 1001, 2)] + ["P9999"]
    found = await ReadModel(live).photos_named(asked[::-1])
    assert sorted(p.filename for p in found) == asked[:-1]
    assert {p.project_id for p in found} == {A}
