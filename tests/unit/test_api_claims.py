"""services/api/claims.py: who may take a basename over the last claim on it."""

from __future__ import annotations

from darkroom.api.claims import may_take
from darkroom.kernel.events import BasenameClaimed

LEFT = BasenameClaimed(project_id="left", filename="DSC01")


def test_a_basename_never_claimed_and_nowhere_is_free():
    assert may_take("right", None, settled=False, others_having_it=False)


def test_a_basename_another_project_has_is_never_taken():
    assert not may_take("right", None, settled=True, others_having_it=True)
    assert not may_take("left", LEFT, settled=True, others_having_it=True)


def test_the_claimant_takes_its_own_claim_again():
    assert may_take("left", LEFT, settled=False, others_having_it=False)


def test_another_project_waits_until_the_last_claim_settled():
    assert not may_take("right", LEFT, settled=False, others_having_it=False)  # its file may still come
    assert may_take("right", LEFT, settled=True, others_having_it=False)  # it came and went, or never will
