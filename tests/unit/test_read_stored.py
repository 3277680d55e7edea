"""services/kernel/read.py: a stored message read back, its sequence and time from the reply subject."""

from __future__ import annotations

from types import SimpleNamespace

from darkroom.kernel.messages import Stored
from darkroom.kernel.read import delivery_of, stored_of

NS = 1_764_419_450_311_400_000  # 2025-11-29T12:30:50.3114Z


def _msg(reply: str) -> SimpleNamespace:
    return SimpleNamespace(subject="darkroom.task._.T1.started", data=b"{}", reply=reply, metadata=None, headers=None)


def test_the_sequence_and_time_come_from_the_v1_reply_subject():
    stored = stored_of(_msg(f"$JS.ACK.DARKROOM.c1.1.42.7.{NS}.0"))
    assert (stored.seq, stored.subject, stored.data) == (42, "darkroom.task._.T1.started", b"{}")
    assert stored.at == "2025-11-29T12:30:50.311Z"
    assert stored == Stored(42, "darkroom.task._.T1.started", b"{}", "2025-11-29T12:30:50.311Z")


def test_the_newer_reply_form_with_domain_and_account_is_read_too():
    from nats.aio.msg import Msg

    reply = f"$JS.ACK._.ACCHASH.DARKROOM.c1.1.43.8.{NS}.0.RANDOM"
    msg = Msg(_client=None, subject="darkroom.task._.T1.started", reply=reply, data=b"{}")
    stored = stored_of(msg)
    assert (stored.seq, stored.at) == (43, "2025-11-29T12:30:50.311Z")


def test_a_consumed_message_says_its_sequence_and_delivery_count_as_its_metadata_does():
    from nats.aio.msg import Msg

    for reply in (f"$JS.ACK.DARKROOM.c1.3.42.7.{NS}.0", f"$JS.ACK._.ACCHASH.DARKROOM.c1.3.42.8.{NS}.0.RANDOM"):
        msg = Msg(_client=None, subject="darkroom.job._.T1.completed", reply=reply, data=b"{}")
        assert delivery_of(msg) == (msg.metadata.sequence.stream, msg.metadata.num_delivered) == (42, 3)


def test_a_given_time_is_kept_as_given():
    assert Stored(1, "s", b"", "2030-01-01T00:00:00.000Z").at == "2030-01-01T00:00:00.000Z"
    assert Stored(1, "s", b"").at == ""
