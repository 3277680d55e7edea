"""Culling as a photographer does it, in headless Chromium against real services: the loupe with the
keyboard, the mouse and touch; the grid's cards, filters, sorting and keys; the trash drawer; Revert
that asks and can be undone. Screenshots of each screen at 1440×900 and 390×844 go to tests/artifacts."""

from __future__ import annotations

import io
import re
from urllib.parse import quote

from PIL import Image
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import PHONE, Tab, open_tab, screenshot_path, start
from tests.browser.test_ui import SLOW, all_thumbnails_loaded, card, project_url
from tests.conftest import PHOTOS, System, create_project, eventually, upload

WITH_RAW = ("Canon_40D", "Nikon_D70", "landscape_1", "portrait_1")


async def twenty_photos(system: System, name: str) -> dict:
    """A shoot of 20 photos, landscape and portrait, four of them with a RAW beside the JPG."""
    await start(system)
    project = await create_project(system, name)
    jpegs = sorted((PHOTOS / "orientation").glob("*.jpg")) + sorted((PHOTOS / "cameras").glob("*.jpg"))[:4]
    files = [(p.name, p.read_bytes()) for p in jpegs]
    files += [(f"{stem}.ARW", b"RAWDATA" * (400 + i)) for i, stem in enumerate(WITH_RAW)]
    status, body = await upload(system, project["folder"], files)
    assert status == 201 and len(body["files"]) == 24, body
    await system.wait_task(body["task_id"], timeout=60)
    return project


async def shown(page: Page) -> list[str]:
    return await page.locator("li.photo:not([hidden])").evaluate_all("cards => cards.map(c => c.dataset.filename)")


async def photos(system: System, folder: str) -> dict[str, dict]:
    status, body, _ = await system.request("GET", f"/api/projects/{quote(folder)}/photos?limit=1000")
    assert status == 200, body
    return {p["filename"]: p for p in body["photos"]}


