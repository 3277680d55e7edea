"""services/kernel/events.py: the codec that every service reads the log through."""

from __future__ import annotations

import json

import msgspec
import pytest

from darkroom.kernel.events import (
    ALL_EVENTS,
    BASENAME_EVENTS,
    DEAD_LETTER_EVENTS,
    FOLDER_EVENTS,
    JOB_EVENTS,
    LANE_EVENTS,
    PHOTO_EVENTS,
    PROJECT_EVENTS,
    TASK_EVENTS,
    BasenameClaimed,
    Codec,
    DeadLetterApplied,
    DeadLetterDiscarded,
    DeadLetterRecorded,
    Event,
    FolderRefused,
    JobCanceled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRequested,
    JobRetrying,
    JobStarted,
    LanePaused,
    LaneResumed,
    PhotoAvailabilityChanged,
    PhotoDerivativesUpdated,
    PhotoFileAdded,
    PhotoFileMoved,
    PhotoFilesRestored,
    PhotoFilesTrashed,
    PhotoKeepChanged,
    PhotoMetadataExtracted,
    PhotoMoved,
    PhotoMoveStarted,
    PhotoRemoved,
    PhotoSidecarAdded,
    PoisonEvent,
    ProjectCreated,
    ProjectDeleted,
    ProjectManifestWritten,
    ProjectPurged,
    ProjectRenamed,
    ProjectRestored,
    ProjectTrashPurged,
    Step,
    TaskCanceled,
    TaskCancelRequested,
    TaskCompleted,
    TaskFailed,
    TaskParams,
    TaskRequested,
    TaskStarted,
    type_name,
)

ENVELOPE = dict(
    id="01HZX0000000000000000000AB",
    at="2024-05-01T10:00:00.000Z",
    project_id="p1",
    task_id="t1",
    causation_id="c1",
    source="user",
)
JOB = dict(ENVELOPE, job_id="t1-0", task_type="upload_postprocess", job_type="upload_postprocess", step_index=0)

