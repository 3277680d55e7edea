"""Every variant can be culled (HEIC, PNG, TIFF as JPG and RAW), and .xmp sidecars travel with their photo."""

from __future__ import annotations

import io

from PIL import Image

from darkroom.audit import photo_history, row
from tests.conftest import SSEClient, System, create_project, photo_bytes, photos_of, shoot, start_shipped, upload

XMP = b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"/>'


async def _keep(system: System, folder: str, **flags) -> dict:
    updates = [{"filename": name, **value} for name, value in flags.items()]
    status, body, _ = await system.request("PUT", f"/api/projects/{folder}/keep", {"updates": updates})
    assert status == 200, body
    return body


async def _commit(system: System, folder: str) -> dict:
    status, body, _ = await system.request("POST", f"/api/projects/{folder}/commit-changes")
    assert status == 202, body
    assert (await system.wait_task(body["task_id"], timeout=30))["task"]["status"] == "completed"
    return body


async def _restore(system: System, folder: str, *names: str) -> dict:
    status, body, _ = await system.request("POST", f"/api/projects/{folder}/trash/restore", {"names": list(names)})
    assert status == 200, body
    if body["task_id"]:
        await system.wait_task(body["task_id"], timeout=30)
    return body


def _heic(size: tuple[int, int]) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, "HEIF")
    return buffer.getvalue()


async def test_a_heic_can_be_unticked_committed_and_restored(system: System) -> None:
    await start_shipped(system)
    heic = _heic((300, 500))
    project, disk = await shoot(
        system,
        "Phone",
        [("IMG1.JPG", photo_bytes("orientation/landscape_1.jpg")), ("IMG1.HEIC", heic), ("IMG2.HEIC", heic)],
    )
    folder = project["folder"]
    photos = await photos_of(system, folder)
    assert photos["IMG1"]["keep_other"] and photos["IMG2"]["keep_other"]  # a variant that appears is kept
    async with SSEClient(system.http, f"{system.url}/api/events?project={folder}") as client:
        assert (await _keep(system, folder, IMG1={"keep_other": False}, IMG2={"keep_other": False}))["updated"] == 2
        item = await client.wait_for(
            lambda m: m[1] == "item" and m[2]["photo"]["filename"] == "IMG2" and m[2]["photo"]["keep_other"] is False,
            what="IMG2 unticked",
        )
        pending = await client.wait_for(
            lambda m: m[1] == "pending_changes" and m[2]["pending"]["other"] == 2, what="two pending other variants"
        )
    assert item[2]["photo"]["other_available"] and pending[2]["pending"] == {
        "photos": 2,
        "jpg": 0,
        "raw": 0,
        "other": 2,
    }
    _, view, _ = await system.request("GET", f"/api/projects/{folder}")
    assert view["counts"]["pending_other"] == 2 and view["project"]["pending"]["other"] == 2

    commit = await _commit(system, folder)
    assert commit["pending"] == {"photos": 2, "jpg": 0, "raw": 0, "other": 2}
    assert (disk / ".trash" / "IMG1.HEIC").read_bytes() == heic and not (disk / "IMG1.HEIC").exists()
    assert (disk / "IMG1.JPG").exists() and not (disk / "IMG2.HEIC").exists()
    photos = await photos_of(system, folder)
    assert set(photos) == {"IMG1"} and photos["IMG1"]["files"] == ["IMG1.JPG"]
    assert photos["IMG1"]["thumbnail_status"] == "generated" and not photos["IMG1"]["other_available"]
    _, view, _ = await system.request("GET", f"/api/projects/{folder}")
    assert view["counts"]["pending_photos"] == view["counts"]["pending_other"] == 0

    await _restore(system, folder, "IMG1.HEIC", "IMG2.HEIC")
    photos = await photos_of(system, folder)
    assert photos["IMG1"]["other_available"] and photos["IMG1"]["keep_other"]
    assert photos["IMG2"]["keep_other"] and photos["IMG2"]["thumbnail_status"] == "generated"
    assert (disk / "IMG2.HEIC").read_bytes() == heic


async def test_revert_ticks_the_other_variant_again(system: System) -> None:
    await start_shipped(system)
    project, _ = await shoot(system, "Revert", [("R1.heic", _heic((200, 100)))])
    await _keep(system, project["folder"], R1={"keep_other": False})
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/revert-changes")
    assert status == 200 and body["updated"] == 1
    assert (await photos_of(system, project["folder"]))["R1"]["keep_other"] is True
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/commit-changes")
    assert status == 200 and body["task_id"] is None


