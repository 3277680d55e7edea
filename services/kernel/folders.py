"""Reading a project folder: which photo files are there, by basename."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .photos import kind_of, sidecar_of


def projects_root(data_dir: Path) -> Path:
    return data_dir / "projects"


def scan(folder: Path) -> dict[str, list[str]]:
    """Accepted photo files by basename; hidden files, sidecars, videos and folders are not photos."""
    found: dict[str, list[str]] = {}
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return found
    for entry in entries:
        name = entry.name
        if name.startswith(".") or not entry.is_file(follow_symlinks=False) or kind_of(name) is None:
            continue
        found.setdefault(name.rpartition(".")[0], []).append(name)
    for names in found.values():
        names.sort()
    return found


def sidecars(folder: Path, name: str) -> list[str]:
    """Sidecars that travel with a variant file: `DSC01.ARW.xmp`, and `DSC01.xmp` for the photo."""
    stem = name.rpartition(".")[0]
    out = []
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return out
    for candidate in entries:
        owner = sidecar_of(candidate)
        if owner is not None and (owner == name or owner == stem):
            out.append(candidate)
    return sorted(out)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