SAMPLES: list[Event] = [
    TaskRequested(
        **ENVELOPE,
        task_type="upload_postprocess",
        label="Upload Post-Process",
        user_relevant=True,
        steps=[Step("upload_postprocess", 90), Step("manifest_check", 95)],
        items=["DSC01", "DSC02"],
        folder="Shoot 1",
    ),
    TaskStarted(**ENVELOPE),
    TaskCancelRequested(**ENVELOPE),
    TaskCompleted(**ENVELOPE),
    TaskFailed(**ENVELOPE, error="disk full", step_index=1),
    TaskCanceled(**ENVELOPE, step_index=2),
    JobRequested(**JOB, priority=90, lane="priority", items=["DSC01"], folder="Shoot 1"),
    JobStarted(**JOB, attempt=1, worker="w1"),
    JobProgress(**JOB, done=3, total=10),
    JobRetrying(**JOB, attempt=1, error="boom", delay_s=1.5),
    JobCompleted(**JOB, attempt=2),
    JobFailed(**JOB, attempt=3, error="gave up"),
    JobCanceled(**JOB),
    ProjectCreated(**ENVELOPE, name="Shoot 1", folder="Shoot 1"),
    ProjectManifestWritten(**ENVELOPE, version=1),
    ProjectTrashPurged(**ENVELOPE, trash_names=["DSC01 (2).JPG"]),
    PhotoFileAdded(**ENVELOPE, filename="DSC01", name="DSC01.ARW", kind="raw", size=24_000_000, sha256="ab" * 32),
    PhotoMetadataExtracted(
        **ENVELOPE,
        filename="DSC01",
        taken_at="2024-05-01T09:58:12",
        make="SONY",
        model="ILCE-7M3",
        orientation=6,
        width=4000,
        height=6000,
        lens="FE 24-70mm F2.8 GM",
    ),
    PhotoDerivativesUpdated(
        **ENVELOPE, filename="DSC01", thumbnail_status="generated", preview_status="failed", error="truncated"
    ),
    PhotoDerivativesUpdated(
        **ENVELOPE,
        filename="DSC01",
        thumbnail_status="failed",
        preview_status="failed",
        error="No space left on device",
        error_kind="no_space",
        made_from="DSC01.JPG",
        made_from_size=4_000_000,
        made_from_mtime_ns=1_714_557_600_000_000_000,
    ),
    PhotoKeepChanged(**ENVELOPE, filename="DSC01", keep_jpg=False),
    PhotoKeepChanged(**ENVELOPE, filename="DSC01", keep_other=False),
    PhotoSidecarAdded(
        **ENVELOPE, filename="DSC01", name="DSC01.ARW.xmp", size=4_096, sha256="cd" * 32, replaced="DSC01 (2).ARW.xmp"
    ),
    PhotoAvailabilityChanged(
        **ENVELOPE,
        filename="DSC01",
        files=["DSC01.ARW"],
        jpg_available=False,
        raw_available=True,
        other_available=False,
    ),
    PhotoFilesTrashed(
        **ENVELOPE,
        filename="DSC01",
        names=["DSC01.JPG"],
        trash_names=["DSC01 (2).JPG"],
        trashed_at="2024-05-01T10:00:00.000Z",
    ),
    PhotoFilesRestored(**ENVELOPE, filename="DSC01", names=["DSC01.JPG"], trash_names=["DSC01 (2).JPG"]),
    PhotoRemoved(**ENVELOPE, filename="DSC01", reason="no variant left"),
    BasenameClaimed(**ENVELOPE, filename="DSC01"),
    TaskRequested(
        **ENVELOPE,
        task_type="change_commit",
        label="Commit",
        user_relevant=True,
        steps=[Step("file_removal", 100), Step("manifest_check", 95)],
        folder="Shoot 1",
        retry_of="01HZX0000000000000000000AA",
        start_step=1,
    ),
    LanePaused(**ENVELOPE, lane="normal"),
    LaneResumed(**ENVELOPE, lane="normal"),
    DeadLetterRecorded(**ENVELOPE, seq=41, subject="darkroom.job.p1.t1.completed", reason="unknown event type 'x.y'"),
    DeadLetterDiscarded(**ENVELOPE, seq=41),
    DeadLetterApplied(**ENVELOPE, seq=41),
    TaskRequested(
        **ENVELOPE,
        task_type="regenerate",
        label="Regenerate",
        user_relevant=True,
        steps=[Step("regenerate", 70)],
        items=["DSC01"],
        folder="Shoot 1",
        params=TaskParams(what=["metadata"]),
    ),
    JobRequested(**JOB, priority=100, lane="priority", folder="Shoot 1", params=TaskParams(name="Shoot, day 2")),
    ProjectRenamed(**ENVELOPE, name="Shoot: day 2", folder="Shoot day 2", previous_folder="Shoot 1"),
    ProjectDeleted(**ENVELOPE, folder="Shoot 1"),
    ProjectRestored(**ENVELOPE, folder="Shoot 1 (2)"),
    ProjectPurged(**ENVELOPE),
    PhotoMoveStarted(
        **ENVELOPE,
        filename="DSC01",
        to_project_id="p2",
        names=["DSC01.ARW", "DSC01.xmp", ".thumb/DSC01.webp", ".preview/DSC01.jpg"],
    ),
    PhotoFileMoved(**ENVELOPE, filename="DSC01", name="DSC01.ARW", to_project_id="p2"),
    PhotoMoved(**ENVELOPE, filename="DSC01", from_project_id="p0", names=["DSC01.ARW", "DSC01.xmp"]),
    FolderRefused(**ENVELOPE, folder="Shoot: copy", reason="not a folder name Darkroom makes"),
]


