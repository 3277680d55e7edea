"""`nats.nkey` and `nats.tls.*` reach nats-py: a server that admits only one nkey user, over TLS
with a CA of the test's own (throwaway certificates made with openssl)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import AsyncIterator

import nkeys
import pytest

from darkroom.kernel.bus import Bus
from darkroom.kernel.config import ConfigError
from darkroom.kernel.natsd import free_port, nats_server_binary
from darkroom.kernel.provision import provision
from darkroom.replay.fastread import read_all
from tests.conftest import make_config

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test's certificates")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def certificates(where: Path) -> None:
    """ca.pem, and server.pem / server-key.pem for 127.0.0.1 signed by it."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=darkroom test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        cwd=where,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
        cwd=where,
    )
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
        cwd=where,
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Path, Path]]:
    """The server's URL, the CA file and the user's seed file."""
    certificates(tmp_path)
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "user.nk").write_bytes(seed + b"\n")
    port = free_port()
    (tmp_path / "server.conf").write_text(
        f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{tmp_path / "store"}" }}\n'
        f'tls {{ cert_file: "{tmp_path / "server.pem"}", key_file: "{tmp_path / "server-key.pem"}" }}\n'
        f"authorization {{ users: [ {{ nkey: {public} }} ] }}\n"
    )
    process = await asyncio.create_subprocess_exec(
        nats_server_binary(),
        "-c",
        str(tmp_path / "server.conf"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield f"tls://127.0.0.1:{port}", tmp_path / "ca.pem", tmp_path / "user.nk"
    finally:
        process.kill()
        await process.wait()


async def test_an_nkey_user_over_tls_provisions_and_reads_the_log(server, tmp_path: Path) -> None:
    url, ca, seed = server
    config = make_config(tmp_path, nats__nkey=str(seed), nats__tls__ca=str(ca))
    bus = await Bus.connect(url, "darkroom-test", security=config.nats)
    try:
        await provision(bus.js, config)
        await bus.nc.request("darkroom.test.signin", b"{}", timeout=5)  # answered once the stream holds it
        assert bus.signs_nonce and await bus.last_seq() >= 1
        read = [stored.subject async for batch in read_all(bus) for stored in batch]  # as a replay reads it
        assert read == ["darkroom.test.signin"]
    finally:
        await bus.close()


async def test_an_unreadable_seed_file_is_named_before_connecting(server, tmp_path: Path) -> None:
    url, _, _ = server
    with pytest.raises(ConfigError, match="nats.nkey: cannot read"):
        await Bus.connect(url, "darkroom-test", security=make_config(tmp_path, nats__nkey=str(tmp_path / "no")).nats)
