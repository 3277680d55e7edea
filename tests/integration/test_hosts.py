"""Services spread over hosts as docs/deploying.md lays them out: a worker on a host of its own
keeps its own read model; one projector per data folder; replicas the server cannot hold refused."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.natsd import NatsServer
from darkroom.kernel.provision import ProvisionError, provision
from darkroom.projector.keeper import KeptElsewhere
from darkroom.runtime import Runtime
from darkroom.worker.handlers import BUILTIN
from tests.conftest import System, culled, make_config


async def test_a_worker_on_a_host_of_its_own_keeps_its_own_read_model_and_does_its_jobs(
    system: System, tmp_path: Path, caplog
) -> None:
    await system.start(roles=("projector", "orchestrator", "api"), job_types=BUILTIN, definitions=load_definitions())
    # Host B: its own data folder, the project storage shared with host A.
    host_b = tmp_path / "host-b"
    host_b.mkdir()
    (system.data_dir / "projects").mkdir(parents=True, exist_ok=True)
    (host_b / "projects").symlink_to(system.data_dir / "projects")
    worker = Runtime(
        config=make_config(host_b),
        data_dir=host_b,
        nats_url=system.server.url,
        definitions=load_definitions(),
        job_types=BUILTIN,
        roles=("worker",),
    )
    with caplog.at_level(logging.INFO, logger="darkroom"):
        await worker.start()
    try:
        assert "so this worker keeps a replica" in caplog.text
        folder = await culled(system)  # derivatives, then a commit that reads which files to remove
        assert (folder / "A.jpg").exists() and (folder / ".trash" / "B.jpg").exists()
        assert (folder / ".thumb" / "A.webp").exists()
        assert worker.projector is not None and (host_b / "read-model-worker.sqlite").is_file()
    finally:
        await worker.stop()


async def test_a_second_projector_on_one_data_folder_is_refused_naming_the_first(system: System) -> None:
    await system.start(roles=("projector", "api"))
    with pytest.raises(KeptElsewhere, match=r"kept by darkroom projector\+api \(pid \d+\): one projector per data"):
        await system.start(roles=("projector",))
    worker = await system.start(roles=("worker",))  # reads the one the projector keeps
    assert worker.projector is None and worker.worker_read is not None


async def test_a_projector_started_after_a_worker_on_its_data_folder_is_not_refused(system: System) -> None:
    # Units start in any order: the worker keeps a replica of its own meanwhile, not the projector's file.
    worker = await system.start(roles=("worker",))
    projector = await system.start(roles=("projector", "orchestrator", "api"))
    assert worker.projector is not None and projector.projector is not None
    assert worker.read_model != projector.read_model
    task = await system.start_task("three")
    assert (await system.wait_task(task["id"]))["task"]["status"] == "completed"


async def test_replicas_a_single_server_cannot_hold_are_refused_with_what_to_set(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    system = System(nats_server, tmp_path / "data")
    try:
        await system.start(roles=("projector",))
        with pytest.raises(ProvisionError, match="cannot have 3 replicas .*nats.replicas must not exceed"):
            await provision(system.bus.js, make_config(tmp_path, nats__replicas=3))
        assert (await system.bus.jsm.stream_info("DARKROOM")).config.num_replicas == 1
    finally:
        await system.close()


async def test_retention_limits_reach_the_stream_said_loudly_and_go_when_unset(
    nats_server: NatsServer, tmp_path: Path, caplog
) -> None:
    system = System(nats_server, tmp_path / "data")
    try:
        await system.start(roles=("projector",))
        stream = system.bus.jsm
        assert (await stream.stream_info("DARKROOM")).config.max_bytes == -1  # by default, every event kept
        with caplog.at_level(logging.WARNING, logger="darkroom"):
            await provision(system.bus.js, make_config(tmp_path, nats__max_bytes="1GB", nats__max_age="365d"))
        config = (await stream.stream_info("DARKROOM")).config
        assert (config.max_bytes, config.max_age) == (1024**3, 365 * 86400)
        assert "nats.max_bytes = 1,073,741,824 bytes and nats.max_age = 365 days" in caplog.text
        await provision(system.bus.js, make_config(tmp_path))
        config = (await stream.stream_info("DARKROOM")).config
        assert (config.max_bytes, config.max_age) == (-1, 0)
    finally:
        await system.close()