async def preview_loaded(page: Page, filename: str) -> None:
    loupe = page.locator("#loupe")
    await expect(loupe.locator(".loupe-name")).to_have_text(filename)
    img = loupe.locator(".loupe-picture img")
    await expect(img).to_have_attribute("src", re.compile(rf"/preview/{re.escape(filename)}\?v="))
    await page.wait_for_function(
        "() => { const i = document.querySelector('#loupe .loupe-picture img');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )


async def whole_photo_shown(page: Page) -> None:
    stage = await page.locator("#loupe .loupe-stage").bounding_box()
    img = await page.locator("#loupe .loupe-picture img").bounding_box()
    assert (
        stage["x"] <= img["x"]
        and img["x"] + img["width"] <= stage["x"] + stage["width"] + 1
        and stage["y"] <= img["y"]
        and img["y"] + img["height"] <= stage["y"] + stage["height"] + 1
    ), (stage, img)


async def test_keyboard_culling_of_twenty_photos_in_the_loupe(system: System, tab: Tab) -> None:
    project = await twenty_photos(system, "Twenty")
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await all_thumbnails_loaded(page, 20)
    names = await shown(page)
    assert len(names) == 20

    # Enter on the first card opens it large: the preview, and the camera's line.
    await page.locator("li.photo").first.focus()
    await page.keyboard.press("Enter")
    loupe = page.locator("#loupe")
    await expect(loupe).to_be_visible()
    await preview_loaded(page, names[0])
    await expect(loupe.locator(".loupe-position")).to_have_text("1 of 20")

    # One decision a key, the next photo after each: drop, keep, JPG only, RAW only.
    decided = {}
    for i, name in enumerate(names):
        await expect(loupe.locator(".loupe-name")).to_have_text(name)
        if name in WITH_RAW:
            key = ["j", "R", "x", "k"][WITH_RAW.index(name)]
        else:
            key = "x" if i == len(names) - 1 else ["x", "k", "k"][i % 3]  # the last one a change, to undo
        decided[name] = key
        if name == "Canon_40D":  # a camera photo: make, model, time and size on one line
            await expect(loupe.locator(".loupe-exif")).to_have_text("Canon EOS 40D · 2008-05-30 15:56 · 100 × 68")
        await page.keyboard.press(key)
    await expect(loupe.locator(".loupe-name")).to_have_text(names[-1])  # the last one stays
    if decided[names[-1]] in "xjR":
        await expect(loupe.locator(".flag.state")).to_be_visible()

    # u takes the last decision back, and shows the photo it was about.
    await page.keyboard.press("ArrowLeft")
    await expect(loupe.locator(".loupe-name")).to_have_text(names[-2])
    await page.keyboard.press("u")
    await expect(loupe.locator(".loupe-name")).to_have_text(names[-1])
    undone = names[-1]
    decided.pop(undone)

    expected = {}
    for name, key in decided.items():
        jpg = key in "kj"
        raw = key in "kR" if name in WITH_RAW else None
        expected[name] = (jpg, raw)

    async def saved() -> bool:
        state = await photos(system, project["folder"])
        return (
            all(
                (state[n]["keep_jpg"], state[n]["keep_raw"] if n in WITH_RAW else None) == flags
                for n, flags in expected.items()
            )
            and state[undone]["keep_jpg"]
        )

    await eventually(saved, 30, "the decisions to be saved")
    pending = sum(1 for jpg, raw in expected.values() if not jpg or raw is False)
    await expect(page.locator("#pending-count")).to_have_text(f"{pending} pending")
    await expect(loupe.locator(".toast").filter(has_text="Decisions saved")).to_contain_text("photos")
    assert (await tab.most())["toasts"] <= 3

    # 100% and back; the help overlay above the loupe; Esc closes one thing at a time.
    await page.keyboard.press("z")
    await expect(loupe).to_have_class("loupe zoomed")
    width = await loupe.locator(".loupe-picture img").evaluate("i => [i.width, i.naturalWidth]")
    assert width[0] == width[1], width
    await tab.screens("loupe-100")
    await page.keyboard.press("z")
    await expect(loupe).not_to_have_class("loupe zoomed")
    await tab.screens("loupe")
    await page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(help_dialog).to_be_visible()
    await expect(help_dialog).to_contain_text("Keep the JPG only")
    await tab.screens("help")
    await page.keyboard.press("Escape")
    await expect(help_dialog).to_be_hidden()
    await expect(loupe).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(loupe).to_be_hidden()
    await expect(card(page, undone)).to_be_focused()  # back where the loupe left off

    # In the grid: dropped photos are dimmed and say so.
    dropped = next(n for n, k in decided.items() if k == "x")
    await expect(card(page, dropped)).to_have_class("photo pending dropped")
    await expect(card(page, dropped).locator(".flag.state")).to_have_text("Drop")
    opacity = await card(page, dropped).locator(".picture").evaluate("p => getComputedStyle(p).opacity")
    assert float(opacity) < 0.5
    await tab.screens("grid-culled")


async def test_the_loupe_names_the_lens_when_the_photo_records_one(system: System, tab: Tab) -> None:
    await start(system)
    project = await create_project(system, "Lenses")
    status, body = await upload(
        system,
        project["folder"],
        [
            (name, (PHOTOS / folder / name).read_bytes())
            for folder, name in (("lens", "Nikon_D70s.jpg"), ("cameras", "Canon_40D.jpg"))
        ],
    )
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=60)
    state = await photos(system, project["folder"])
    assert (state["Nikon_D70s"]["lens"], state["Canon_40D"]["lens"]) == ("18.0-70.0 mm f/3.5-4.5", None)
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await all_thumbnails_loaded(page, 2)
    loupe = page.locator("#loupe")
    await card(page, "Nikon_D70s").locator(".thumb").click()
    await preview_loaded(page, "Nikon_D70s")
    await expect(loupe.locator(".loupe-exif")).to_have_text(
        "NIKON D70s · 18.0-70.0 mm f/3.5-4.5 · 2005-12-14 14:39 · 1488 × 2240"
    )
    await whole_photo_shown(page)  # a preview taller than the window fits in it
    await tab.screens("loupe-lens")
    await page.set_viewport_size(PHONE)
    await whole_photo_shown(page)
    await page.set_viewport_size({"width": 1440, "height": 900})
    await page.keyboard.press("ArrowLeft" if (await shown(page))[0] == "Canon_40D" else "ArrowRight")
    await preview_loaded(page, "Canon_40D")
    await expect(loupe.locator(".loupe-exif")).to_have_text("Canon EOS 40D · 2008-05-30 15:56 · 100 × 68")