def test_samples_cover_every_event_type():
    assert {type(s) for s in SAMPLES} == set(ALL_EVENTS)
    assert set(ALL_EVENTS) == (
        set(TASK_EVENTS)
        | set(JOB_EVENTS)
        | set(PROJECT_EVENTS)
        | set(PHOTO_EVENTS)
        | set(BASENAME_EVENTS)
        | set(LANE_EVENTS)
        | set(DEAD_LETTER_EVENTS)
        | set(FOLDER_EVENTS)
    )


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip(event: Event):
    codec = Codec()
    decoded = codec.decode(codec.encode(event))
    assert type(decoded) is type(event)
    assert decoded == event


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_wire_format_carries_the_contract_envelope(event: Event):
    wire = json.loads(Codec().encode(event))
    # CONTRACT §4: every message is one JSON event with this envelope, nulls included.
    for key in ("id", "type", "v", "at", "project_id", "task_id", "job_id", "causation_id", "source"):
        assert key in wire, key
    assert wire["type"] == event.type == type_name(type(event))
    assert wire["v"] == 1
    assert wire["at"] == "2024-05-01T10:00:00.000Z"


def test_type_names_are_lower_dotted_and_unique():
    names = [type_name(t) for t in ALL_EVENTS]
    assert len(names) == len(set(names))
    kinds = ("task.", "job.", "project.", "photo.", "basename.", "lane.", "dead_letter.", "folder.")
    assert all(n.startswith(kinds) and n == n.lower() for n in names)


def test_defaults_give_unique_ids_and_rfc3339_times():
    a, b = TaskStarted(task_id="t"), TaskStarted(task_id="t")
    assert a.id != b.id and len(a.id) == 26
    assert a.at.endswith("Z") and "T" in a.at
    assert a.source == "system"


def test_an_event_that_gained_a_field_still_decodes():
    # Shapes may gain fields, never lose them (CONTRACT): a newer producer's extra field is tolerated.
    wire = json.loads(Codec().encode(SAMPLES[1]))
    wire["added_later"] = {"x": 1}
    decoded = Codec().decode(json.dumps(wire).encode())
    assert decoded == SAMPLES[1]


def test_photo_events_stored_before_keep_other_made_from_and_lens_decode_with_defaults():
    old_derivatives = (
        b'{"type": "photo.derivatives_updated", "v": 1, "project_id": "p1", "filename": "DSC01", '
        b'"thumbnail_status": "failed", "preview_status": "failed", "error": "truncated"}'
    )
    event = Codec().decode(old_derivatives)
    assert isinstance(event, PhotoDerivativesUpdated) and event.error == "truncated"
    assert (event.error_kind, event.made_from, event.made_from_size, event.made_from_mtime_ns) == (None,) * 4
    old_keep = b'{"type": "photo.keep_changed", "v": 1, "project_id": "p1", "filename": "DSC01", "keep_jpg": false}'
    event = Codec().decode(old_keep)
    assert isinstance(event, PhotoKeepChanged) and (event.keep_jpg, event.keep_raw, event.keep_other) == (
        False,
        None,
        None,
    )
    old_metadata = (
        b'{"type": "photo.metadata_extracted", "v": 1, "project_id": "p1", "filename": "DSC01", '
        b'"make": "SONY", "model": "ILCE-7M3", "width": 4000, "height": 6000}'
    )
    event = Codec().decode(old_metadata)
    assert isinstance(event, PhotoMetadataExtracted) and (event.model, event.lens) == ("ILCE-7M3", None)


# -- poison ---------------------------------------------------------------------------------------


def _wire(event: Event, **changes) -> bytes:
    wire = json.loads(Codec().encode(event))
    wire.update(changes)
    for key, value in list(wire.items()):
        if value is _DROP:
            del wire[key]
    return json.dumps(wire).encode()


_DROP = object()


@pytest.mark.parametrize(
    "data, words",
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"type": "task.started", "v": 1', "not valid JSON"),
        (b'{"type": "photo.teleported", "v": 1}', "unknown event type 'photo.teleported'"),
        (b'{"v": 1, "task_id": "t"}', "unknown event type None"),
        (b'{"type": 42}', "unknown event type 42"),
    ],
)
def test_unreadable_messages_are_poison(data: bytes, words: str):
    with pytest.raises(PoisonEvent) as info:
        Codec().decode(data)
    assert words in str(info.value)


def test_failed_validation_is_poison_naming_the_type_and_field():
    data = _wire(SAMPLES[0], task_type=_DROP)  # task.requested without its required task_type
    with pytest.raises(PoisonEvent, match=r"task\.requested fails validation.*task_type"):
        Codec().decode(data)


