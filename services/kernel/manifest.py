"""The project manifest `.project.yaml`: id, name, created_at, version (CONTRACT §2)."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import msgspec.yaml
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
        # msgspec parses with libyaml where PyYAML has it: about a tenth of pure-Python safe_load's time.
        return msgspec.yaml.decode((folder / MANIFEST).read_bytes(), type=Manifest)
    except (OSError, msgspec.DecodeError):
        return None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    text = yaml.safe_dump(msgspec.to_builtins(manifest), sort_keys=False)
    write_atomically(folder / MANIFEST, text.encode())


def write_atomically(path: Path, data: bytes) -> None:
    """Under a temporary hidden name, then renamed: nobody ever sees half a file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)