async def test_the_loupe_works_with_touch_and_the_mouse(system: System, browser: Browser) -> None:
    project = await twenty_photos(system, "Touch")
    async with open_tab(browser, viewport=PHONE, has_touch=True, is_mobile=True) as tab:
        page = tab.page
        await page.goto(project_url(system, project["folder"]))
        await expect(page.locator("li.photo .thumb img")).to_have_count(20)  # lazy: those out of view load later
        names = await shown(page)
        grid_box = [await page.locator("li.photo").nth(i).bounding_box() for i in range(3)]
        assert grid_box[0]["y"] == grid_box[1]["y"] != grid_box[2]["y"]  # two columns

        await page.locator("li.photo .thumb").first.tap()
        loupe = page.locator("#loupe")
        await preview_loaded(page, names[0])
        for button in await loupe.locator("button:visible").all():
            box = await button.bounding_box()
            assert box["height"] >= 44 and box["width"] >= 44, (await button.text_content(), box)

        # A swipe to the left: the next photo. A tap on Drop: dropped, and the next one.
        stage = await loupe.locator(".loupe-stage").bounding_box()
        y = stage["y"] + stage["height"] / 2
        await page.mouse.move(stage["x"] + stage["width"] * 0.8, y)
        await page.mouse.down()
        await page.mouse.move(stage["x"] + stage["width"] * 0.2, y, steps=6)
        await page.mouse.up()
        await expect(loupe.locator(".loupe-name")).to_have_text(names[1])
        await loupe.get_by_role("button", name="Drop").tap()
        await expect(loupe.locator(".loupe-name")).to_have_text(names[2])
        await loupe.locator(".loupe-buttons").get_by_role("button", name="Undo").tap()
        await expect(loupe.locator(".loupe-name")).to_have_text(names[1])
        await expect(loupe.locator(".flag.state")).to_be_hidden()
        await loupe.get_by_role("button", name="Next photo").tap()
        await loupe.get_by_role("button", name="Keep JPG").tap()  # the JPG alone, as a toggle
        await expect(loupe.locator(".flag.state")).to_have_text("Drop")
        await expect(loupe.locator(".loupe-name")).to_have_text(names[2])  # a toggle does not move on
        await expect(page.locator("#pending-count")).to_have_text("1 pending")
        await page.screenshot(path=screenshot_path("loupe-touch-phone.png"))
        await loupe.get_by_role("button", name="Close").tap()
        await expect(loupe).to_be_hidden()

        # The mouse: a click on the picture zooms in there, another fits it again.
        await page.set_viewport_size({"width": 1440, "height": 900})
        await page.locator("li.photo .thumb").nth(3).click()
        await preview_loaded(page, names[3])
        await loupe.locator(".loupe-picture img").click()
        await expect(loupe).to_have_class("loupe zoomed")
        await loupe.locator(".loupe-picture img").click()
        await expect(loupe).not_to_have_class("loupe zoomed")


