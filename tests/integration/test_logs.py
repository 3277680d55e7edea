"""What a real `darkroom up` writes on stderr, in each format: one line per message (a traceback
included), UTC times with their zone, the level asked for, and no secret."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from datetime import datetime
from pathlib import Path

import pytest

from darkroom.kernel.natsd import free_port
from tests.conftest import cli_env, darkroom_cli, until_ready

TEXT_LINE = re.compile(r"^(\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): (.*)$")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


async def _up(data: Path, *args: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *darkroom_cli("up", "--data", str(data), "--port", str(port), *args),
        env=cli_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )

    await until_ready(f"http://127.0.0.1:{port}", process, "darkroom up")
    return process, f"http://127.0.0.1:{port}"


def _nats_server_of(pid: int) -> int:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return next(child for child in children if b"nats-server" in Path(f"/proc/{child}/cmdline").read_bytes())


async def _killed_server_log(tmp_path: Path, log_format: str) -> tuple[int, list[str], str]:
    """`darkroom up` whose embedded nats-server is killed: it logs the failure with its traceback
    and exits 1. Its exit code, its stderr's lines, and the server's password."""
    data = tmp_path / log_format
    process, _ = await _up(data, "--log-format", log_format)
    password = re.search(r"//[^:]+:([^@]+)@", (data / "nats.url").read_text()).group(1)
    os.kill(_nats_server_of(process.pid), signal.SIGKILL)
    err = await asyncio.wait_for(process.stderr.read(), 30)
    code = await asyncio.wait_for(process.wait(), 15)
    return code, err.decode().splitlines(), password


def _utc(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert moment.utcoffset().total_seconds() == 0
    return moment


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the server's pid in /proc")
async def test_json_logs_are_one_object_a_line_with_utc_times_and_the_traceback_inside(tmp_path: Path) -> None:
    code, lines, password = await _killed_server_log(tmp_path, "json")
    assert code == 1, lines
    entries = [json.loads(line) for line in lines]  # every line is one whole object: nothing else
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
        assert entry["level"] in LEVELS
        _utc(entry["time"])
    assert any(e["message"].startswith("darkroom up: http://127.0.0.1:") for e in entries), entries
    failed = next(e for e in entries if "embedded nats-server failed" in e["message"])
    assert failed["level"] == "ERROR" and failed["exception"].startswith("Traceback (most recent call last):\n")
    assert "ServerError: the embedded nats-server exited" in failed["exception"]
    assert password not in "\n".join(lines) and "***@" in "\n".join(lines)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the server's pid in /proc")
async def test_text_logs_keep_a_traceback_on_its_line(tmp_path: Path) -> None:
    code, lines, password = await _killed_server_log(tmp_path, "text")
    assert code == 1, lines
    for line in lines:
        match = TEXT_LINE.match(line)
        assert match, f"not a log line: {line!r}"
        _utc(match.group(1))
    failed = next(line for line in lines if "embedded nats-server failed" in line)
    assert " | Traceback (most recent call last):\\n  File " in failed
    assert password not in "\n".join(lines)


async def test_log_level_leaves_out_less_severe_messages(tmp_path: Path) -> None:
    process, _ = await _up(tmp_path / "quiet", "--log-format", "json", "--log-level", "warning")
    process.send_signal(signal.SIGTERM)
    err = (await asyncio.wait_for(process.stderr.read(), 30)).decode()
    assert await asyncio.wait_for(process.wait(), 15) == 0
    entries = [json.loads(line) for line in err.splitlines()]
    assert [e for e in entries if e["level"] in ("DEBUG", "INFO")] == []

    process, _ = await _up(tmp_path / "told", "--log-format", "json", "--log-level", "INFO")
    process.send_signal(signal.SIGTERM)
    err = (await asyncio.wait_for(process.stderr.read(), 30)).decode()
    assert await asyncio.wait_for(process.wait(), 15) == 0
    messages = [json.loads(line)["message"] for line in err.splitlines()]
    assert any(m.startswith("darkroom up: ") for m in messages) and "stopping" in messages


async def test_without_a_terminal_the_default_is_json(tmp_path: Path) -> None:
    process, _ = await _up(tmp_path / "default")
    process.send_signal(signal.SIGTERM)
    err = (await asyncio.wait_for(process.stderr.read(), 30)).decode()
    assert await asyncio.wait_for(process.wait(), 15) == 0
    assert any(json.loads(line)["message"].startswith("darkroom up: ") for line in err.splitlines())
