"""A child process that pulls a JetStream consumer over a plain NATS connection and writes what it
gets to stdout, in frames: it speaks the protocol itself (nats-py's cost per message is what a
rebuild would wait on), and runs beside the process that decodes and applies. Imports nothing of
Darkroom's, so it starts fast.

    python -m darkroom.replay.logpull HOST PORT STREAM CONSUMER TOTAL BATCH < AUTH_JSON

The credentials come on stdin: a command line is visible to every user of the host.

Each frame: 4 bytes big-endian length, then msgpack [[stream seq, subject, data, stored at in ns], ...].
"""

from __future__ import annotations

import json
import os
import socket
import sys

import msgspec

READ_TIMEOUT_S = 5.0
WINDOW = 3  # batches asked for ahead of what was written out


class PullError(Exception):
    pass


def position(reply: bytes) -> tuple[int, int]:
    """Stream sequence and stored time (ns) from a JetStream reply subject, either form:
    $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>, or with domain and
    account hash after ACK (and a token at the end)."""
    tokens = reply.split(b".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7])
    if len(tokens) >= 11:
        return int(tokens[7]), int(tokens[9])
    raise PullError(f"not a JetStream reply subject: {reply!r}")


class Puller:
    def __init__(self, sock: socket.socket, stream: str, consumer: str, total: int, batch: int) -> None:
        self.sock = sock
        self.next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}".encode()
        self.inbox = f"_INBOX.logpull.{os.getpid()}.{consumer}".encode()
        self.total = total
        self.batch = batch
        self.requested = 0
        self.written = 0

    def start(self, auth: dict) -> None:
        self._read_line()  # INFO
        connect = {
            "verbose": False,
            "pedantic": False,
            "headers": True,
            "no_responders": True,
            "protocol": 1,
            "lang": "python",
            "version": "darkroom-logpull",
            **auth,
        }
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\nSUB " + self.inbox + b" 1\r\n")
        self._ask()

    def _read_line(self) -> bytes:
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise PullError("the NATS server closed the connection")
            line += chunk
        return line

    def _ask(self) -> None:
        requests = []
        while self.requested < self.total and self.requested - self.written < WINDOW * self.batch:
            n = min(self.batch, self.total - self.requested)
            self.requested += n
            body = b'{"batch":%d,"expires":%d}' % (n, int(READ_TIMEOUT_S * 6 * 1e9))
            requests.append(b"PUB %s %s %d\r\n%s\r\n" % (self.next_subject, self.inbox, len(body), body))
        if requests:
            self.sock.sendall(b"".join(requests))

    def run(self, out) -> None:
        encoder = msgspec.msgpack.Encoder()
        buf, pos = b"", 0
        got: list[tuple[int, str, bytes, int]] = []
        while self.written < self.total:
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                raise PullError(f"reading the log: nothing arrived within {READ_TIMEOUT_S:g}s") from None
            if not chunk:
                raise PullError("the NATS server closed the connection")
            buf = buf[pos:] + chunk if pos < len(buf) else chunk
            pos = self._parse(buf, got)
            if len(got) >= self.batch or self.written + len(got) >= self.total:
                frame = encoder.encode(got)
                out.write(len(frame).to_bytes(4, "big") + frame)
                out.flush()
                self.written += len(got)
                got = []
                self._ask()

    def _parse(self, buf: bytes, got: list) -> int:
        """Appends the messages complete in `buf` to `got`; returns where the unparsed rest begins."""
        pos, end_of = 0, len(buf)
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return pos
            head = buf[pos:eol].split(b" ")
            op = head[0]
            if op == b"HMSG" or op == b"MSG":
                size = int(head[-1])
                start = eol + 2
                if start + size + 2 > end_of:
                    return pos  # the rest of this message has not arrived yet
                headers = int(head[-2]) if op == b"HMSG" else 0
                reply_at = 3 if len(head) == (6 if op == b"HMSG" else 5) else 0
                if reply_at:
                    seq, at = position(head[reply_at])
                    got.append((seq, head[1].decode(), buf[start + headers : start + size], at))
                else:
                    self._status(buf[start : start + headers])
                pos = start + size + 2
            else:
                if op == b"PING":
                    self.sock.sendall(b"PONG\r\n")
                elif op == b"-ERR":
                    raise PullError(f"NATS: {buf[pos:eol].decode(errors='replace')}")
                pos = eol + 2

    @staticmethod
    def _status(headers: bytes) -> None:
        """A status from JetStream instead of a message: a request that ended (404, 408) or a heartbeat
        (100) is no loss, as every message asked for still comes; anything else is."""
        status = headers.split(b"\r\n", 1)[0].split(b" ")
        code = status[1] if len(status) > 1 else b""
        if code not in (b"100", b"404", b"408"):
            raise PullError(f"JetStream: {b' '.join(status[1:]).decode(errors='replace')}")


def main(argv: list[str]) -> int:
    host, port, stream, consumer, total, batch = argv
    auth = json.loads(sys.stdin.read())
    try:
        with socket.create_connection((host, int(port)), timeout=READ_TIMEOUT_S) as sock:
            puller = Puller(sock, stream, consumer, int(total), int(batch))
            puller.start(auth)
            puller.run(sys.stdout.buffer)
    except (OSError, PullError) as exc:
        print(f"logpull: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