async def test_an_xmp_uploaded_after_its_photo_travels_with_it_and_is_never_a_photo(system: System) -> None:
    await start_shipped(system)
    project, disk = await shoot(system, "Sidecars", [("S1.JPG", photo_bytes("cameras/Canon_40D.jpg"))])
    folder = project["folder"]

    status, body = await upload(system, folder, [("S1.xmp", XMP)])
    assert status == 201, body
    assert body["files"] == [{"name": "S1.xmp", "filename": "S1", "kind": "sidecar", "size": len(XMP)}]
    assert body["task_id"] is None and body["errors"] == []
    assert (disk / "S1.xmp").read_bytes() == XMP
    photos = await photos_of(system, folder)
    assert set(photos) == {"S1"} and photos["S1"]["files"] == ["S1.JPG"]

    await _keep(system, folder, S1={"keep_jpg": False})
    await _commit(system, folder)
    assert (disk / ".trash" / "S1.xmp").read_bytes() == XMP and not (disk / "S1.xmp").exists()
    assert await photos_of(system, folder) == {}
    restored = await _restore(system, folder, "S1.JPG")
    assert sorted(restored["restored"]) == ["S1.JPG", "S1.xmp"]
    assert (disk / "S1.xmp").read_bytes() == XMP

    status, sweep, _ = await system.request("POST", f"/api/projects/{folder}/tasks", {"type": "maintenance"})
    assert (await system.wait_task(sweep["task"]["id"], timeout=30))["task"]["status"] == "completed"
    photos = await photos_of(system, folder)
    assert set(photos) == {"S1"} and photos["S1"]["files"] == ["S1.JPG"]
    assert (disk / "S1.xmp").read_bytes() == XMP


async def test_sidecars_come_with_their_photo_in_any_order_and_never_alone(system: System) -> None:
    await start_shipped(system)
    project = await create_project(system, "With")
    folder = project["folder"]
    disk = system.data_dir / "projects" / folder
    edited = XMP.replace(b"/>", b' rating="5"/>')
    status, body = await upload(
        system,
        folder,
        [
            ("W1.ARW.xmp", XMP),
            ("W1.ARW", b"RAWDATA" * 100),
            ("W1.xmp", XMP),
            ("W2.xmp", XMP),
            ("W3.xmp", b"rating=5"),
            ("W1.JPG", photo_bytes("cameras/Nikon_D70.jpg")),
        ],
    )
    assert status == 201, body
    assert sorted((f["name"], f["kind"]) for f in body["files"]) == [
        ("W1.ARW", "raw"),
        ("W1.ARW.xmp", "sidecar"),
        ("W1.JPG", "jpg"),
        ("W1.xmp", "sidecar"),
    ]
    errors = {e["name"]: e["error"] for e in body["errors"]}
    assert set(errors) == {"W2.xmp", "W3.xmp"}
    assert "no photo 'W2'" in errors["W2.xmp"] and "not an XMP file" in errors["W3.xmp"]
    await system.wait_task(body["task_id"], timeout=30)
    assert not (disk / "W2.xmp").exists() and not (disk / "W3.xmp").exists()
    assert not [p for p in disk.iterdir() if p.name.startswith(".upload-")]
    assert set(await photos_of(system, folder)) == {"W1"}

    status, body = await upload(system, folder, [("W9.xmp", XMP)])
    assert status == 400 and "no photo 'W9'" in body["error"]
    status, body = await upload(system, folder, [("W1.xmp", edited)])
    assert status == 400 and "overwrite=true" in body["error"]  # as for a photo file
    status, body = await upload(system, folder, [("W1.xmp", edited)], overwrite=True)
    assert status == 201 and [f["name"] for f in body["files"]] == ["W1.xmp"]
    assert (disk / "W1.xmp").read_bytes() == edited
    _, trash, _ = await system.request("GET", f"/api/projects/{folder}/trash")
    assert [(e["name"], e["original"], e["filename"]) for e in trash["trash"]] == [("W1.xmp", "W1.xmp", "W1")]
    history = [row(entry) for entry in await photo_history(system.bus, folder, "W1")]
    assert [r[-1] for r in history if r[2] == "photo.sidecar_added"] == [
        f"W1: sidecar W1.ARW.xmp ({len(XMP)} bytes)",
        f"W1: sidecar W1.xmp ({len(XMP)} bytes)",
        f"W1: sidecar W1.xmp ({len(edited)} bytes), replaced the old one (now W1.xmp)",
    ]
