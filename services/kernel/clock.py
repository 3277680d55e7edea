"""Wall-clock time as events record it: RFC 3339 UTC with milliseconds."""

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    """A UTC time as events and the API write it: `2030-01-01T00:00:00.000Z`."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
