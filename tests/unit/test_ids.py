"""services/kernel/ids.py: the ids Darkroom gives, and telling one from any other text."""

from __future__ import annotations

import pytest

from darkroom.kernel.ids import derived_id, is_id, new_id


def test_the_ids_darkroom_gives_are_ids():
    assert is_id(new_id()) and is_id(derived_id(0, "key")) and is_id(new_id(now_ms=2**48 - 1))


def test_ids_are_written_as_ulids_always_were():
    # A derived id names the same thing in every version: its digits must never change.
    assert new_id(now_ms=1469918176385)[:10] == "01ARYZ6S41"  # the ULID specification's example
    assert derived_id(0, "key") == "0000000000BGYESE6YZMCK4CRB"
    assert derived_id(1469918176385, "photo:x") == "01ARYZ6S418X21JQQ6TD824Y45"
    assert derived_id(2**48 - 1, "z") == "7ZZZZZZZZZY62VJDRRKPRVN55X"


@pytest.mark.parametrize(
    "text", ["", "my-own-id", new_id().lower(), new_id()[:25], new_id() + "0", new_id() + "\n", "U" * 26, "I" * 26]
)
def test_other_text_is_not_an_id(text: str):
    assert not is_id(text)
