"""The project manifest `.project.yaml`: id, name, created_at, version (CONTRACT §2)."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import yaml

from .photos import MANIFEST

VERSION = 1


class Manifest(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: str
    version: int = VERSION


def read_manifest(folder: Path) -> Manifest | None:
    """The manifest, or None when it is missing or unreadable (manifest_check rewrites it)."""
    try:
        data = yaml.safe_load((folder / MANIFEST).read_text())
        return msgspec.convert(data, Manifest)
    except (OSError, yaml.YAMLError, msgspec.ValidationError):
        return None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    text = yaml.safe_dump(msgspec.to_builtins(manifest), sort_keys=False)
    write_atomically(folder / MANIFEST, text.encode())


def write_atomically(path: Path, data: bytes) -> None:
    """Under a temporary hidden name, then renamed: nobody ever sees half a file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)
