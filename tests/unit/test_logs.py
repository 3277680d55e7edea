"""Log lines: one per message, UTC with its zone, JSON or text, secrets hidden, levels."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from darkroom.kernel.logs import JsonFormatter, TextFormatter, configure, fold
from darkroom.kernel.redact import RedactSecrets


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("first line\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("darkroom.worker", logging.ERROR, __file__, 1, message, args, exc_info)
    record.created = 1767225600.25  # 2026-01-01T00:00:00.250Z
    return record


def test_fold_keeps_a_message_on_one_line_and_can_be_undone():
    assert fold("a\nb\r\nc\\n") == "a\\nb\\r\\nc\\\\n"
    assert "\n" not in fold("x\n" * 5)


def test_text_is_one_line_with_a_utc_time_and_the_traceback_folded_onto_it():
    line = TextFormatter().format(_record("job %s:\n%s", "J1", "two lines", exc=True))
    assert "\n" not in line
    assert line.startswith("2026-01-01T00:00:00.250Z ERROR darkroom.worker: job J1:\\ntwo lines | Traceback")
    assert line.endswith("ValueError: first line\\nsecond line")


def test_json_is_one_object_a_line_with_the_traceback_as_a_field():
    line = JsonFormatter().format(_record("job %s:\nfailed", "J1", exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["time"] == "2026-01-01T00:00:00.250Z" and entry["level"] == "ERROR"
    assert entry["logger"] == "darkroom.worker" and entry["message"] == "job J1:\nfailed"
    assert entry["exception"].startswith("Traceback") and entry["exception"].endswith("second line")
    assert "exception" not in json.loads(JsonFormatter().format(_record("fine")))


def test_secrets_are_hidden_in_the_message_and_the_traceback():
    record = _record("connecting to %s", "nats://darkroom:s3cret@host:4222", exc=True)
    record.exc_info = (ValueError, ValueError("nats://u:pw@h failed"), None)
    RedactSecrets().filter(record)
    line = JsonFormatter().format(record)
    assert "s3cret" not in line and ":pw@" not in line and "***@" in line


@pytest.fixture
def root_logging():
    root, darkroom = logging.getLogger(), logging.getLogger("darkroom")
    saved = root.handlers[:], root.level, darkroom.level
    yield
    root.handlers[:], _, _ = saved
    root.setLevel(saved[1])
    darkroom.setLevel(saved[2])


def test_the_level_applies_to_darkroom_and_libraries_stay_at_info(root_logging):
    out = io.StringIO()
    configure("json", "debug", out)
    logging.getLogger("darkroom.orchestrator").debug("looking again")
    logging.getLogger("aiosqlite").debug("executing")
    logging.getLogger("nats").info("connected")
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == ["looking again", "connected"]

    out = io.StringIO()
    configure("text", "warning", out)
    logging.getLogger("darkroom").info("started")
    logging.getLogger("nats").info("connected")
    logging.getLogger("darkroom.bus").warning("nats: gone")
    assert out.getvalue().splitlines()[0].endswith("WARNING darkroom.bus: nats: gone")
    assert len(out.getvalue().splitlines()) == 1
