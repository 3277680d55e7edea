"""Browser fixtures: Debian's headless Chromium driven by Playwright, against real services."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import REPO, System

expect.set_options(timeout=15_000)  # a busy two-core machine; a test that needs longer says so

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return (
        os.environ.get("CHROMIUM")
        or shutil.which("chromium")
        or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium here (apt-get install chromium, or set CHROMIUM to its path)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


# Every toast a page shows, in order, even after it has gone (toasts leave after a few seconds), and the
# most toasts and upload panels it ever showed at once.
RECORD_TOASTS = """
window.__toasts = [];
window.__most = { toasts: 0, uploads: 0 };
new MutationObserver((changes) => {
  for (const change of changes) for (const node of change.addedNodes) {
    if (node.classList?.contains('toast')) window.__toasts.push(node.querySelector('strong').textContent);
  }
  window.__most.toasts = Math.max(window.__most.toasts, document.querySelectorAll('.toast').length);
  window.__most.uploads = Math.max(window.__most.uploads, document.querySelectorAll('li.upload').length);
}).observe(document, { childList: true, subtree: true });
"""
# What a person on a phone finds wrong on the screen as it is: a control a finger cannot hit (under
# 44 px either way, counting the label it sits in), or something reaching past the screen's right edge.
# Behind a modal dialog nothing counts; a photo zoomed to 100% may reach past the edge.
PHONE_DEFECTS = r"""
() => {
  const shown = (el) => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden'
      && !el.closest('.visually-hidden'); };
  const modal = [...document.querySelectorAll('dialog[open]')].find((d) => d.matches(':modal'));
  const counted = (el) => shown(el) && (!modal || modal.contains(el));
  const named = (el) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''} "${
    (el.getAttribute('aria-label') || el.labels?.[0]?.textContent || el.textContent || el.value || '')
      .trim().slice(0, 30)}"`;
  const found = [];
  for (const el of document.querySelectorAll('button, a[href], input:not([type=hidden]), select, summary')) {
    if (!counted(el)) continue;
    const areas = [el, el.closest('label'), ...(el.labels ?? [])].filter(Boolean).map((e) => e.getBoundingClientRect());
    const [w, h] = [Math.max(...areas.map((r) => r.width)), Math.max(...areas.map((r) => r.height))];
    if (w < 43.5 || h < 43.5) found.push(`${named(el)} is ${Math.round(w)}×${Math.round(h)} px`);
  }
  for (const el of document.querySelectorAll('body *')) {
    if (counted(el) && !el.closest('.loupe-picture') && el.getBoundingClientRect().right > innerWidth + 1) {
      found.push(`${named(el)} reaches past the right edge`);
    }
  }
  return found;
}
"""
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


class Tab:
    """A page plus what went wrong in it: uncaught exceptions, console errors and what a phone shows wrong
    (see screens) fail the test."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.problems: list[str] = []
        self.expected: list[str] = []  # parts of problems a test causes on purpose
        page.on("pageerror", lambda exc: self.problems.append(f"uncaught: {exc}"))
        page.on("console", lambda msg: self.problems.append(f"console: {msg.text}") if msg.type == "error" else None)

    async def wait_toasts(self, text: str, n: int, timeout: float = 45_000) -> None:
        """Until the page has shown `n` toasts saying `text` (visible or gone by now)."""
        await self.page.wait_for_function(
            "([text, n]) => window.__toasts.filter(t => t === text).length >= n", arg=[text, n], timeout=timeout
        )

    async def toasts(self) -> list[str]:
        return await self.page.evaluate("window.__toasts")

    async def most(self) -> dict:
        """The most toasts and upload panels shown at once so far."""
        return await self.page.evaluate("window.__most")

    async def screens(self, name: str, full_page: bool = False) -> None:
        """The page as it is now, at 1440×900 and at 390×844 (a phone): tests/artifacts/<name>-desktop.png, -phone.png.
        What a phone shows is checked too (PHONE_DEFECTS): what is found fails the test."""
        size = self.page.viewport_size
        for suffix, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            await self.page.set_viewport_size(viewport)
            await self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            await self.page.screenshot(path=screenshot_path(f"{name}-{suffix}.png"), full_page=full_page)
            if viewport is PHONE:
                self.problems += [f"{name} on a phone: {d}" for d in await self.page.evaluate(PHONE_DEFECTS)]
        await self.page.set_viewport_size(size)


@contextlib.asynccontextmanager
async def open_tab(browser: Browser, **options) -> AsyncIterator[Tab]:
    """A page in a context of its own (a desktop window unless `options` say otherwise); what went wrong
    in it fails the test."""
    context = await browser.new_context(**({"viewport": DESKTOP} | options))
    context.set_default_timeout(30_000)
    await context.add_init_script(RECORD_TOASTS)
    tab = Tab(await context.new_page())
    try:
        yield tab
    finally:
        await context.close()  # before the services stop: no stream is cut under a live page
    assert [p for p in tab.problems if not any(e in p for e in tab.expected)] == [], tab.problems


@pytest.fixture
async def tab(browser: Browser) -> AsyncIterator[Tab]:
    async with open_tab(browser) as opened:
        yield opened


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


async def start(system: System, definitions: dict | None = None, job_types: dict | None = None, **settings):
    """The shipped task definitions and job handlers, as `darkroom up` runs them (plus any given)."""
    from darkroom.kernel.definitions import load_definitions
    from darkroom.worker.handlers import BUILTIN

    return await system.start(
        job_types=BUILTIN | (job_types or {}), definitions=load_definitions() | (definitions or {}), **settings
    )


def small_jpegs(n: int, prefix: str = "IMG_", start: int = 1) -> list[dict]:
    """`n` small distinct JPEGs, as Playwright's set_input_files takes them: landscape, every third portrait."""
    from PIL import Image, ImageDraw

    files = []
    for i in range(start, start + n):
        size = (96, 128) if i % 3 == 0 else (128, 96)
        image = Image.new("RGB", size, ((i * 47) % 200 + 30, (i * 89) % 200 + 30, (i * 131) % 200 + 30))
        ImageDraw.Draw(image).text((8, 8), str(i), fill=(255, 255, 255))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=80)
        files.append({"name": f"{prefix}{i:04d}.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()})
    return files
