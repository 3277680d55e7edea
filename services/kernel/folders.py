"""Reading a project folder: which photo files are there, by basename."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from pathlib import Path

from .photos import TRASH_DIR, derivative_names, kind_of, sidecar_of, trash_name


def projects_root(data_dir: Path) -> Path:
    return data_dir / "projects"


def derivative_paths(folder: Path, basename: str) -> tuple[Path, Path]:
    """A photo's thumbnail and preview in its project folder."""
    thumbnail, preview = derivative_names(basename)
    return folder / thumbnail, folder / preview


def deleted_root(data_dir: Path) -> Path:
    """Where deleted projects wait, each folder named by its project's id, until the trash TTL is over."""
    return data_dir / "trash"


def deleted_project_dir(data_dir: Path, project_id: str) -> Path:
    return deleted_root(data_dir) / project_id


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


class Listing:
    """The photo files of one folder by basename, for a job about some of its photos: the names their
    records give are looked up one by one, and the folder is listed (once) only when a record is
    stale, so the job costs per photo, not per file of the project."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._scanned: dict[str, list[str]] | None = None

    def files(self, basename: str, recorded: list[str]) -> list[str]:
        """`basename`'s photo files on disk, where `recorded` is what its record says they are."""
        if recorded and all(_is_plain_file(self.folder / name) for name in recorded):
            return sorted(recorded)
        if self._scanned is None:
            self._scanned = scan(self.folder)
        return self._scanned.get(basename, [])


def _is_plain_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)  # as scan: a symlink is not a photo file
    except OSError:
        return False


def sidecars(listing: list[str], moving: list[str], staying: list[str]) -> list[str]:
    """Sidecars that travel with the variants being moved: `DSC01.ARW.xmp` with `DSC01.ARW`, and
    the photo's own `DSC01.xmp` with its RAW, or with the last variant when none stays."""
    out = []
    for candidate in listing:
        owner = sidecar_of(candidate)
        if owner is None:
            continue
        if owner in moving:
            out.append(candidate)
        elif any(m.rpartition(".")[0] == owner for m in moving):
            raw_moving = any(kind_of(m) == "raw" for m in moving)
            if raw_moving or not [s for s in staying if s.rpartition(".")[0] == owner]:
                out.append(candidate)
    return sorted(out)


def sync_folder(folder: Path) -> None:
    """The folder's entries on the disk: a file renamed into it is there after a power cut."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def move_to_trash(folder: Path, name: str) -> str:
    """Move an original into `.trash/` under a free name (`<stem> (2).<ext>` when taken); its mtime
    becomes the trashing time, from which the trash TTL counts. Returns the trash name."""
    trash = folder / TRASH_DIR
    trash.mkdir(exist_ok=True)
    n = 1
    while (trash / trash_name(name, n)).exists():
        n += 1
    target = trash / trash_name(name, n)
    os.replace(folder / name, target)
    os.utime(target)
    return target.name


def restore_from_trash(folder: Path, trash_entry: str, name: str) -> None:
    """Move a trashed file back under its original name; never over an existing file."""
    target = folder / name
    if target.exists():
        raise FileExistsError(f"{name} exists in the project again")
    os.replace(folder / TRASH_DIR / trash_entry, target)


def move_file(source: Path, target: Path) -> None:
    """Move a file to a name that must be free, whole or not at all: renamed on one file system, else
    copied under a hidden name, renamed, and only then removed where it was."""
    if target.exists():
        raise FileExistsError(errno.EEXIST, f"{target.name} exists there already", str(target))
    try:
        os.rename(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    temp = target.with_name(f".{target.name}.{os.getpid()}.moving")
    shutil.copy2(source, temp)
    os.replace(temp, target)
    os.unlink(source)
