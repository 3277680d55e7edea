"""kernel/manifest.py: the project manifest read back as written, and None for one that cannot be read
(manifest_check then writes it again from the project's record)."""

from __future__ import annotations

import pytest

from darkroom.kernel.manifest import Manifest, read_manifest, write_manifest
from darkroom.kernel.photos import MANIFEST


def test_a_manifest_reads_back_as_written(tmp_path):
    manifest = Manifest(
        id="01JABCDEFGHJKMNPQRSTVWXYZ0", name="Beach: day 1 — “dawn”", created_at="2026-12-04T21:00:00.000Z"
    )
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest


@pytest.mark.parametrize(
    "content",
    [
        b"id: [",  # not YAML
        b"- a list\n",
        b"id: 1\nname: x\ncreated_at: y\n",  # an id that is not a string
        b"id: a\nname: b\ncreated_at: 2026-12-04T21:00:00Z\n",  # a timestamp, not the string Darkroom writes
        b"id: a\nname: Caf\xe9\ncreated_at: x\n",  # edited by hand in Latin-1
        b"",
    ],
)
def test_a_manifest_that_cannot_be_read_is_none(tmp_path, content):
    (tmp_path / MANIFEST).write_bytes(content)
    assert read_manifest(tmp_path) is None


def test_a_missing_manifest_is_none(tmp_path):
    assert read_manifest(tmp_path) is None
