"""services/kernel/natsclient.py: headers read as nats-py reads them, whatever the block holds."""

from __future__ import annotations

import pytest
from nats.aio.client import Client

from darkroom.kernel.natsclient import NatsClient

BLOCKS = [
    b"Nats-Msg-Id: job:J1:completed:1\r\nNats-Expected-Last-Subject-Sequence: 41\r\n\r\n",
    b"Nats-Stream: DARKROOM\r\nNats-Subject: darkroom.job._.T1.completed\r\nNats-Sequence: 7\r\n"
    b"Nats-Time-Stamp: 2026-12-03T23:56:32.123456789Z\r\n\r\n",
    b"A:b\r\nB:\tc \r\nK: \r\n  Spaced  :  value  \r\n",
    b"bad key: left out\r\n: empty name\r\n \t: blank name\r\nok: kept\r\n",
    b"tab\tkey: x\r\nvt\x0bkey: y\r\nnbsp\xc2\xa0key: z\r\n",
    "n\u00e9: non-ascii name\r\nv: caf\u00e9\r\n".encode(),
    b"v: \xff\xfe\r\nk2: a: b\r\nno colon at all\r\n",
    b"",
    b"\r\n",
]


@pytest.mark.parametrize("block", BLOCKS)
def test_headers_read_as_nats_py_reads_them(block: bytes) -> None:
    assert NatsClient._parse_header_lines(block) == Client._parse_header_lines(block)


def test_a_delivered_message_keeps_its_headers() -> None:
    parsed = NatsClient._parse_header_lines(BLOCKS[1])
    assert parsed["Nats-Sequence"] == "7" and parsed["Nats-Subject"] == "darkroom.job._.T1.completed"
