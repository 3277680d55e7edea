"""How long the stream keeps events (`nats.max_bytes`, `nats.max_age`), what a limit costs, and how
big the stream is (pure; `provision.stream_size` asks). The log is the record: by default nothing is ever dropped."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(value: int | float | str) -> int:
    """Bytes from `50GB`, `512MiB`, `1000000` (units in powers of 1024); 0 or below: no limit."""
    number, unit = _number(value, _SIZE, "a size like 50GB")
    return int(number * 1024 ** _POWERS[unit[:1]])


def parse_age(value: int | float | str) -> float:
    """Seconds from `90d`, `12h`, `3600`; 0: no limit."""
    number, unit = _number(value, _AGE, "a duration like 90d")
    return number * _SECONDS[unit]


def _number(value: int | float | str, pattern: re.Pattern[str], what: str) -> tuple[float, str]:
    """A setting's number and unit, as a number or text like `50GB`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0.0, float(value)), ""
    match = pattern.match(str(value)) if value is not None else None
    if not match:
        raise ValueError(f"{value!r} is not {what}")
    return float(match.group(1)), (match.group(2) or "").lower()


@dataclass(frozen=True)
class StreamSize:
    messages: int
    bytes: int
    first_seq: int
    last_seq: int

    @property
    def dropped(self) -> int:
        """Events the stream no longer holds, from sequence 1 on."""
        return max(0, self.first_seq - 1)


def warnings(max_bytes: int, max_age_s: float, size: StreamSize) -> list[str]:
    """What an operator must hear at start: a limit that drops events, and events already gone."""
    out = []
    limits = [
        f"nats.max_bytes = {max_bytes:,} bytes" if max_bytes else "",
        f"nats.max_age = {_age_text(max_age_s)}" if max_age_s else "",
    ]
    if any(limits):
        out.append(
            f"retention: {' and '.join(filter(None, limits))}: the oldest events are dropped past it, "
            f"and then no replay, new projector or audit can see them; take backups (`darkroom backup`) "
            f"before they go, or unset the limit"
        )
    if size.dropped:
        out.append(
            f"retention: the stream no longer holds events 1..{size.dropped}: a read model built anew "
            f"from the log (replay, a new projector or worker replica) starts at {size.dropped + 1} and "
            f"lacks them; restore a backup to rebuild one whole"
        )
    return out


def _age_text(seconds: float) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds:g} s"
