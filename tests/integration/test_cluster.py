"""The 3-node layout of deploy/, on loopback: nats-server nodes from deploy/nats-cluster.conf (route
auth, deploy's accounts) and Darkroom from deploy/darkroom.toml, as two hosts: an api host (api,
projector, orchestrator; told of one node only) and a worker host (worker keeping its own read
model, a second orchestrator; projects shared). Replicas reach 3 at start; an upload and a commit
run; a node is killed, and the work goes on."""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from darkroom.backup import backup
from darkroom.kernel.bus import Bus
from darkroom.kernel.config import load_config
from darkroom.kernel.definitions import load_definitions
from darkroom.kernel.lease import Leases
from darkroom.kernel.natsd import free_port, nats_server_binary
from darkroom.kernel.provision import LEASE_BUCKET, provision
from darkroom.kernel.subjects import lane_consumer
from darkroom.runtime import Runtime
from darkroom.worker.handlers import BUILTIN
from tests.conftest import REPO, TEST_SETTINGS, System, culled, eventually
from tests.integration.test_backup import darkroom

DEPLOY = REPO / "deploy"
NODES = (1, 2, 3)


def _sub(text: str, old: str, new: str) -> str:
    """Replace what deploy's file says, failing loudly when it no longer says it."""
    assert old in text, f"deploy/ no longer has {old!r}: update this test with it"
    return text.replace(old, new)


@dataclass
class Node:
    n: int
    client: int = field(default_factory=free_port)
    route: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client}"


def node_config(node: Node, nodes: list[Node], store: Path, route_password: str | None = None) -> str:
    """deploy/nats-cluster.conf as node `n` on loopback: its name, ports and store; the others'
    route ports. Everything else (route auth, accounts, JetStream settings) as shipped."""
    text = (DEPLOY / "nats-cluster.conf").read_text()
    text = _sub(text, "server_name: darkroom-nats-1", f"server_name: darkroom-nats-{node.n}")
    text = _sub(text, "listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{node.client}")
    text = _sub(text, "http: 127.0.0.1:8222", f"http: 127.0.0.1:{node.http}")
    text = _sub(text, "listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{node.route}")
    text = _sub(text, "store_dir: /var/lib/nats", f'store_dir: "{store}"')
    for other in nodes:
        text = _sub(text, f"@nats-{other.n}.internal:6222", f"@127.0.0.1:{other.route}")
    if route_password is not None:  # an intruder that does not know the routes' password
        text = re.sub(r"nats-route://route:[^@]+@", f"nats-route://route:{route_password}@", text)
    return text


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes = [Node(n) for n in NODES]
        root.mkdir()
        (root / "nats-accounts.conf").write_text((DEPLOY / "nats-accounts.conf").read_text())

    def start(self, node: Node, text: str) -> None:
        conf = self.root / f"node-{node.n}.conf"
        conf.write_text(text)
        node.log = self.root / f"node-{node.n}.log"
        with node.log.open("wb") as log:
            node.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )

    async def up(self) -> None:
        for node in self.nodes:
            self.start(node, node_config(node, self.nodes, self.root / f"store-{node.n}"))
        async with aiohttp.ClientSession() as http:
            for node in self.nodes:
                await eventually(lambda: _healthy(http, node), 30, f"node {node.n} to be healthy")

    def kill(self, node: Node) -> None:
        if node.process is not None and node.process.poll() is None:
            node.process.kill()
            node.process.wait(10)

    def stop(self) -> None:
        for node in self.nodes:
            self.kill(node)


