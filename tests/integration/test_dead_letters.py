"""Dead letters: listed with why, discarded (an event), and applied once a version that reads them
ships, through the API and `darkroom dead-letters`; every rebuild of the log sets aside what the live
read model set aside, so `replay --verify` holds before and after."""

from __future__ import annotations

from darkroom import audit
from darkroom.kernel.events import ALL_EVENTS, Codec, ProjectCreated
from darkroom.projector.store import read_model_path
from darkroom.replay.rebuild import replay
from darkroom.runtime import Runtime
from tests.conftest import SSEClient, System, eventually, run_cli


class ProjectCreatedV2(ProjectCreated, tag="project.created", kw_only=True):
    """project.created as a later version writes it."""

    v: int = 2
    note: str = ""


def _project_created_v1_to_v2(raw: dict) -> dict:
    return {**raw, "note": ""}


# The later version: it reads v2, and v1 through its upcaster.
LATER = Codec(
    [ProjectCreatedV2 if t is ProjectCreated else t for t in ALL_EVENTS],
    {("project.created", 1): _project_created_v1_to_v2},
)


async def _listed(system: System) -> dict[int, dict]:
    status, body, _ = await system.request("GET", "/api/dead-letters")
    assert status == 200, body
    return {letter["seq"]: letter for letter in body["dead_letters"]}


async def _upgrade(system: System) -> Runtime:
    """Every service stopped and started again as the later version."""
    for runtime in list(system.runtimes):
        await runtime.stop()
    system.runtimes.clear()
    return await system.start(codec=LATER)


async def test_dead_letters_are_discarded_or_applied_once_readable_and_replay_agrees_throughout(
    system: System, tmp_path
) -> None:
    await system.start()
    later = ProjectCreatedV2(project_id="P2", name="From a later version", folder="From a later version", note="x")
    async with SSEClient(system.http, f"{system.url}/api/events") as live:
        seq = (await system.bus.js.publish("darkroom.project.P2.created", LATER.encode(later))).seq
        noise = (await system.bus.js.publish("darkroom.project.P3.created", b"{not json")).seq
        junk = (await system.bus.js.publish("darkroom.project.P4.created", b'{"type": "project.created"}')).seq
        await live.wait_for(lambda m: m[1] == "dead_letter" and m[2]["seq"] == junk, what="the third dead letter")
        letters = await _listed(system)
        assert sorted(letters) == [seq, noise, junk]
        assert letters[seq] == {
            "seq": seq,
            "subject": "darkroom.project.P2.created",
            "at": letters[seq]["at"],
            "reason": "project.created has unsupported version 2 (current 1)",
            "readable": False,
        }
        assert [m[0] for m in live.messages if m[1] == "dead_letter"] == [str(seq), str(noise), str(junk)]

        # Each is recorded in the log as set aside, once.
        async def all_recorded():
            found = await system.log("darkroom.dead_letter.*.recorded")
            return found if len(found) >= 3 else None

        recorded = await eventually(all_recorded, what="the three recorded")
        assert [(e["seq"], e["subject"], e["reason"]) for _, _, e in recorded] == [
            (s, letters[s]["subject"], letters[s]["reason"]) for s in (seq, noise, junk)
        ]

        status, body, _ = await system.request("POST", f"/api/dead-letters/{seq}/apply")
        assert (status, body["error"]) == (
            409,
            f"the message at sequence {seq} is still unreadable: project.created has unsupported version 2 (current 1)",
        )
        code, out, err = await run_cli(system, "dead-letters", "apply", str(seq))
        assert code == 1 and "still unreadable" in err, (out, err)

        status, body, headers = await system.request("POST", f"/api/dead-letters/{noise}/discard")
        assert (status, body) == (200, {"discarded": noise})
        await live.wait_for(lambda m: m[1] == "dead_letter_removed", what="dead_letter_removed")
        assert [m[2] for m in live.messages if m[1] == "dead_letter_removed"] == [{"seq": noise, "how": "discarded"}]
        code, out, err = await run_cli(system, "dead-letters", "discard", str(junk))
        assert code == 0 and out.startswith(f"dead letter {junk} discarded; seq "), err
    assert sorted(await _listed(system)) == [seq]
    for path in (
        f"/api/dead-letters/{noise}/discard",
        "/api/dead-letters/999999/discard",
        "/api/dead-letters/abc/apply",
    ):
        status, body, _ = await system.request("POST", path)
        assert status == 404 and body["error"].startswith("no dead letter at sequence"), (path, body)
    code, out, err = await run_cli(system, "dead-letters")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == [str(seq)]

    # A later version ships: it reads the message, and yet rebuilds the read model as the live one has it.
    await _upgrade(system)
    letters = await _listed(system)
    assert sorted(letters) == [seq] and letters[seq]["readable"] is True
    result = await replay(system.bus, tmp_path / "before.sqlite", read_model_path(system.data_dir), verify=True)
    assert result.differences == []
    status, body, _ = await system.request("GET", "/api/projects")
    assert [p["project_id"] for p in body["projects"]] == []

    status, body, _ = await system.request("POST", f"/api/dead-letters/{seq}/apply")
    assert (status, body) == (200, {"applied": seq})
    status, body, _ = await system.request("GET", "/api/projects")
    assert [(p["project_id"], p["name"]) for p in body["projects"]] == [("P2", "From a later version")]
    assert await _listed(system) == {}
    result = await replay(system.bus, tmp_path / "after.sqlite", read_model_path(system.data_dir), verify=True)
    assert result.differences == []

    entries = await audit.dead_letter_history(system.bus, seq)
    assert [(e.event.type, e.event.v, e.event.source) for e in entries] == [
        ("project.created", 2, "system"),
        ("dead_letter.recorded", 1, "system"),
        ("dead_letter.applied", 1, "user"),
    ]
    code, out, err = await run_cli(system, "audit", "dead-letter", str(noise))
    assert code == 0, err
    rows = out.splitlines()[1:]
    assert "(dead letter)" in rows[0] and "not valid JSON" in rows[0]
    assert [r.split()[2] for r in rows[1:]] == ["dead_letter.recorded", "dead_letter.discarded"]


async def test_a_dead_letter_set_aside_before_a_crash_is_recorded_when_the_projector_starts(system: System) -> None:
    runtime = await system.start()
    seq = (await system.bus.js.publish("darkroom.project.P3.created", b"{not json")).seq
    await eventually(lambda: system.log("darkroom.dead_letter.*.recorded"), what="the dead letter recorded")
    # As if the projector had stopped between writing its batch and recording what it set aside.
    assert await system.bus.jsm.purge_stream("DARKROOM", subject="darkroom.dead_letter.>")
    assert await system.log("darkroom.dead_letter.>") == []
    await runtime.stop()
    system.runtimes.clear()
    await system.start()
    ((_, _, event),) = await system.log("darkroom.dead_letter.>")
    assert (event["type"], event["seq"]) == ("dead_letter.recorded", seq)
