"""Replicas placed by provisioning: a peer offline for a moment is waited for, a cluster too small
is said as the setting to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats.js.errors import APIError

from darkroom.kernel.provision import ProvisionError, _scaled
from tests.conftest import make_config


def _refusal(description: str) -> APIError:
    return APIError(code=500, err_code=10005, description=description)


async def test_a_placement_refused_while_a_peer_is_offline_is_asked_again(tmp_path: Path, caplog) -> None:
    refusals = [_refusal("no suitable peers for placement, peer offline")]

    async def change() -> str:
        if refusals:
            raise refusals.pop()
        return "placed"

    assert await _scaled(change, make_config(tmp_path, nats__replicas=3), "the lease bucket") == "placed"
    assert "the lease bucket: no suitable peers for placement, peer offline; waiting" in caplog.text


async def test_a_cluster_too_small_for_the_replicas_is_said_as_the_setting_to_fix(tmp_path: Path) -> None:
    async def change() -> str:
        raise _refusal("no suitable peers for placement, insufficient resources")

    with pytest.raises(ProvisionError, match="cannot have 3 replicas .*nats.replicas must not exceed"):
        await _scaled(change, make_config(tmp_path, nats__replicas=3), "stream DARKROOM")
