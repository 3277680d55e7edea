"""services/replay/logpull.py: the protocol the log reader child parses itself."""

from __future__ import annotations

import socket

import pytest

from darkroom.replay.logpull import Puller, PullError, position

NS = 1_764_419_450_311_400_000


def test_the_sequence_and_time_come_from_either_reply_form():
    assert position(f"$JS.ACK.DARKROOM.c1.1.42.7.{NS}.0".encode()) == (42, NS)
    assert position(f"$JS.ACK._.ACCHASH.DARKROOM.c1.1.43.8.{NS}.0.RANDOM".encode()) == (43, NS)
    with pytest.raises(PullError):
        position(b"_INBOX.abc")


def _puller() -> tuple[Puller, socket.socket]:
    ours, server = socket.socketpair()
    return Puller(ours, "DARKROOM", "c1", total=3, batch=3), server


def test_messages_with_and_without_headers_statuses_and_pings_are_told_apart():
    puller, server = _puller()
    reply = f"$JS.ACK.DARKROOM.c1.1.%d.1.{NS}.0"
    headers = b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n"
    status = b"NATS/1.0 408 Request Timeout\r\n\r\n"
    buf = (
        b"MSG darkroom.a 1 "
        + (reply % 1).encode()
        + b" 2\r\n{}\r\n"
        + b"PING\r\n"
        + b"HMSG _INBOX.x 1 %d %d\r\n%s\r\n" % (len(status), len(status), status)
        + b"HMSG darkroom.b 1 "
        + (reply % 2).encode()
        + b" %d %d\r\n%s[1]\r\n" % (len(headers), len(headers) + 3, headers)
        + b"MSG darkroom.c 1 "
        + (reply % 3).encode()
        + b' 10\r\n{"partial'
    )
    got: list = []
    rest = puller._parse(buf, got)
    assert got == [(1, "darkroom.a", b"{}", NS), (2, "darkroom.b", b"[1]", NS)]
    assert buf[rest:].startswith(b"MSG darkroom.c")  # waits for the rest of that message
    assert server.recv(100) == b"PONG\r\n"
    server.close()
    puller.sock.close()


def test_a_status_other_than_the_end_of_a_request_is_an_error():
    puller, server = _puller()
    status = b"NATS/1.0 409 Consumer Deleted\r\n\r\n"
    with pytest.raises(PullError, match="409 Consumer Deleted"):
        puller._parse(b"HMSG _INBOX.x 1 %d %d\r\n%s\r\n" % (len(status), len(status), status), [])
    server.close()
    puller.sock.close()
