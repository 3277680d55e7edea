"""Versions: an event type defined here at v1 and v2; every reader of the log upcasts a v1 message.

`test.noted` v1 had `text`; v2 renamed it `note` and added `words`. A v1 message is published as an
old producer would, on a task's subjects, and the projector, the orchestrator's rebuild of the
task, replay --verify and audit all read it as v2 through the upcaster, none as a dead letter.
"""

from __future__ import annotations

import asyncio

import msgspec

from darkroom import audit
from darkroom.kernel.events import ALL_EVENTS, Codec, Event
from darkroom.projector.store import read_model_path
from darkroom.replay.rebuild import replay
from tests.conftest import System, cli_env, darkroom_cli, eventually


class NotedV1(Event, tag="test.noted", kw_only=True):
    """How `test.noted` was first published."""

    text: str


class Noted(Event, tag="test.noted", kw_only=True):
    """The current `test.noted`."""

    v: int = 2
    note: str
    words: int


upcasts: list[str] = []


def noted_v1_to_v2(raw: dict) -> dict:
    upcasts.append(raw["id"])
    raw = dict(raw)
    text = raw.pop("text")
    return {**raw, "note": text, "words": len(text.split())}


def _codec() -> Codec:
    return Codec([*ALL_EVENTS, Noted], {("test.noted", 1): noted_v1_to_v2})


async def test_every_reader_upcasts_a_v1_event_to_v2(system: System, tmp_path) -> None:
    upcasts.clear()
    runtime = await system.start(codec=_codec())
    task = await system.start_task("three")
    await system.wait_task(task["id"])
    subject = f"darkroom.test._.{task['id']}.noted"
    old = NotedV1(id="01NOTEDV1000000000000000AA", task_id=task["id"], source="user", text="shot list is final")
    assert msgspec.json.decode(msgspec.json.encode(old))["v"] == 1
    v1_seq = (await system.bus.js.publish(subject, msgspec.json.encode(old))).seq
    current = Noted(id="01NOTEDV2000000000000000AA", task_id=task["id"], source="user", note="two words", words=2)
    v2_seq = (await system.bus.js.publish(subject, runtime.codec.encode(current))).seq

    # The projector: applied (an extension type changes no row), no dead letter.
    projector = runtime.projector.projector
    await eventually(lambda: _reached(projector.checkpoint, v2_seq), 10, "the projector to apply both")
    assert upcasts == [old.id]
    assert projector.counts.poisoned == 0
    assert await runtime.read.dead_letters() == []

    # The orchestrator, rebuilding the task from its subjects, reads it too and the task is intact.
    state = await runtime.orchestrator.load(None, task["id"])
    assert upcasts == [old.id] * 2
    assert state is not None and state.status == "completed" and state.seen_seq == v2_seq

    # Replay --verify: the rebuilt read model equals the live one, with no dead letter either.
    result = await replay(system.bus, tmp_path / "rebuilt.sqlite", read_model_path(system.data_dir), verify=True)
    assert result.differences == [] and result.checkpoint == v2_seq
    assert upcasts == [old.id] * 3

    # Audit shows it as v2, in its place in the task's history.
    entries = await audit.task_history(system.bus, task["id"])
    assert upcasts == [old.id] * 4
    noted = [e for e in entries if e.event is not None and e.event.type == "test.noted"]
    assert [(e.seq, e.event.v, e.event.note, e.event.words) for e in noted] == [
        (v1_seq, 2, "shot list is final", 4),
        (v2_seq, 2, "two words", 2),
    ]
    assert all(e.event is not None for e in entries)
    line = audit.json_lines(entries[-2:-1])
    assert msgspec.json.decode(line) == {
        "seq": v1_seq,
        "subject": subject,
        "id": old.id,
        "type": "test.noted",
        "v": 2,
        "at": old.at,
        "project_id": None,
        "task_id": task["id"],
        "job_id": None,
        "causation_id": None,
        "source": "user",
        "note": "shot list is final",
        "words": 4,
    }
    row = audit.table(entries).splitlines()[-2]
    assert "test.noted v2" in row and "note=shot list is final, words=4" in row

    # A reader without the type and its upcaster (the stock `darkroom audit`) sets it aside instead.
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("audit", "task", task["id"], "--nats", system.server.url, "--data", str(system.data_dir)),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err
    tail = out.decode().splitlines()[-2:]
    assert all("(dead letter)" in r and "unknown event type 'test.noted'" in r for r in tail), tail


async def _reached(checkpoint: int, seq: int) -> bool:
    return checkpoint >= seq
