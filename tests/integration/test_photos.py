"""Upload, derivatives, metadata, keep flags and assets, with real camera JPEGs."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path

from PIL import Image

from darkroom.kernel.folders import projects_root
from tests.conftest import PHOTOS, SSEClient, System, create_project, eventually, photo_bytes, upload
from tests.residency import cached_pages

DEFAULT_DEFINITIONS = None  # the shipped schemas/task_definitions.json


async def _start(system: System, **settings) -> None:
    from darkroom.kernel.definitions import load_definitions
    from darkroom.worker.handlers import BUILTIN

    await system.start(job_types=BUILTIN, definitions=load_definitions(), **settings)


def _image(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


async def _photos(system: System, folder: str) -> dict[str, dict]:
    status, body, _ = await system.request("GET", f"/api/projects/{folder}/photos?limit=1000")
    assert status == 200, body
    return {p["filename"]: p for p in body["photos"]}


async def _asset(system: System, folder: str, kind: str, filename: str) -> tuple[int, bytes, dict]:
    async with system.http.get(f"{system.url}/api/projects/{folder}/{kind}/{filename}") as response:
        return response.status, await response.read(), dict(response.headers)


async def test_orientation_and_exif_come_out_right_for_real_camera_files(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Orientation")
    files = sorted((PHOTOS / "orientation").glob("*.jpg")) + sorted((PHOTOS / "cameras").glob("*.jpg"))
    status, body = await upload(system, project["folder"], [(f.name, f.read_bytes()) for f in files])
    assert status == 201 and not body["errors"] and len(body["files"]) == len(files)
    view = await system.wait_task(body["task_id"], timeout=60)
    assert view["task"]["status"] == "completed", view
    assert [j["type"] for j in view["jobs"]] == ["upload_postprocess", "manifest_check", "folder_check"]
    photos = await _photos(system, project["folder"])
    for f in files:
        photo = photos[f.stem]
        assert photo["thumbnail_status"] == photo["preview_status"] == "generated", photo
        for kind in ("thumbnail", "preview"):
            status, data, headers = await _asset(system, project["folder"], kind, f.stem)
            assert status == 200
            image = _image(data)
            assert image.format == ("WEBP" if kind == "thumbnail" else "JPEG")
            if f.stem.startswith("landscape"):
                assert image.width > image.height, (f.name, kind, image.size)
            elif f.stem.startswith("portrait"):
                assert image.height > image.width, (f.name, kind, image.size)
            with Image.open(f) as original:
                assert max(image.size) <= max(original.size)  # never enlarged
        if f.stem.startswith(("landscape", "portrait")):
            assert (photo["width"] > photo["height"]) == f.stem.startswith("landscape")
        with Image.open(f) as original:
            exif = original.getexif()
            taken = exif.get_ifd(0x8769).get(36867)
            model = exif.get(272)
        if taken:
            assert photo["taken_at"] == taken.replace(":", "-", 2).replace(" ", "T")
        if model:
            assert photo["model"] == model.strip("\x00 ").strip()
    assert photos["Canon_40D"]["model"] == "Canon EOS 40D" and photos["Canon_40D"]["taken_at"] == "2008-05-30T15:56:01"


async def test_originals_leave_the_page_cache_once_their_derivatives_are_made(system: System) -> None:
    """A shoot's originals are read once, for their derivatives: kept cached they would crowd out what
    is read again, and each page new to a VM costs its host a fault."""
    await _start(system)
    project = await create_project(system, "Page cache")
    files = sorted((PHOTOS / "cameras").glob("*.jpg"))
    status, body = await upload(system, project["folder"], [(f.name, f.read_bytes()) for f in files])
    assert status == 201 and len(body["files"]) == len(files), body
    view = await system.wait_task(body["task_id"], timeout=60)
    assert view["task"]["status"] == "completed", view
    photos = await _photos(system, project["folder"])
    assert all(photos[f.stem]["thumbnail_status"] == "generated" for f in files), photos
    folder = projects_root(system.data_dir) / project["folder"]

    async def none_cached() -> bool:
        return not any(cached_pages(folder / f.name) for f in files)

    await eventually(none_cached, timeout=10, what="the originals to leave the page cache")
    for f in files:  # the originals themselves are whole
        assert (folder / f.name).read_bytes() == f.read_bytes()


async def test_an_upload_answers_once_its_files_are_on_the_disk(system: System) -> None:
    """Not only in the page cache, where a power cut would lose a photo its stored event says is there.
    Seen as the kernel sees it: right after the answer, every page of each original can be dropped,
    which only a page written to the disk can be. No worker runs, so nothing else writes them."""
    from darkroom.kernel.definitions import load_definitions

    await system.start(roles=("projector", "orchestrator", "api"), definitions=load_definitions())
    project = await create_project(system, "On the disk")
    files = sorted((PHOTOS / "orientation").glob("*.jpg"))[:3]
    status, body = await upload(system, project["folder"], [(f.name, f.read_bytes()) for f in files])
    assert status == 201 and len(body["files"]) == len(files), body
    folder = projects_root(system.data_dir) / project["folder"]
    dirty = {}
    for f in files:
        fd = os.open(folder / f.name, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # drops clean pages; dirty ones stay
        finally:
            os.close(fd)
        if cached := cached_pages(folder / f.name):
            dirty[f.name] = cached
    assert not dirty, f"pages of these originals were not on the disk when the upload answered: {dirty}"


async def test_a_jpg_and_raw_pair_is_one_photo_and_a_raw_alone_is_not_supported(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Pairs")
    jpeg = photo_bytes("cameras/Nikon_D70.jpg")
    status, body = await upload(
        system, project["folder"], [("DSC01.JPG", jpeg), ("DSC01.arw", b"RAW" * 1000), ("DSC02.NEF", b"NEF" * 1000)]
    )
    assert status == 201 and [f["filename"] for f in body["files"]] == ["DSC01", "DSC01", "DSC02"]
    assert [f["kind"] for f in body["files"]] == ["jpg", "raw", "raw"]
    await system.wait_task(body["task_id"], timeout=30)
    photos = await _photos(system, project["folder"])
    pair = photos["DSC01"]
    assert pair["files"] == ["DSC01.JPG", "DSC01.arw"]
    assert pair["jpg_available"] and pair["raw_available"] and pair["keep_jpg"] and pair["keep_raw"]
    assert pair["thumbnail_status"] == "generated"
    assert photos["DSC02"]["thumbnail_status"] == photos["DSC02"]["preview_status"] == "not_supported"
    assert photos["DSC02"]["error"] == "not a RAW file LibRaw can read"
    status, _, _ = await _asset(system, project["folder"], "thumbnail", "DSC02")
    assert status == 404


async def test_a_corrupt_jpeg_among_good_ones_fails_alone(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Corrupt")
    corrupt = b"\xff\xd8\xff\xe0" + b"\x00garbage" * 500
    status, body = await upload(
        system,
        project["folder"],
        [
            ("good1.jpg", photo_bytes("cameras/Canon_40D.jpg")),
            ("broken.jpg", corrupt),
            ("good2.jpg", photo_bytes("cameras/DSCN0010.jpg")),
        ],
    )
    assert status == 201
    view = await system.wait_task(body["task_id"], timeout=30)
    assert view["task"]["status"] == "completed"
    assert view["jobs"][0]["progress_done"] == view["jobs"][0]["progress_total"] == 3
    photos = await _photos(system, project["folder"])
    assert photos["broken"]["thumbnail_status"] == photos["broken"]["preview_status"] == "failed"
    assert photos["broken"]["error"]
    assert photos["good1"]["thumbnail_status"] == photos["good2"]["thumbnail_status"] == "generated"


async def test_bad_files_get_their_own_error_and_leave_nothing_on_disk(system: System) -> None:
    await _start(system, api__max_upload_mb=0.1)
    project = await create_project(system, "Bad input")
    folder = system.data_dir / "projects" / project["folder"]
    big = photo_bytes("orientation/portrait_1.jpg")
    assert len(big) > 0.1 * (1 << 20)
    status, body = await upload(
        system,
        project["folder"],
        [
            ("notes.txt", b"hello"),
            ("empty.jpg", b""),
            ("../escape.jpg", photo_bytes("cameras/Canon_40D.jpg")),
            ("big.jpg", big),
            ("fake.png", b"not a png at all"),
            (".hidden.jpg", photo_bytes("cameras/Canon_40D.jpg")),
            ("ok.jpg", photo_bytes("cameras/Canon_40D.jpg")),
        ],
    )
    assert status == 201
    errors = {e["name"]: e["error"] for e in body["errors"]}
    assert set(errors) == {"notes.txt", "empty.jpg", "../escape.jpg", "big.jpg", "fake.png", ".hidden.jpg"}
    assert "not an accepted photo file" in errors["notes.txt"] and "empty" in errors["empty.jpg"]
    assert "path" in errors["../escape.jpg"] and "larger than" in errors["big.jpg"]
    assert "not a PNG" in errors["fake.png"] and "hidden" in errors[".hidden.jpg"]
    assert [f["name"] for f in body["files"]] == ["ok.jpg"]
    on_disk = sorted(p.name for p in folder.iterdir())
    assert on_disk == [".project.yaml", "ok.jpg"] or set(on_disk) <= {".project.yaml", "ok.jpg", ".thumb", ".preview"}
    assert not (system.data_dir / "projects" / "escape.jpg").exists()
    status, body = await upload(system, project["folder"], [("notes.txt", b"hello")])
    assert status == 400 and "nothing was accepted" in body["error"] and body["task_id"] is None


async def test_a_body_that_breaks_off_keeps_the_whole_files_and_refuses_the_rest(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Broken body")
    folder = system.data_dir / "projects" / project["folder"]
    whole, cut = photo_bytes("cameras/Canon_40D.jpg"), photo_bytes("cameras/Nikon_D70.jpg")
    boundary = "----darkroomtest" + os.urandom(8).hex()
    raw = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{name}"\r\n\r\n'.encode()
        + content
        + b"\r\n"
        for name, content in [("whole.jpg", whole), ("cut.jpg", cut)]
    )
    raw = raw[: -len(cut) // 2]  # no closing boundary: the body ends half-way through the second file
    url = f"{system.url}/api/projects/{project['folder']}/upload"
    async with system.http.post(
        url, data=raw, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    ) as response:
        status, body = response.status, await response.json()
        system.seq = max(system.seq, int(response.headers.get("X-Darkroom-Seq", 0)))
    assert status == 201 and [f["name"] for f in body["files"]] == ["whole.jpg"], body
    assert [e["name"] for e in body["errors"]] == ["cut.jpg"] and "broke off" in body["errors"][0]["error"]
    assert (await system.wait_task(body["task_id"], timeout=60))["task"]["status"] == "completed"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["whole.jpg"]
    assert not [p for p in folder.iterdir() if p.name.startswith(".upload-")]

    async with system.http.post(url, data=b"--x\r\n", headers={"Content-Type": "multipart/form-data"}) as response:
        status, body = response.status, await response.json()
    assert status == 400 and "boundary" in body["error"], body
    for content_type in ("application/json", ""):
        async with system.http.post(url, data=b'{"photos": []}', headers={"Content-Type": content_type}) as response:
            status, body = response.status, await response.json()
        assert status == 400 and "must be multipart/form-data" in body["error"], body
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["whole.jpg"]


async def test_identical_reupload_is_skipped_and_a_different_one_needs_overwrite(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Again")
    folder = system.data_dir / "projects" / project["folder"]
    first = photo_bytes("cameras/Canon_40D.jpg")
    other = photo_bytes("cameras/Pentax_K10D.jpg")
    status, body = await upload(system, project["folder"], [("IMG_1.jpg", first)])
    await system.wait_task(body["task_id"], timeout=30)
    await system.request(
        "PUT", f"/api/projects/{project['folder']}/keep", {"updates": [{"filename": "IMG_1", "keep_jpg": False}]}
    )
    status, body = await upload(system, project["folder"], [("IMG_1.jpg", first)])
    assert status == 201 and body["skipped"] == [{"name": "IMG_1.jpg", "reason": "identical to the file already there"}]
    assert body["task_id"] is None
    status, body = await upload(system, project["folder"], [("IMG_1.jpg", other)])
    assert status == 400 and "overwrite=true" in body["errors"][0]["error"]
    assert (folder / "IMG_1.jpg").read_bytes() == first
    status, body = await upload(system, project["folder"], [("IMG_1.jpg", other)], overwrite=True)
    assert status == 201 and body["task_id"]
    assert (folder / "IMG_1.jpg").read_bytes() == other
    assert (folder / ".trash" / "IMG_1.jpg").read_bytes() == first  # never lose an original
    await system.wait_task(body["task_id"], timeout=30)
    photo = (await _photos(system, project["folder"]))["IMG_1"]
    assert photo["keep_jpg"] is False  # uploading never clears a keep flag the user set
    assert photo["model"] == "PENTAX K10D" and photo["thumbnail_status"] == "generated"


async def test_a_basename_lives_in_one_project_only(system: System) -> None:
    await _start(system)
    a = await create_project(system, "A")
    b = await create_project(system, "A")
    assert b["folder"] == "A (2)"
    status, body = await upload(system, a["folder"], [("X1.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    status, body = await upload(system, b["folder"], [("X1.CR2", b"raw" * 10)])
    assert status == 400 and "already lives in project 'A'" in body["errors"][0]["error"]


async def test_an_upload_check_says_what_the_upload_would_do_and_changes_nothing(system: System) -> None:
    await _start(system, api__max_upload_mb=1)
    a = await create_project(system, "Here")
    b = await create_project(system, "There")
    first = photo_bytes("cameras/Canon_40D.jpg")
    status, body = await upload(system, a["folder"], [("IMG_1.jpg", first)])
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    status, body = await upload(system, b["folder"], [("X1.jpg", photo_bytes("cameras/Nikon_D70.jpg"))])
    assert status == 201, body
    folder = system.data_dir / "projects" / a["folder"]
    before = sorted(p.name for p in folder.iterdir())
    same, other = hashlib.sha256(first).hexdigest(), hashlib.sha256(b"other").hexdigest()
    files = [
        {"name": "IMG_1.jpg", "size": len(first)},
        {"name": "IMG_1.jpg", "size": len(first), "sha256": same},
        {"name": "IMG_1.jpg", "size": len(first), "sha256": other},
        {"name": "IMG_1.jpg", "size": len(first) + 1},
        {"name": "IMG_1.ARW", "size": 10},
        {"name": "X1.CR2", "size": 10},
        {"name": "notes.txt", "size": 10},
        {"name": "../up.jpg", "size": 10},
        {"name": "empty.jpg", "size": 0},
        {"name": "huge.jpg", "size": 2 << 20},
        {"name": "IMG_1.xmp", "size": 10},
        {"name": "X1.CR2.xmp", "size": 10},
    ]  # sidecars go with their photo
    status, body, _ = await system.request("POST", "/api/projects/Here/upload/check", {"files": files})
    assert status == 200, body
    assert [(f["name"], f["status"]) for f in body["files"]] == [
        ("IMG_1.jpg", "exists"),
        ("IMG_1.jpg", "identical"),
        ("IMG_1.jpg", "different"),
        ("IMG_1.jpg", "different"),
        ("IMG_1.ARW", "new"),
        ("X1.CR2", "elsewhere"),
        ("notes.txt", "refused"),
        ("../up.jpg", "refused"),
        ("empty.jpg", "refused"),
        ("huge.jpg", "refused"),
        ("IMG_1.xmp", "new"),
        ("X1.CR2.xmp", "elsewhere"),
    ]
    assert body["files"][5]["project"] == body["files"][11]["project"] == "There"
    assert [f["reason"] for f in body["files"][6:10]] == [
        "not an accepted photo file (JPG, RAW, PNG, TIFF, HEIC, WebP) or sidecar (XMP)",
        "file name must not contain a path",
        "file is empty",
        "file is larger than 1 MB",
    ]
    # What it says is what the upload then does.
    status, body = await upload(system, "Here", [("IMG_1.jpg", first), ("X1.CR2", b"raw" * 4)])
    assert status == 201 and [s["name"] for s in body["skipped"]] == ["IMG_1.jpg"], body
    assert "already lives in project 'There'" in body["errors"][0]["error"]

    for bad, why in (
        ({"files": [{"name": "a.jpg", "size": 1, "sha256": "xyz"}]}, "sha256"),
        ({"files": [{"name": "a.jpg"}]}, "size"),
        ({"files": [{"name": "a.jpg", "size": -1}]}, "size"),
        ({"files": [{"name": "a.jpg", "size": 1}] * 5001}, "files"),
        ({"files": [], "overwrite": True}, "overwrite"),
    ):
        status, body, _ = await system.request("POST", "/api/projects/Here/upload/check", bad)
        assert status == 400 and why in body["error"], (bad, body)
    status, body, _ = await system.request("POST", "/api/projects/Nowhere/upload/check", {"files": []})
    assert status == 404, body
    assert sorted(p.name for p in folder.iterdir()) == before


async def test_sse_items_follow_the_upload_and_a_get_agrees_with_each(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Live")
    folder = project["folder"]
    async with SSEClient(system.http, f"{system.url}/api/events?project={folder}") as client:
        status, body = await upload(
            system, folder, [(f"L{i}.jpg", photo_bytes(f"orientation/landscape_{i}.jpg")) for i in (1, 6)]
        )
        completed = await client.wait_for(
            lambda m: m[1] == "task_update" and m[2]["id"] == body["task_id"] and m[2]["status"] == "completed",
            timeout=30,
            what="the upload task's completion",
        )
        generated = [m for m in client.messages if m[1] == "item" and m[2]["photo"]["thumbnail_status"] == "generated"]
        assert {m[2]["photo"]["filename"] for m in generated} == {"L1", "L6"}
        for event_id, _, data in generated:
            seq = event_id.split(".")[0]
            status, view, _ = await system.request("GET", f"/api/projects/{folder}/photos?min_seq={seq}")
            now = {p["filename"]: p for p in view["photos"]}[data["photo"]["filename"]]
            assert now["thumbnail_status"] == "generated" and now["updated_at"] >= data["photo"]["updated_at"]
        assert completed[2]["type"] == "upload_postprocess" and completed[2]["source"] == "user"
        # Un-keeping a JPG: the item and the pending counts, live.
        await system.request(
            "PUT", f"/api/projects/{folder}/keep", {"updates": [{"filename": "L1", "keep_jpg": False}]}
        )
        pending = await client.wait_for(lambda m: m[1] == "pending_changes", what="pending_changes")
        assert pending[2]["pending"] == {"photos": 1, "jpg": 1, "raw": 0, "other": 0} and pending[2]["folder"] == folder
        item = await client.wait_for(lambda m: m[1] == "item" and m[2]["photo"]["keep_jpg"] is False)
        assert item[2]["photo"]["filename"] == "L1"
    status, body, _ = await system.request("GET", f"/api/projects/{folder}")
    assert body["counts"] == {
        "photos": 2,
        "pending_photos": 1,
        "pending_jpg": 1,
        "pending_raw": 0,
        "pending_other": 0,
        "missing_derivatives": 0,
    }


async def test_keep_flags_change_only_what_is_given_and_bad_updates_change_nothing(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Keep")
    folder = project["folder"]
    status, body = await upload(
        system, folder, [("K1.jpg", photo_bytes("cameras/Canon_40D.jpg")), ("K1.dng", b"dng" * 100)]
    )
    await system.wait_task(body["task_id"], timeout=30)
    await system.request("PUT", f"/api/projects/{folder}/keep", {"updates": [{"filename": "K1", "keep_raw": False}]})
    await system.request("PUT", f"/api/projects/{folder}/keep", {"updates": [{"filename": "K1", "keep_jpg": False}]})
    photo = (await _photos(system, folder))["K1"]
    assert photo["keep_jpg"] is False and photo["keep_raw"] is False
    before = await system.bus.last_seq()
    status, body, _ = await system.request(
        "PUT", f"/api/projects/{folder}/keep", {"updates": [{"filename": "K1", "keep_jpg": True}, {"filename": "nope"}]}
    )
    assert status == 404 and "nope" in body["error"]
    status, body, _ = await system.request("PUT", f"/api/projects/{folder}/keep", {"updates": [{"filename": 3}]})
    assert status == 400
    assert await system.bus.last_seq() == before


async def test_assets_have_types_etags_and_cache_rules(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Assets")
    folder = project["folder"]
    status, body = await upload(system, folder, [("A1.jpg", photo_bytes("cameras/Canon_40D.jpg"))])
    await system.wait_task(body["task_id"], timeout=30)
    photo = (await _photos(system, folder))["A1"]
    url = f"{system.url}/api/projects/{folder}/thumbnail/A1"
    async with system.http.get(url) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "image/webp"
        assert response.headers["Cache-Control"] == "no-cache"
        etag = response.headers["ETag"]
    async with system.http.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    async with system.http.get(f"{url}?v={photo['updated_at']}") as response:
        assert "immutable" in response.headers["Cache-Control"]
    async with system.http.get(f"{system.url}/api/projects/{folder}/preview/A1") as response:
        assert response.headers["Content-Type"] == "image/jpeg"
    async with system.http.get(f"{system.url}/api/projects/{folder}/files/A1.jpg") as response:
        assert response.status == 200 and await response.read() == photo_bytes("cameras/Canon_40D.jpg")
    for path in ("thumbnail/NOPE", "files/..%2Fx.jpg", "files/.project.yaml"):
        async with system.http.get(f"{system.url}/api/projects/{folder}/{path}") as response:
            assert response.status == 404 and "error" in await response.json()


async def test_photos_page_by_taken_at_then_filename(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Pages")
    folder = project["folder"]
    files = sorted((PHOTOS / "cameras").glob("*.jpg")) + [PHOTOS / "orientation" / "landscape_1.jpg"]
    status, body = await upload(system, folder, [(f.name, f.read_bytes()) for f in files])
    await system.wait_task(body["task_id"], timeout=30)
    seen, cursor = [], None
    while True:
        path = f"/api/projects/{folder}/photos?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = await system.request("GET", path)
        seen += page["photos"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    keys = [(p["taken_at"] is None, p["taken_at"] or "", p["filename"]) for p in seen]
    assert keys == sorted(keys) and len(seen) == len(files)
    assert seen[-1]["filename"] == "landscape_1"  # undated last
    status, body, _ = await system.request("GET", f"/api/projects/{folder}/photos?cursor=garbage")
    assert status == 400


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


async def test_png_tiff_and_heic_sources_get_derivatives_too(system: System) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    await _start(system)
    project = await create_project(system, "Formats")
    tall = Image.new("RGB", (300, 500), (30, 120, 200))
    status, body = await upload(
        system,
        project["folder"],
        [
            ("F1.png", _encoded(tall, "PNG")),
            ("F2.tif", _encoded(tall, "TIFF")),
            ("F3.heic", _encoded(tall, "HEIF")),
            ("F4.heic", photo_bytes("cameras/Canon_40D.jpg")),
        ],
    )
    assert status == 201 and [e["name"] for e in body["errors"]] == ["F4.heic"]  # a JPEG named .heic
    await system.wait_task(body["task_id"], timeout=30)
    photos = await _photos(system, project["folder"])
    for name in ("F1", "F2", "F3"):
        assert photos[name]["other_available"] and photos[name]["thumbnail_status"] == "generated", photos[name]
        status, data, _ = await _asset(system, project["folder"], "thumbnail", name)
        assert _image(data).size == (300, 500)  # never enlarged


async def test_a_later_variant_of_a_photo_leaves_its_jpg_derivatives_alone(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Variants")
    status, body = await upload(system, project["folder"], [("V1.jpg", photo_bytes("orientation/landscape_1.jpg"))])
    await system.wait_task(body["task_id"], timeout=30)
    status, before, _ = await _asset(system, project["folder"], "thumbnail", "V1")
    assert status == 200
    status, body = await upload(system, project["folder"], [("V1.png", _encoded(Image.new("RGB", (300, 500)), "PNG"))])
    assert status == 201
    await system.wait_task(body["task_id"], timeout=30)
    photo = (await _photos(system, project["folder"]))["V1"]
    assert photo["other_available"] and photo["thumbnail_status"] == "generated"
    assert (await _asset(system, project["folder"], "thumbnail", "V1"))[1] == before  # still made from the JPG


async def test_an_image_over_the_megapixel_limit_fails_clearly(system: System) -> None:
    await _start(system, processing__max_megapixels=0.2)
    project = await create_project(system, "Huge")
    status, body = await upload(
        system,
        project["folder"],
        [("H1.jpg", photo_bytes("orientation/landscape_1.jpg")), ("H2.jpg", photo_bytes("cameras/Canon_40D.jpg"))],
    )
    view = await system.wait_task(body["task_id"], timeout=30)
    assert view["task"]["status"] == "completed"
    photos = await _photos(system, project["folder"])
    assert photos["H1"]["thumbnail_status"] == "failed"
    assert (
        photos["H1"]["error"]
        == "the image is 600x450 (0.3 megapixels), over the limit of processing.max_megapixels = 0.2"
    )
    assert photos["H2"]["thumbnail_status"] == "generated"


async def test_a_sweep_during_a_long_upload_leaves_the_saved_files_to_the_upload(system: System) -> None:
    """A maintenance sweep while an upload is half-way: the file already saved is the upload's,
    added once by the user and processed by the upload's task, not adopted as a stray."""
    await _start(system)
    project = await create_project(system, "Half way")
    first, second = sorted((PHOTOS / "cameras").glob("*.jpg"))[:2]
    half = await HalfUpload.start(system, project["folder"], first, second)
    status, sweep, _ = await system.request("POST", f"/api/projects/{project['folder']}/tasks", {"type": "maintenance"})
    assert status == 202, sweep
    assert (await system.wait_task(sweep["task"]["id"], timeout=30))["task"]["status"] == "completed"
    status, result = await half.finish()
    assert status == 201 and [f["name"] for f in result["files"]] == [first.name, second.name], result
    assert (await system.wait_task(result["task_id"], timeout=60))["task"]["status"] == "completed"

    added = [e for _, _, e in await system.log("darkroom.photo.>") if e["type"] == "photo.file_added"]
    assert sorted((e["name"], e["source"]) for e in added) == [(first.name, "user"), (second.name, "user")]
    uploads = [
        e for _, _, e in await system.log("darkroom.task.*.*.requested") if e["task_type"] == "upload_postprocess"
    ]
    assert [e["task_id"] for e in uploads] == [result["task_id"]]
    photos = await _photos(system, project["folder"])
    assert {p: photos[p]["thumbnail_status"] for p in photos} == {first.stem: "generated", second.stem: "generated"}


