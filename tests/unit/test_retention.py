"""services/kernel/retention.py: the retention settings, and what an operator is told about them."""

from __future__ import annotations

import pytest

from darkroom.kernel.config import ConfigError, load_config
from darkroom.kernel.retention import StreamSize, parse_age, parse_size, warnings


@pytest.mark.parametrize(
    "text, size",
    [
        (0, 0),
        (-1, 0),
        ("0", 0),
        ("1000", 1000),
        ("50GB", 50 * 1024**3),
        ("512 MiB", 512 * 1024**2),
        ("1.5k", 1536),
        ("2t", 2 * 1024**4),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text, seconds",
    [(0, 0), ("0", 0), ("3600", 3600), ("12h", 43200), ("365d", 365 * 86400), ("2w", 14 * 86400), (90.5, 90.5)],
)
def test_ages(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("key, value", [("DARKROOM_NATS__MAX_BYTES", "lots"), ("DARKROOM_NATS__MAX_AGE", "a year")])
def test_a_limit_that_is_not_a_size_or_duration_names_its_key(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key[len("DARKROOM_") :].lower().replace("__", ".")):
        load_config(tmp_path, environ={key: value})


def test_no_limits_by_default_and_nothing_to_say_about_a_whole_log(tmp_path):
    config = load_config(tmp_path, environ={})
    assert parse_size(config.nats.max_bytes) == 0 and parse_age(config.nats.max_age) == 0
    assert warnings(0, 0, StreamSize(messages=10, bytes=5000, first_seq=1, last_seq=10)) == []
    assert warnings(0, 0, StreamSize(messages=0, bytes=0, first_seq=0, last_seq=0)) == []


def test_a_limit_is_said_with_what_it_costs():
    [line] = warnings(50 * 1024**3, 365 * 86400, StreamSize(messages=10, bytes=5000, first_seq=1, last_seq=10))
    assert "nats.max_bytes = 53,687,091,200 bytes and nats.max_age = 365 days" in line
    assert "no replay, new projector or audit can see them" in line and "darkroom backup" in line


def test_events_already_dropped_are_said_even_without_a_limit_now():
    [line] = warnings(0, 0, StreamSize(messages=5, bytes=500, first_seq=96, last_seq=100))
    assert "no longer holds events 1..95" in line and "starts at 96" in line
    [line] = warnings(0, 0, StreamSize(messages=0, bytes=0, first_seq=101, last_seq=100))
    assert "events 1..100" in line
