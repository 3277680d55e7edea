"""The built wheel, installed on its own: `pip install darkroom-*.whl` into a fresh venv (not editable)
gives a `darkroom` that starts, turns an upload into a thumbnail, and rebuilds its read model."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from darkroom.kernel.natsd import free_port
from tests.conftest import PHOTOS, REPO, eventually

pytestmark = pytest.mark.slow


def _run(*command: str | Path, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env()
    )
    assert done.returncode == 0, f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _env() -> dict[str, str]:
    """What an operator's shell has: no DARKROOM_ settings, nothing on PYTHONPATH."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_") and k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed in it (its dependencies from the
    registries, through pip's cache); its bin/ folder."""
    root = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", root / "dist", REPO, cwd=root)
    (wheel,) = (root / "dist").glob("darkroom-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", root / "venv", cwd=root)
    python = root / "venv" / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", wheel, cwd=root)
    return root / "venv" / "bin"


def test_the_wheel_holds_the_package_and_its_data_and_no_checkout_is_needed(installed: Path, tmp_path: Path) -> None:
    where = json.loads(
        _run(
            installed / "python",
            "-c",
            "import darkroom, json, importlib.resources as r; print(json.dumps("
            "[darkroom.__file__, str(r.files('darkroom.schemas') / 'events' / 'task.requested.json')]))",
            cwd=tmp_path,
        )
    )
    assert all(Path(p).is_relative_to(installed.parent) for p in where), where  # the venv's, not the checkout's
    assert Path(where[1]).is_file()
    refused = subprocess.run(
        [installed / "darkroom", "schemas", "--write"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert refused.returncode == 2 and "checkout" in refused.stderr, refused.stderr


async def test_the_installed_darkroom_up_turns_an_upload_into_a_thumbnail(installed: Path, tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    process = await asyncio.create_subprocess_exec(
        installed / "darkroom",
        "up",
        "--data",
        str(data),
        "--port",
        str(port),
        cwd=tmp_path,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as http:
            await _until_ready(http, base, process)
            async with http.post(f"{base}/api/projects", json={"name": "Wheel"}) as response:
                assert response.status == 201, await response.text()
                folder = (await response.json())["project"]["folder"]
            form = aiohttp.FormData()
            form.add_field("photos", (PHOTOS / "cameras" / "Canon_40D.jpg").read_bytes(), filename="Canon_40D.jpg")
            async with http.post(f"{base}/api/projects/{folder}/upload", data=form) as response:
                assert response.status == 201, await response.text()
            photo = await _until_generated(http, f"{base}/api/projects/{folder}/photos")
            async with http.get(
                f"{base}/api/projects/{folder}/thumbnail/Canon_40D?v={photo['updated_at']}"
            ) as response:
                assert response.status == 200 and response.content_type == "image/webp"
                assert (await response.read())[8:12] == b"WEBP"
        # The rebuild's reader and writer processes are started by module, from the installed package.
        verify = await asyncio.create_subprocess_exec(
            installed / "darkroom",
            "replay",
            "--verify",
            "--data",
            str(data),
            cwd=tmp_path,
            env=_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(verify.communicate(), 60)
        assert verify.returncode == 0, out.decode()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    assert code == 0, (await process.stdout.read()).decode()


async def _until_ready(http: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process) -> None:
    async def ready() -> bool:
        assert process.returncode is None, (await process.stdout.read()).decode()
        try:
            async with http.get(f"{base}/readyz") as response:
                return response.status == 200
        except aiohttp.ClientConnectionError:
            return False

    await eventually(ready, 30, "the installed darkroom up to be ready")


async def _until_generated(http: aiohttp.ClientSession, url: str) -> dict:
    async def made() -> dict | None:
        async with http.get(url) as response:
            photos = (await response.json())["photos"]
        return photos[0] if photos and photos[0]["thumbnail_status"] != "pending" else None

    photo = await eventually(made, 30, "the thumbnail")
    assert photo["thumbnail_status"] == "generated", photo
    return photo