async def test_an_upload_cut_off_half_way_still_processes_what_it_saved(system: System) -> None:
    await _start(system)
    project = await create_project(system, "Cut off")
    first, second = sorted((PHOTOS / "cameras").glob("*.jpg"))[:2]
    half = await HalfUpload.start(system, project["folder"], first, second)
    await half.abandon()

    async def processed():
        photos = await _photos(system, project["folder"])
        return photos.get(first.stem, {}).get("thumbnail_status") == "generated" and photos

    photos = await eventually(processed, timeout=30, what="the saved file's derivatives")
    assert list(photos) == [first.stem]
    folder = projects_root(system.data_dir) / project["folder"]
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg") == [first.name]  # no partial second
    assert not [p for p in folder.iterdir() if p.name.startswith(".upload-")]


class HalfUpload:
    """A browser's multipart upload of two files, held after the server has saved the first."""

    def __init__(self, system: System, folder: str, first: Path, second: Path) -> None:
        self.system = system
        self.url = f"{system.url}/api/projects/{folder}/upload"
        self.saved = projects_root(system.data_dir) / folder / first.name
        self.first, self.second = first, second
        self.boundary = "----darkroomtest" + os.urandom(8).hex()
        self.go_on = asyncio.Event()
        self.posting: asyncio.Task | None = None

    @classmethod
    async def start(cls, system: System, folder: str, first: Path, second: Path) -> HalfUpload:
        half = cls(system, folder, first, second)
        half.posting = asyncio.create_task(half._post())
        await eventually(half._first_saved, what="the first file saved")
        assert not (half.saved.parent / second.name).exists()
        return half

    async def finish(self) -> tuple[int, dict]:
        self.go_on.set()
        assert self.posting is not None
        return await self.posting

    async def abandon(self) -> None:
        assert self.posting is not None
        self.posting.cancel()
        await asyncio.gather(self.posting, return_exceptions=True)

    async def _first_saved(self) -> bool:
        return self.saved.exists()

    def _head(self, name: str) -> bytes:
        return (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="photos"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()

    async def _body(self):
        yield self._head(self.first.name) + self.first.read_bytes() + b"\r\n" + self._head(self.second.name)
        rest = self.second.read_bytes()
        while not self.saved.exists():
            # A multipart reader may end a part only once bytes after its boundary arrive: trickle some.
            yield rest[:1]
            rest = rest[1:]
            await asyncio.sleep(0.01)
        await self.go_on.wait()
        yield rest + f"\r\n--{self.boundary}--\r\n".encode()

    async def _post(self) -> tuple[int, dict]:
        headers = {"Content-Type": f"multipart/form-data; boundary={self.boundary}"}
        async with self.system.http.post(self.url, data=self._body(), headers=headers) as response:
            self.system.seq = max(self.system.seq, int(response.headers.get("X-Darkroom-Seq", 0)))
            return response.status, await response.json()
