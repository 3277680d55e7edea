"""Photos as a photographer shoots them, through the whole system: RAW alone, 16 bits, huge."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageCms

from tests.conftest import System, create_project, eventually, upload
from tests.imagefiles import dng, solid_png
from tests.integration.test_photos import _asset, _photos, _start


async def test_a_raw_alone_gets_thumbnail_preview_and_metadata_from_its_embedded_preview(system: System) -> None:
    await _start(system)
    project = await create_project(system, "RAW only")
    status, body = await upload(
        system,
        project["folder"],
        [
            (
                "DSC01.DNG",
                dng(
                    Image.new("RGB", (640, 480), (30, 90, 200)),
                    orientation=8,
                    make="Canon",
                    model="EOS R5",
                    taken="2023:09:14 07:05:00",
                    lens="RF24-105mm F4 L IS USM",
                ),
            ),
            ("DSC02.dng", dng()),  # a RAW with no embedded preview
        ],
    )
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    photos = await _photos(system, project["folder"])
    shot = photos["DSC01"]
    assert shot["thumbnail_status"] == shot["preview_status"] == "generated" and shot["raw_available"]
    assert (shot["make"], shot["model"], shot["taken_at"], shot["orientation"], shot["lens"]) == (
        "Canon",
        "EOS R5",
        "2023-09-14T07:05:00",
        8,
        "RF24-105mm F4 L IS USM",
    )
    status, data, headers = await _asset(system, project["folder"], "thumbnail", "DSC01")
    assert status == 200 and Image.open(io.BytesIO(data)).size == (480, 640)  # turned upright
    status, data, _ = await _asset(system, project["folder"], "preview", "DSC01")
    assert status == 200 and Image.open(io.BytesIO(data)).size == (480, 640)
    bare = photos["DSC02"]
    assert bare["thumbnail_status"] == bare["preview_status"] == "not_supported"
    assert bare["error"] == "the RAW file has no embedded preview"


async def test_a_16_bit_png_keeps_its_tones_in_an_srgb_thumbnail(system: System, tmp_path: Path) -> None:
    await _start(system)
    project = await create_project(system, "Deep")
    grey = tmp_path / "grey.png"
    Image.new("I;16", (400, 300), 0x8000).save(grey)  # mid grey, 16 bits
    status, body = await upload(system, project["folder"], [("G1.png", grey.read_bytes())])
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    for kind in ("thumbnail", "preview"):
        status, data, _ = await _asset(system, project["folder"], kind, "G1")
        image = Image.open(io.BytesIO(data))
        low, high = image.convert("L").getextrema()
        assert status == 200 and 127 <= low <= high <= 129, (low, high)  # mid grey, not clipped to white
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        assert "sRGB" in ImageCms.getProfileDescription(profile)


async def test_processing_max_megapixels_is_the_limit_with_darkrooms_own_words(system: System, tmp_path: Path) -> None:
    await _start(system)  # the default limit, 250 megapixels
    project = await create_project(system, "Panoramas")
    under = solid_png(tmp_path / "under.png", 15000, 12000, b"\x60", colour_type=0)  # 180 MP: Pillow alone refuses
    over = solid_png(tmp_path / "over.png", 16250, 16000, b"\x60", colour_type=0)  # 260 MP
    status, body = await upload(
        system, project["folder"], [("P1.png", under.read_bytes()), ("P2.png", over.read_bytes())]
    )
    assert status == 201, body
    assert (await system.wait_task(body["task_id"], timeout=60))["task"]["status"] == "completed"
    photos = await _photos(system, project["folder"])
    assert photos["P1"]["thumbnail_status"] == "generated" and photos["P1"]["width"] == 15000
    assert photos["P2"]["thumbnail_status"] == "failed"
    assert photos["P2"]["error"] == (
        "the image is 16250x16000 (260.0 megapixels), over the limit of processing.max_megapixels = 250"
    )


async def test_a_jpg_removed_by_hand_beside_its_raw_leaves_derivatives_from_the_raw(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Pair")
    red, blue = Image.new("RGB", (600, 400), (220, 30, 30)), Image.new("RGB", (600, 400), (30, 30, 220))
    jpeg = io.BytesIO()
    red.save(jpeg, "JPEG")
    status, body = await upload(system, project["folder"], [("P1.jpg", jpeg.getvalue()), ("P1.DNG", dng(blue))])
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    thumbnail = system.data_dir / "projects" / project["folder"] / ".thumb" / "P1.webp"
    assert Image.open(thumbnail).convert("RGB").getpixel((10, 10))[0] > 150  # from the JPG
    (system.data_dir / "projects" / project["folder"] / "P1.jpg").unlink()
    status, body, _ = await system.request("POST", f"/api/projects/{project['folder']}/tasks", {"type": "maintenance"})
    assert status == 202, body
    await system.wait_task(body["task"]["id"], timeout=30)

    async def from_the_raw():
        photo = (await _photos(system, project["folder"]))["P1"]
        return photo if photo["thumbnail_status"] == "generated" and photo["files"] == ["P1.DNG"] else None

    photo = await eventually(from_the_raw, 30, "P1's derivatives from its RAW's preview")
    assert photo["preview_status"] == "generated" and photo["make"] == "Darkroom"
    status, data, _ = await _asset(system, project["folder"], "thumbnail", "P1")
    assert status == 200 and Image.open(io.BytesIO(data)).convert("RGB").getpixel((10, 10))[2] > 150  # blue