async def test_cards_are_one_size_and_the_grid_filters_sorts_and_moves_with_the_keyboard(
    system: System, tab: Tab
) -> None:
    project = await twenty_photos(system, "Grid")
    state = await photos(system, project["folder"])
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await all_thumbnails_loaded(page, 20)
    cards = page.locator("li.photo")

    async def sizes() -> set[tuple[int, int]]:
        boxes = await cards.evaluate_all("cs => cs.map(c => [c.offsetWidth, c.offsetHeight])")
        return {tuple(b) for b in boxes}

    # Portrait and landscape photos in cards of one size, on a desktop and on a phone (two columns,
    # every control a finger can hit).
    assert len(await sizes()) == 1, await sizes()
    await page.set_viewport_size(PHONE)
    assert len(await sizes()) == 1, await sizes()
    lefts = await cards.evaluate_all("cs => [...new Set(cs.map(c => c.getBoundingClientRect().left))]")
    assert len(lefts) == 2, lefts
    for control in [
        page.get_by_role("button", name="Upload", exact=True),
        page.get_by_role("button", name="Commit"),
        page.get_by_role("button", name="Revert"),
        page.get_by_role("button", name="Filter"),
        card(page, "landscape_1").locator("label.variant").first,
    ]:
        box = await control.bounding_box()
        assert box["height"] >= 44 and box["width"] >= 44, (control, box)
    # The toolbar stays in view when the grid scrolls.
    await page.mouse.wheel(0, 4000)
    await page.wait_for_function("() => window.scrollY > 1000")
    commit = await page.get_by_role("button", name="Commit").bounding_box()
    assert 0 <= commit["y"] < 200, commit
    await tab.screens("grid-scrolled")
    await page.set_viewport_size({"width": 1440, "height": 900})
    await page.evaluate("window.scrollTo(0, 0)")

    # The keyboard moves across the cards and culls the one with the focus.
    names = await shown(page)
    columns = len(set(await cards.evaluate_all("cs => cs.map(c => c.getBoundingClientRect().left)")))
    await cards.first.focus()
    await page.keyboard.press("ArrowRight")
    await expect(card(page, names[1])).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(card(page, names[1 + columns])).to_be_focused()
    await page.keyboard.press("End")
    await expect(card(page, names[-1])).to_be_focused()
    await page.keyboard.press("Home")
    await expect(card(page, names[0])).to_be_focused()
    await page.keyboard.press("x")
    await expect(card(page, names[1])).to_be_focused()  # on to the next
    await expect(card(page, names[0])).to_have_class("photo pending dropped")
    await expect(card(page, names[0]).locator(".flag.state")).to_have_text("Drop")
    await expect(page.locator("#pending-count")).to_have_text("1 pending")
    with_raw = next(n for n in names[1:] if n in WITH_RAW)
    await card(page, with_raw).focus()
    await page.keyboard.press("j")  # the JPG only: the RAW will go
    await expect(card(page, with_raw).locator(".flag.state")).to_have_text("Drop RAW")
    await expect(card(page, with_raw)).to_have_class("photo pending")

    # Filters: what the photographer decided, the file type, the orientation, the day.
    view = page.get_by_role("form", name="Filter and sort")
    await view.get_by_label("Decision").select_option("dropped")
    assert await shown(page) == [names[0]]
    await expect(page.locator("#photo-count")).to_have_text("1 of 20 photos")
    await view.get_by_label("Decision").select_option("pending")
    assert sorted(await shown(page)) == sorted([names[0], with_raw])
    await view.get_by_label("Decision").select_option("all")
    await view.get_by_label("File type").select_option("jpg+raw")
    assert sorted(await shown(page)) == sorted(WITH_RAW)
    await view.get_by_label("File type").select_option("all")
    await view.get_by_label("Orientation").select_option("portrait")
    portraits = sorted(n for n, p in state.items() if p["height"] > p["width"])
    assert sorted(await shown(page)) == portraits and len(portraits) == 8
    await view.get_by_label("Orientation").select_option("all")
    canon_day = state["Canon_40D"]["taken_at"][:10]
    await view.get_by_label("Date").select_option(canon_day)
    assert await shown(page) == sorted(n for n, p in state.items() if (p["taken_at"] or "")[:10] == canon_day)
    await view.get_by_role("button", name="Clear").click()
    await expect(page.locator("#photo-count")).to_have_text("20 photos")

    # Sorting; a photo uploaded meanwhile is marked new and, by "Recently added", comes first.
    await view.get_by_label("Sort by").select_option("name")
    assert await shown(page) == sorted(names)
    status, body = await upload(
        system, project["folder"], [("zz_late.jpg", (PHOTOS / "cameras" / "DSCN0021.jpg").read_bytes())]
    )
    assert status == 201, body
    await expect(card(page, "zz_late")).to_have_class(re.compile(r"\bnew\b"))
    await expect(card(page, "zz_late").locator(".flag.new")).to_have_text("New")
    await view.get_by_label("Sort by").select_option("recent")
    assert (await shown(page))[0] == "zz_late"
    await expect(card(page, "zz_late").locator("img")).to_have_count(1, timeout=SLOW)
    await tab.screens("grid")
    await page.set_viewport_size(PHONE)
    await page.get_by_role("button", name="Filter").click()
    await expect(view.get_by_label("Sort by")).to_be_visible()
    await page.screenshot(path=screenshot_path("grid-filters-phone.png"))


