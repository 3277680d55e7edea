"""When the projector applies what has come: at once after a quiet spell, in paced batches while events keep coming."""

from __future__ import annotations

import pytest

from darkroom.projector.service import GATHER_S, PACE_S, gather_for


def test_a_lone_event_after_a_quiet_spell_waits_only_to_gather():
    assert gather_for(now=100.0, last_batch=100.0 - PACE_S) == GATHER_S
    assert gather_for(now=100.0, last_batch=3.0) == GATHER_S


def test_while_events_keep_coming_a_batch_waits_for_the_pace():
    assert gather_for(now=100.0, last_batch=100.0) == pytest.approx(PACE_S)
    assert gather_for(now=100.005, last_batch=100.0) == pytest.approx(PACE_S - 0.005)
    assert gather_for(now=100.0 + PACE_S - GATHER_S / 2, last_batch=100.0) == GATHER_S