def test_wrong_field_type_is_poison():
    data = _wire(SAMPLES[8], done="three")  # job.progress
    with pytest.raises(PoisonEvent, match=r"job\.progress fails validation.*done"):
        Codec().decode(data)


def test_bad_enum_value_is_poison():
    data = _wire(SAMPLES[6], lane="express")
    with pytest.raises(PoisonEvent, match=r"job\.requested fails validation"):
        Codec().decode(data)


@pytest.mark.parametrize("version", [2, 99, "1", None])
def test_future_or_garbled_version_is_poison(version):
    with pytest.raises(PoisonEvent, match=r"task\.started has unsupported version"):
        Codec().decode(_wire(SAMPLES[1], v=version))


def test_an_older_version_without_upcaster_is_poison():
    with pytest.raises(PoisonEvent, match=r"no upcaster for task\.started v0"):
        Codec().decode(_wire(SAMPLES[1], v=0))


def test_a_missing_version_means_v1():
    assert Codec().decode(_wire(SAMPLES[1], v=_DROP)) == SAMPLES[1]


# -- upcasting ------------------------------------------------------------------------------------


class XYv1(Event, tag="x.y", kw_only=True):
    """How `x.y` looked when it was first published."""

    title: str


class XYv2(Event, tag="x.y", kw_only=True):
    """The current `x.y`: `title` became `name`, and `size` was added."""

    v: int = 2
    name: str
    size: int


class XYv3(Event, tag="x.y", kw_only=True):
    v: int = 3
    name: str
    size: int
    tags: list[str]


def _v1_to_v2(raw: dict) -> dict:
    raw = dict(raw)
    raw["name"] = raw.pop("title")
    raw["size"] = 0
    return raw


def _v2_to_v3(raw: dict) -> dict:
    return {**raw, "tags": ["legacy"]}


V1 = msgspec.json.encode(XYv1(id="E1", at="2020-01-01T00:00:00.000Z", task_id="t", title="hello"))


def test_v1_message_decodes_to_the_current_struct_through_its_upcaster():
    assert json.loads(V1)["v"] == 1
    codec = Codec([XYv2], {("x.y", 1): _v1_to_v2})
    event = codec.decode(V1)
    assert isinstance(event, XYv2)
    assert (event.v, event.name, event.size) == (2, "hello", 0)
    # The envelope survives the upcast untouched.
    assert (event.id, event.at, event.task_id) == ("E1", "2020-01-01T00:00:00.000Z", "t")


def test_current_version_is_decoded_without_upcasting():
    calls = []
    codec = Codec([XYv2], {("x.y", 1): lambda raw: calls.append(raw) or _v1_to_v2(raw)})
    current = XYv2(name="n", size=3)
    assert codec.decode(codec.encode(current)) == current
    assert calls == []


def test_upcasters_chain_across_versions():
    codec = Codec([XYv3], {("x.y", 1): _v1_to_v2, ("x.y", 2): _v2_to_v3})
    event = codec.decode(V1)
    assert isinstance(event, XYv3)
    assert (event.v, event.name, event.size, event.tags) == (3, "hello", 0, ["legacy"])


def test_missing_upcaster_is_poison():
    with pytest.raises(PoisonEvent, match=r"no upcaster for x\.y v1"):
        Codec([XYv2]).decode(V1)


def test_a_gap_in_the_upcaster_chain_is_poison():
    with pytest.raises(PoisonEvent, match=r"no upcaster for x\.y v2"):
        Codec([XYv3], {("x.y", 1): _v1_to_v2}).decode(V1)


def test_an_upcaster_that_produces_an_invalid_shape_is_poison():
    codec = Codec([XYv2], {("x.y", 1): lambda raw: raw})  # forgets to rename title
    with pytest.raises(PoisonEvent, match=r"x\.y fails validation"):
        codec.decode(V1)


def test_a_codec_with_extra_types_still_decodes_the_standard_ones():
    codec = Codec([*ALL_EVENTS, XYv2], {("x.y", 1): _v1_to_v2})
    assert codec.decode(codec.encode(SAMPLES[0])) == SAMPLES[0]
    assert isinstance(codec.decode(V1), XYv2)