async def test_the_trash_drawer_restores_and_revert_asks_and_can_be_undone(system: System, tab: Tab) -> None:
    await start(system)
    project = await create_project(system, "Trash")
    folder = project["folder"]
    files = [(f"T{i}.jpg", (PHOTOS / "orientation" / f"landscape_{i}.jpg").read_bytes()) for i in range(1, 9)]
    files.append(("T1.ARW", b"RAWDATA" * 300))
    status, body = await upload(system, folder, files)
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=60)
    page = tab.page
    await page.clock.install()  # time runs as usual until a test step holds it
    await page.goto(project_url(system, folder))
    await all_thumbnails_loaded(page, 8)

    # Drop T2 and T1's RAW, commit: both in the trash drawer, with when each goes.
    await card(page, "T2").get_by_label("Keep JPG").uncheck()
    await card(page, "T1").get_by_label("Keep RAW").uncheck()
    await expect(page.locator("#pending-count")).to_have_text("2 pending")
    await page.get_by_role("button", name="Commit").click()
    await page.get_by_role("dialog").get_by_role("button", name="Commit").click()
    await tab.wait_toasts("Files removed", 1)
    await expect(card(page, "T2")).to_have_count(0)
    trash_button = page.get_by_role("button", name="Trash")
    await expect(trash_button).to_contain_text("2")
    await trash_button.click()
    drawer = page.get_by_role("complementary", name="Trash")
    entries = drawer.locator("li.trash-entry")
    await expect(entries.locator(".trash-name")).to_have_text(["T1.ARW", "T2.jpg"], ignore_case=False)
    await expect(entries.first).to_contain_text("goes in 24 h")
    await expect(drawer).to_contain_text("stay here for 24 h")
    await tab.screens("trash")

    # Restore T2 from the drawer: it comes back to the grid, and Processes says what ran.
    await drawer.get_by_role("button", name="Restore T2.jpg").click()
    await expect(card(page, "T2")).to_have_count(1)
    await expect(card(page, "T2").locator("img")).to_have_count(1, timeout=SLOW)
    await expect(entries.locator(".trash-name")).to_have_text(["T1.ARW"])
    await page.get_by_role("button", name="Processes").click()
    await expect(drawer).to_be_hidden()  # one drawer at a time
    restore = page.locator("#processes li.task").first
    await expect(restore.locator("h3")).to_have_text("Restore from trash · 1 photo")
    await expect(restore.locator(".task-head .status")).to_have_text("completed", timeout=SLOW)
    await expect(restore.locator("li.job .job-type")).to_have_text(
        ["Thumbnails", "Checking the project file", "Checking the folder"]
    )
    await expect(restore.locator("li.job .count").first).to_have_text("1/1")
    await expect(page.locator("#processes")).not_to_contain_text("attempt")  # only when there was more than one
    await expect(page.locator("#processes")).not_to_contain_text("Upload Post-Process")
    await tab.screens("processes")
    await page.keyboard.press("Escape")

    # Five pending: Revert asks first; then an Undo brings the five decisions back.
    for name in ("T3", "T4", "T5", "T6", "T7"):
        await card(page, name).get_by_label("Keep JPG").uncheck()
    await expect(page.locator("#pending-count")).to_have_text("5 pending")
    await page.get_by_role("button", name="Revert").click()
    dialog = page.get_by_role("dialog", name="Revert every decision?")
    await expect(dialog).to_contain_text("5 photos go back to keeping all their files")
    await tab.screens("revert-dialog")
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(page.locator("#pending-count")).to_have_text("5 pending")
    await page.get_by_role("button", name="Revert").click()
    await dialog.get_by_role("button", name="Revert").click()
    await expect(page.locator("#pending-count")).to_have_text("0 pending")
    reverted = page.locator(".toast").filter(has_text="Reverted 5 photos")
    await expect(reverted).to_be_visible()
    # The toast waits while the pointer is on it, however long.
    await reverted.hover()
    await page.clock.pause_at(await page.evaluate("Date.now()"))
    await page.clock.run_for(60_000)
    await page.clock.resume()
    await expect(reverted).to_be_visible()
    await reverted.get_by_role("button", name="Undo").click()
    await expect(page.locator("#pending-count")).to_have_text("5 pending")
    for name in ("T3", "T7"):
        await expect(card(page, name).get_by_label("Keep JPG")).not_to_be_checked()
    undone = page.locator(".toast").filter(has_text="Undone")
    await expect(undone).to_be_visible()
    await page.mouse.move(5, 5)
    await expect(undone).to_be_hidden()  # and leaves once the pointer has gone


