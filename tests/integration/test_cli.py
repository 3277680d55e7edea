"""The `darkroom` command as an operator uses it."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import nats
import pytest

from darkroom.kernel.natsd import free_port
from tests.conftest import cli_env, darkroom_cli


async def _run(*args: str, env: dict | None = None, timeout: float = 30) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli(*args), env=env or cli_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode()


async def test_up_serves_readyz_within_seconds_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    began = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("up", "--data", str(data), "--port", str(port)),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with aiohttp.ClientSession() as http:
            while True:
                assert time.monotonic() - began < 10, "not ready within 10 s"
                assert process.returncode is None, (await process.stdout.read()).decode()
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            url = urlsplit((data / "nats.url").read_text().strip())
            assert (url.scheme, url.hostname) == ("nats", "127.0.0.1")
            async with http.post(f"http://127.0.0.1:{port}/api/tasks", json={"type": "maintenance"}) as response:
                assert response.status == 400  # a project-scoped type needs a project
                assert "project" in (await response.json())["error"]
            # Other commands find the embedded server through DIR/nats.url.
            code, out = await _run("replay", "--verify", "--data", str(data))
            assert code == 0, out
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 20)
    assert code == 0
    assert not (data / "nats.url").exists()
    assert (data / "nats").is_dir() and (data / "read-model.sqlite").is_file()


async def test_the_embedded_server_admits_only_the_user_in_nats_url_and_no_log_shows_the_password(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("up", "--data", str(data), "--port", str(free_port())),
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = b""
    try:
        while b"darkroom up:" not in output:
            line = await asyncio.wait_for(process.stdout.readline(), 20)
            assert line, output.decode()
            output += line
        url = (data / "nats.url").read_text().strip()
        password = urlsplit(url).password
        assert password and urlsplit(url).username == "darkroom"
        for private in (data / "nats.url", data / "nats-credentials.json", data / "nats" / "nats-server.conf"):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private

        async def quiet(exc: Exception) -> None:
            pass

        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(f"nats://127.0.0.1:{urlsplit(url).port}", allow_reconnect=False, error_cb=quiet)
        nc = await nats.connect(url)
        try:
            assert (await nc.jetstream().stream_info("DARKROOM")).state.last_seq >= 0
        finally:
            await nc.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output += (await asyncio.wait_for(process.communicate(), 20))[0]
    assert process.returncode == 0, output.decode()
    assert password not in output.decode() and "nats://darkroom:***@127.0.0.1:" in output.decode()


async def test_an_unknown_configuration_key_stops_start_up_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "darkroom.toml").write_text("[pipeline]\nmax_parallel_jobz = 4\n")
    code, out = await _run("up", "--data", str(data), timeout=10)
    assert code == 2 and "unknown configuration key pipeline.max_parallel_jobz" in out
    code, out = await _run(
        "up", "--data", str(tmp_path / "other"), env=cli_env(DARKROOM_PIPELINE__MAX_ATTEMPTS="many"), timeout=10
    )
    assert code == 2 and "pipeline.max_attempts" in out and "int" in out


async def test_a_bad_task_definitions_file_stops_start_up_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "defs.json"
    bad.write_text(json.dumps({"upload": {"label": "Upload", "user_relevant": True, "steps": []}}))
    code, out = await _run(
        "up",
        "--data",
        str(tmp_path / "data"),
        "--port",
        str(free_port()),
        env=cli_env(DARKROOM_TASKS__DEFINITIONS=str(bad)),
        timeout=20,
    )
    assert code == 2 and "task 'upload': has no steps" in out
    assert not (tmp_path / "data" / "nats.url").exists()


async def test_commands_without_a_server_say_how_to_find_one(tmp_path: Path) -> None:
    code, out = await _run("replay", "--data", str(tmp_path), timeout=10)
    assert code == 2 and "no NATS URL" in out and "darkroom up" in out
