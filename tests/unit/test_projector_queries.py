"""services/projector/queries.py: SSE event ids, as clients send them back in Last-Event-ID."""

from __future__ import annotations

import pytest

from darkroom.projector.queries import OutboxRow, parse_event_id


@pytest.mark.parametrize(
    "value, expected",
    [
        ("123", (123, 0)),
        ("123.2", (123, 2)),
        ("123.0", (123, 0)),
        (" 42 ", (42, 0)),
        ("7.", (7, 0)),
        ("0", (0, 0)),
        ("5." + "9" * 40, (5, 1 << 30)),  # a k past any event's messages: after all of 5
    ],
)
def test_parse_event_id(value, expected):
    assert parse_event_id(value) == expected


@pytest.mark.parametrize(
    "value", [None, "", "abc", "12.x", "1.2.3", ".5", "12,3", "1e3", "+5", "1_000", "-3", "٣", "9" * 19]
)
def test_unusable_event_ids_give_no_resume_point(value):
    assert parse_event_id(value) is None


def test_outbox_row_id_is_the_seq_or_seq_dot_k():
    assert OutboxRow(12, 0, "task_update", "{}").id == "12"
    assert OutboxRow(12, 1, "task_update", "{}").id == "12.1"
    assert OutboxRow(12, 10, "job_update", "{}").id == "12.10"


@pytest.mark.parametrize("seq, k", [(1, 0), (1, 1), (99999999, 0), (5, 17)])
def test_ids_round_trip(seq, k):
    assert parse_event_id(OutboxRow(seq, k, "item", "{}").id) == (seq, k)


def test_ids_sort_by_seq_then_k_when_parsed():
    ids = ["10", "9.1", "9", "10.2", "10.1", "100"]
    assert sorted(ids, key=parse_event_id) == ["9", "9.1", "10", "10.1", "10.2", "100"]