async def _healthy(http: aiohttp.ClientSession, node: Node) -> bool:
    assert node.process is not None and node.process.poll() is None, node.log.read_text()[-3000:]
    try:
        async with http.get(f"http://127.0.0.1:{node.http}/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path / "cluster")
    try:
        await cluster.up()
        yield cluster
    finally:
        cluster.stop()


def darkroom_toml(cluster: Cluster, only: Node | None = None) -> str:
    """deploy/darkroom.toml with the nodes' loopback addresses (only one of them, for `only`)."""
    text = (DEPLOY / "darkroom.toml").read_text()
    for node in cluster.nodes:
        text = _sub(text, f"nats-{node.n}.internal:4222", node.address)
    if only is not None:
        url = re.search(r'^url = "([^"]+)"', text, re.M).group(1)
        text = text.replace(url, next(u for u in url.split(",") if only.address in u))
    return text


def host(cluster: Cluster, data: Path, roles: tuple[str, ...], name: str, only: Node | None = None) -> Runtime:
    data.mkdir(parents=True, exist_ok=True)
    (data / "darkroom.toml").write_text(darkroom_toml(cluster, only))
    config = load_config(data, environ={}, overrides=TEST_SETTINGS | {"api.host": "127.0.0.1"})
    assert config.nats.replicas == 3
    return Runtime(
        config=config,
        data_dir=data,
        nats_url=config.nats.url,
        definitions=load_definitions(),
        job_types=BUILTIN,
        roles=roles,
        orchestrator_name=name,
    )


async def _replicas(bus: Bus) -> dict[str, int]:
    jsm = bus.jsm
    return {
        "stream": (await jsm.stream_info("DARKROOM")).config.num_replicas,
        "lease bucket": (await jsm.stream_info(f"KV_{LEASE_BUCKET}")).config.num_replicas,
        **{
            lane: (await jsm.consumer_info("DARKROOM", lane_consumer(lane))).config.num_replicas
            for lane in ("priority", "normal")
        },
    }


async def _behind(bus: Bus) -> list[str]:
    """The replicas, of the stream, the lease bucket and the lanes, not caught up with their leader."""
    jsm = bus.jsm
    infos = [
        await jsm.stream_info("DARKROOM"),
        await jsm.stream_info(f"KV_{LEASE_BUCKET}"),
        *[await jsm.consumer_info("DARKROOM", lane_consumer(lane)) for lane in ("priority", "normal")],
    ]
    return [
        f"{getattr(info, 'name', None) or info.config.name} on {peer.name}"
        for info in infos
        for peer in (info.cluster and info.cluster.replicas) or []
        if not peer.current
    ]


async def test_the_deployed_cluster_runs_uploads_and_commits_and_outlives_a_node(
    cluster: Cluster, tmp_path: Path
) -> None:
    began = time.monotonic()
    first, second, third = cluster.nodes
    # Route auth: a server without the routes' password is turned away and never joins.
    intruder = Node(9)
    cluster.start(intruder, node_config(intruder, cluster.nodes, tmp_path / "intruder", route_password="guess"))
    try:
        await eventually(lambda: _logged(intruder, "authorization violation"), 10, "the intruder refused")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{first.http}/routez") as response:
                routes = (await response.json())["routes"]
        assert {r["remote_name"] for r in routes} == {"darkroom-nats-2", "darkroom-nats-3"}
    finally:
        cluster.kill(intruder)

    api_host = host(cluster, tmp_path / "host-a", ("projector", "orchestrator", "api"), "orchestrator-a", only=first)
    worker_host = host(cluster, tmp_path / "host-b", ("worker", "orchestrator"), "orchestrator-b")
    (api_host.data_dir / "projects").mkdir()
    (worker_host.data_dir / "projects").symlink_to(api_host.data_dir / "projects")  # the shared storage
    system = System(api_host, api_host.data_dir)  # its `server` is only asked for a URL
    system.bus = await Bus.connect(worker_host.nats_url, "darkroom-test", security=worker_host.config.nats)
    try:
        # An older deployment made everything with one replica: the services bring it to deploy's 3.
        await provision(system.bus.js, load_config(tmp_path, environ={}, overrides=TEST_SETTINGS))
        assert set((await _replicas(system.bus)).values()) == {1}
        for runtime in (api_host, worker_host):
            await runtime.start()
            system.runtimes.append(runtime)
        system.api = api_host
        assert await _replicas(system.bus) == {"stream": 3, "lease bucket": 3, "priority": 3, "normal": 3}
        # Started only once every new replica caught up: a node lost next must not take a quorum with it.
        assert await _behind(system.bus) == []
        assert worker_host.projector is not None  # no projector on its host: it keeps its own read model

        folder = await culled(system, "Before")
        assert (folder / "A.jpg").exists() and (folder / ".trash" / "B.jpg").exists()

        # The api host knew only the first node: it goes on through the others it learned of from
        # the cluster, signing in to them too.
        cluster.kill(first)
        killed = time.monotonic()
        # A delivery to an orchestrator lost with its consumer's leader comes again after its ack
        # wait (30 s): mostly the work goes on within seconds, at worst after that.
        system.retry_unavailable_s = 20  # while a replica takes over, the api answers 503: a client tries again
        folder = await culled(system, "Later", "D", "E", timeout=40)
        print(f"an upload and a commit started as a node died took {time.monotonic() - killed:.1f} s")
        assert (folder / "D.jpg").exists() and (folder / ".trash" / "E.jpg").exists()
        assert (folder / ".thumb" / "D.webp").exists()
        assert api_host.buses["api"].nc.connected_url.port in (second.client, third.client)
        await system.verify_replay()

        # Backed up from the cluster as the services' user, restored into a fresh folder on a
        # server of its own: the restored read model equals one rebuilt from the restored log.
        made = await backup(system.bus, api_host.data_dir, tmp_path / "backup", Leases(system.bus, "backup", 3).hold)
        assert {"projects/Before/A.jpg", "projects/Later/.trash/E.jpg"} <= {f.path for f in made.files}
        fresh = tmp_path / "fresh"
        for command in (("restore", str(tmp_path / "backup")), ("replay", "--verify")):
            code, out = await darkroom(*command, "--data", str(fresh))
            assert code == 0, out
        assert (fresh / "projects" / "Later" / ".trash" / "E.jpg").is_file()
    finally:
        await system.close()
    assert time.monotonic() - began < 60


async def _logged(node: Node, text: str) -> bool:
    return text in node.log.read_text().lower()
