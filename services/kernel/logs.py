"""How a process logs: one line per message on stderr, as text for a person or JSON for a collector,
UTC times with their zone, secrets hidden (redact.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import IO

import msgspec

from .clock import iso
from .redact import RedactSecrets

FORMATS = ("json", "text")
LEVELS = ("debug", "info", "warning", "error", "critical")


def timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 UTC with milliseconds, as the events' times."""
    return iso(datetime.fromtimestamp(record.created, UTC))


def _details(record: logging.LogRecord, formatter: logging.Formatter) -> tuple[str | None, str | None]:
    """The traceback and the stack of a record, as text (the redacting filter may have made them already)."""
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None, record.stack_info or None


class TextFormatter(logging.Formatter):
    """`2026-05-01T09:30:00.123Z INFO darkroom: message`; a message or traceback of several lines is
    kept on this one, its line breaks written as `\\n`."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        for extra in _details(record, self):
            if extra:
                line += " | " + extra
        return fold(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the traceback or stack when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        exception, stack = _details(record, self)
        if exception:
            entry["exception"] = exception
        if stack:
            entry["stack"] = stack
        return msgspec.json.encode(entry).decode()


def fold(text: str) -> str:
    """One line: backslashes and line breaks escaped, so a reader can tell them apart and undo it."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def configure(log_format: str, level: str, stream: IO[str]) -> logging.Handler:
    """The root logger writes to `stream` in this format (every handler it had is replaced: one line
    per message, whoever logs), Darkroom's messages from `level` up."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # Darkroom's own loggers at the level asked for; libraries' (aiosqlite, nats) never below info,
    # where their debug lines would drown what an operator looks for.
    logging.getLogger("darkroom").setLevel(level.upper())
    root.setLevel(max(logging.INFO, logging.getLevelName(level.upper())))
    logging.captureWarnings(True)  # warnings.warn goes through the same handler, on one line
    return handler