async def test_a_third_variant_is_culled_where_the_photo_record_says_it_can_be(system: System, tab: Tab) -> None:
    """CONTRACT §7.3's keep_other: a toggle of its own when the record carries it, a plain label until then."""
    await start(system)
    project = await create_project(system, "Third")
    png = (PHOTOS / "cameras" / "Canon_40D.jpg").read_bytes()
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).save(out, "PNG")
    status, body = await upload(system, project["folder"], [("P1.jpg", png), ("P1.png", out.getvalue())])
    assert status == 201, body
    await system.wait_task(body["task_id"], timeout=30)
    page = tab.page
    await page.goto(project_url(system, project["folder"]))
    await expect(card(page, "P1").locator("img")).to_have_count(1, timeout=SLOW)
    record = (await photos(system, project["folder"]))["P1"]
    if "keep_other" in record:  # the server culls it: a toggle, dropped with the rest
        await expect(card(page, "P1").get_by_label("Keep PNG")).to_be_checked()
        await card(page, "P1").focus()
        await page.keyboard.press("x")
        await expect(card(page, "P1").get_by_label("Keep PNG")).not_to_be_checked()
        await eventually(lambda: _kept(system, project["folder"], "keep_other", False), 10, "keep_other false")
    else:  # not yet: the PNG is shown, kept, and nothing tries to change it
        await expect(card(page, "P1").locator(".variant.other")).to_have_text("PNG")
        await card(page, "P1").focus()
        await page.keyboard.press("x")
        await expect(card(page, "P1").get_by_label("Keep JPG")).not_to_be_checked()
        await expect(card(page, "P1").locator(".flag.state")).to_have_text("Drop")
    # The same rules with a record that carries keep_other, whatever this server sends.
    rules = await page.evaluate("""async () => {
        const { variants, flagsFor, state } = await import('/static/photo.js');
        const photo = { filename: 'P2', files: ['P2.jpg', 'P2.ARW', 'P2.heic'], jpg_available: true,
          raw_available: true, other_available: true, keep_jpg: true, keep_raw: false, keep_other: true };
        return { labels: variants(photo).map(v => `${v.label}:${v.cullable}`), state: state(photo),
                 drop: flagsFor(photo, 'drop'), jpg: flagsFor(photo, 'jpg'),
                 without: (({ keep_other, ...older }) => variants(older).map(v => `${v.label}:${v.cullable}`))(photo),
                 olderDrop: (({ keep_other, ...older }) => flagsFor(older, 'drop'))(photo) };
    }""")
    assert rules["labels"] == ["JPG:true", "RAW:true", "HEIC:true"] and rules["state"] == "partial", rules
    assert rules["drop"] == {"keep_jpg": False, "keep_raw": False, "keep_other": False}, rules
    assert rules["jpg"] == {"keep_jpg": True, "keep_raw": False, "keep_other": False}, rules
    assert rules["without"] == ["JPG:true", "RAW:true", "HEIC:false"], rules  # a server without keep_other
    assert rules["olderDrop"] == {"keep_jpg": False, "keep_raw": False}, rules  # is never sent it


async def _kept(system: System, folder: str, flag: str, value: bool) -> bool:
    return (await photos(system, folder))["P1"][flag] is value
