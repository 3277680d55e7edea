"""Processes at the edges: NATS unreachable or gone, a busy port, SIGTERM, kill -9: every command
ends in time with a message, and leaves no process behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import nats
import pytest

from darkroom.kernel import natsd
from darkroom.kernel.natsd import NatsServer, ServerError, free_port
from tests.conftest import cli_env, darkroom_cli, eventually, until_ready

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads the process tree from /proc")


@pytest.fixture
async def spawn():
    """Runs `darkroom …`; whatever is still running when the test ends (it failed) is killed."""
    started: list[asyncio.subprocess.Process] = []

    async def run(*args: str, env: dict | None = None, group: bool = False) -> asyncio.subprocess.Process:
        """`group`: the command leads a process group of its own, as in a terminal's foreground."""
        process = await asyncio.create_subprocess_exec(
            *darkroom_cli(*args),
            env=env or cli_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            process_group=0 if group else None,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _finish(process: asyncio.subprocess.Process, within: float) -> tuple[int, str, float]:
    """Exit code, output and seconds taken, or a failure naming what was still running."""
    began = time.monotonic()
    try:
        out, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        raise AssertionError(f"still running after {within}s: {out.decode()[-2000:]}") from None
    return process.returncode, out.decode(), time.monotonic() - began


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            found |= {int(c) for c in Path(f"/proc/{pid}/task/{thread}/children").read_text().split()}
        except OSError:  # the thread ended meanwhile
            pass
    return found


def _descendants(pid: int) -> set[int]:
    found = _children(pid)
    for child in list(found):
        found |= _descendants(child)
    return found


def _second(up: asyncio.subprocess.Process) -> int:
    """`up`'s second Python process (its worker), the one there is."""
    (child,) = [pid for pid in _children(up.pid) if " child --roles " in _program(pid)]
    return child


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


def _program(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def _ready(port: int, process: asyncio.subprocess.Process, timeout: float = 20) -> None:
    await until_ready(f"http://127.0.0.1:{port}", process, f"the process on port {port}", timeout)


PROBE = "probe"


async def _following(tail: asyncio.subprocess.Process, url: str, timeout: float = 20) -> None:
    """Until `tail PROBE` prints what is published on PROBE: it is connected and subscribed."""
    nc = await nats.connect(url)
    try:

        async def printed() -> bool:
            assert tail.returncode is None and tail.stdout is not None
            await nc.publish(PROBE, b"here")
            try:
                return await asyncio.wait_for(tail.stdout.readline(), 0.2) == b"here\n"
            except TimeoutError:
                return False

        await eventually(printed, timeout, "tail to print a message of its subject")
    finally:
        await nc.close()


async def test_commands_give_up_within_10s_naming_the_url_when_nats_is_unreachable(tmp_path: Path, spawn) -> None:
    url = f"nats://127.0.0.1:{free_port()}"  # nobody listens there
    # What starting and ending a command costs on this machine now, waiting for nothing (on a
    # loaded 2-core VM up to 5 s): a command may take that on top of its own wait.
    code, out, start_up = await _finish(await spawn("dead-letters", "--data", str(tmp_path / "empty")), 30)
    assert code == 2 and "no read model" in out, out
    # A service starting (as worker and projector do), a one-shot read (as replay does), a follower.
    for command in (("api", "--port", str(free_port())), ("audit", "task", "nope"), ("tail",)):
        code, out, seconds = await _finish(await spawn(*command, "--nats", url, "--data", str(tmp_path / "d")), 30)
        lines = [line for line in out.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and url in lines[0], (command, code, out)
        assert seconds < max(10, start_up + 7), (command, seconds, start_up)


async def test_up_on_a_busy_port_exits_1_with_a_message_and_leaves_nothing_running(tmp_path: Path, spawn) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, _ = await _finish(await spawn("up", "--data", str(data), "--port", str(port)), 20)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], out
    os.close(await natsd.lock_store(data / "nats", wait_s=0))  # its nats-server is gone: the store is free
    assert not (data / "nats.url").exists()


async def test_sigterm_ends_every_command_within_10s_while_nats_is_down(tmp_path: Path, spawn) -> None:
    server = await NatsServer(tmp_path / "nats").start()
    data = str(tmp_path / "data")
    api_port, up_port, health_port = free_port(), free_port(), free_port()
    try:
        up = await spawn("up", "--nats", server.url, "--data", data, "--port", str(up_port))
        await _ready(up_port, up)
        api = await spawn("api", "--nats", server.url, "--data", data, "--port", str(api_port))
        worker = await spawn("worker", "--nats", server.url, "--data", data, "--health-port", str(health_port))
        # A subject outside the log: the test sees tail follow it without storing anything.
        tail = await spawn("tail", PROBE, "--nats", server.url, "--data", data)
        await _ready(api_port, api)
        await _ready(health_port, worker)
        await _following(tail, server.url)
    finally:
        await server.stop()
    await asyncio.sleep(1.0)  # NATS has been away for a while: every client is reconnecting
    processes = {"up": up, "api": api, "worker": worker, "tail": tail}
    for process in processes.values():
        process.send_signal(signal.SIGTERM)
    for name, process in processes.items():
        code, out, seconds = await _finish(process, 10)
        assert code == 0, (name, out)


async def test_a_killed_up_takes_its_nats_server_with_it_and_the_next_up_has_its_events(tmp_path: Path, spawn) -> None:
    data, port = tmp_path / "data", free_port()
    up = await spawn("up", "--data", str(data), "--port", str(port))
    await _ready(port, up)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/api/projects", json={"name": "Kept"}) as response:
            assert response.status == 201
    servers = [pid for pid in _children(up.pid) if "nats-server" in _program(pid)]
    assert len(servers) == 1
    worker = _second(up)
    await eventually(lambda: _async(len(_children(worker)) >= 2), 20, "the worker's image processes")
    everything = _descendants(up.pid)  # nats-server, the worker process and its image processes
    up.kill()
    await up.wait()
    await eventually(lambda: _async(not _alive(servers[0])), 10, "the embedded nats-server to end with darkroom up")
    await eventually(
        lambda: _async(not any(_alive(pid) for pid in everything)), 15, "every process of darkroom up to end with it"
    )

    again = await spawn("up", "--data", str(data), "--port", str(port))
    try:
        await _ready(port, again)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/projects") as response:
            assert [p["name"] for p in (await response.json())["projects"]] == ["Kept"]
    finally:
        again.send_signal(signal.SIGTERM)
        assert (await _finish(again, 10))[0] == 0


async def test_a_second_nats_server_is_refused_the_store_of_a_running_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(natsd, "LOCK_WAIT_S", 0.5)
    first = await NatsServer(tmp_path / "nats").start()
    try:
        with pytest.raises(ServerError, match="another nats-server is running on the store"):
            await NatsServer(tmp_path / "nats").start()
        assert (tmp_path / "nats" / "nats-server.conf").read_text().count(str(first.port)) == 1  # untouched
    finally:
        await first.stop()
    second = await NatsServer(tmp_path / "nats").start()  # once the first has ended, the store is free
    await second.stop()


async def test_a_killed_worker_leaves_no_image_process(tmp_path: Path, spawn) -> None:
    server = await NatsServer(tmp_path / "nats").start()
    try:
        for _ in range(2):  # killed as its image processes start, then once they run
            worker = await spawn(
                "worker",
                "--nats",
                server.url,
                "--data",
                str(tmp_path / "data"),
                env=cli_env(DARKROOM_PROCESSING__WORKERS="2"),
            )
            images: set[int] = set()

            async def started():
                images.update(pid for pid in _children(worker.pid) if "spawn_main" in _program(pid))
                return len(images) == 2

            await eventually(started, 20, "two image processes")
            if _ > 0:
                await asyncio.sleep(2.0)  # well into their work loop
            worker.kill()
            await worker.wait()
            await eventually(
                lambda: _async(not any(_alive(pid) for pid in images)),
                10,
                "the image processes to end with their worker",
            )
    finally:
        await server.stop()


def _json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


async def _async(value):
    return value


async def test_ctrl_c_at_a_terminal_stops_up_cleanly_with_its_nats_server(tmp_path: Path, spawn) -> None:
    # A terminal's Ctrl-C signals its whole foreground process group, nats-server and image processes too.
    data, port = tmp_path / "data", free_port()
    up = await spawn("up", "--data", str(data), "--port", str(port), group=True)
    await _ready(port, up)
    (server,) = [pid for pid in _children(up.pid) if "nats-server" in _program(pid)]
    everything = _descendants(up.pid)
    assert _second(up) in everything
    os.killpg(up.pid, signal.SIGINT)
    code, out, _ = await _finish(up, 10)
    assert code == 0 and "nats-server exited" not in out and "worker process exited" not in out, out
    assert not _alive(server)
    assert not [pid for pid in everything if _alive(pid)], [_program(pid) for pid in everything if _alive(pid)]


async def test_up_ends_with_exit_1_when_its_nats_server_dies(tmp_path: Path, spawn) -> None:
    data, port = tmp_path / "data", free_port()
    up = await spawn("up", "--data", str(data), "--port", str(port))
    await _ready(port, up)
    (server,) = [pid for pid in _children(up.pid) if "nats-server" in _program(pid)]
    os.kill(server, signal.SIGKILL)
    code, out, _ = await _finish(up, 10)
    assert code == 1 and "the embedded nats-server exited" in out, out


async def _task_completes(base: str) -> None:
    """A maintenance task of a new project runs its four steps: a worker takes jobs."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/projects", json={"name": f"p{time.monotonic_ns()}"}) as response:
            assert response.status == 201, await response.text()
            folder = (await response.json())["project"]["folder"]
        async with http.post(f"{base}/api/projects/{folder}/tasks", json={"type": "maintenance"}) as response:
            assert response.status == 202, await response.text()
            task_id = (await response.json())["task"]["id"]

        async def completed() -> bool:
            async with http.get(f"{base}/api/tasks/{task_id}") as response:
                return (await response.json()).get("task", {}).get("status") == "completed"

        await eventually(completed, 30, f"task {task_id} to complete")


async def test_up_starts_its_worker_process_again_when_it_dies_and_ends_when_it_keeps_dying(
    tmp_path: Path, spawn
) -> None:
    data, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    up = await spawn("up", "--data", str(data), "--port", str(port), env=cli_env(DARKROOM_UP__PROCESSES="2"))
    await _ready(port, up)
    first = _second(up)
    os.kill(first, signal.SIGKILL)
    await eventually(lambda: _async(_second_or_none(up) not in (None, first)), 20, "a new worker process")
    await _ready(port, up)
    await _task_completes(base)
    for _ in range(2):  # the third exit within a minute: `up` stops trying, and ends
        child = await eventually(lambda: _async(_second_or_none(up)), 20, "a worker process")
        os.kill(child, signal.SIGKILL)
        await eventually(lambda: _async(not _alive(child)), 10, "the worker process to end")
    code, out, _ = await _finish(up, 15)
    assert "the worker process exited with -9; starting it again" in out, out
    assert code == 1 and "the worker process exited with -9, 3 times within 60s" in out, out
    # What a killed worker's image pool leaves behind says so on a line a log collector reads too.
    unreadable = [line for line in out.splitlines() if not _json_object(line)]
    assert unreadable == [], unreadable
    assert any("leaked semaphore" in json.loads(line)["message"] for line in out.splitlines()), out
    os.close(await natsd.lock_store(data / "nats", wait_s=0))  # its nats-server is gone too
    assert not (data / "nats.url").exists()


async def test_up_with_one_process_runs_every_service_in_it(tmp_path: Path, spawn) -> None:
    data, port = tmp_path / "data", free_port()
    up = await spawn("up", "--data", str(data), "--port", str(port), env=cli_env(DARKROOM_UP__PROCESSES="1"))
    await _ready(port, up)
    await _task_completes(f"http://127.0.0.1:{port}")
    assert _second_or_none(up) is None
    assert any("spawn_main" in _program(pid) for pid in _children(up.pid))  # its own image processes
    up.send_signal(signal.SIGTERM)
    assert (await _finish(up, 10))[0] == 0


def _second_or_none(up: asyncio.subprocess.Process) -> int | None:
    found = [pid for pid in _children(up.pid) if " child --roles " in _program(pid) and _alive(pid)]
    return found[0] if found else None
