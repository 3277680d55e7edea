"""Photo files and folders (CONTRACT §2), all pure: names, kinds, keys, sanitizing."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Callable, NamedTuple

from .vocabulary import Kind

KINDS: dict[str, Kind] = {
    **{ext: "jpg" for ext in ("jpg", "jpeg")},
    **{ext: "raw" for ext in ("raw", "cr2", "cr3", "nef", "arw", "dng", "raf", "orf", "rw2")},
    **{ext: "other" for ext in ("png", "tif", "tiff", "heic", "heif", "webp")},
}
SIDECAR_EXTS = ("xmp",)
MANIFEST = ".project.yaml"
THUMB_DIR = ".thumb"
PREVIEW_DIR = ".preview"
TRASH_DIR = ".trash"
# A file system allows 255 bytes a name: what is made of a name (a derivative's `.<name>.webp.<pid>.tmp`,
# `<stem> (2).<ext>` in the trash, a folder's ` (2)`) must fit as well.
MAX_NAME_BYTES = 200
MAX_PROJECT_NAME_BYTES = 255
MAX_FOLDER_CHARS = 100
MOST_NUMBERED = 1000  # a folder name and its alternatives `(2)` … `(999)`
_FOLDER_BAD = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


class Derivatives(NamedTuple):
    """A photo's derivative files, relative to its project folder."""

    thumbnail: str
    preview: str


def derivative_names(basename: str) -> Derivatives:
    return Derivatives(f"{THUMB_DIR}/{basename}.webp", f"{PREVIEW_DIR}/{basename}.jpg")


def split(name: str) -> tuple[str, str]:
    """`DSC01.ARW` → (`DSC01`, `arw`): the basename as written, the extension lower-case."""
    stem, dot, ext = name.rpartition(".")
    return (stem, ext.lower()) if dot and stem else (name, "")


@lru_cache(maxsize=1 << 16)
def kind_of(name: str) -> Kind | None:
    """The variant a file is, by its extension compared case-insensitively; None: not a photo."""
    return KINDS.get(split(name)[1])


def derivative_source(names: list[str]) -> str | None:
    """The file a photo's derivatives come from: its JPG, else an OTHER variant, else its RAW (through
    the RAW's embedded preview); None when it has no variant file."""
    for wanted in ("jpg", "other", "raw"):
        for name in names:
            if kind_of(name) == wanted:
                return name
    return None


def basename(name: str) -> str:
    return split(name)[0]


def unsafe_name(name: str) -> str | None:
    """Why a client-supplied file name cannot be stored as given, or None if it can."""
    if not name or name != name.strip():
        return "file name is empty or has surrounding spaces"
    if any(unicodedata.category(c) == "Cs" for c in name):
        return "file name is not valid UTF-8"
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"file name is longer than {MAX_NAME_BYTES} bytes"
    if "/" in name or "\\" in name or name in (".", "..") or PurePosixPath(name).name != name:
        return "file name must not contain a path"
    if name.startswith("."):
        return "hidden files are not accepted"
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        return "file name contains control characters"
    return None


def printable(name: str) -> str:
    """A client's name as it can be told back: bytes that were not UTF-8 shown as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def upload_temp(token: str) -> str:
    """The hidden name an upload writes a file under until it is complete."""
    return f".upload-{token}.part"


def is_upload_temp(name: str) -> bool:
    return name.startswith(".upload-") and name.endswith(".part")


def sidecar_of(name: str) -> str | None:
    """The variant file a sidecar belongs to (`DSC01.ARW.xmp` → `DSC01.ARW`), or its basename
    (`DSC01.xmp` → `DSC01`); None when the file is not a sidecar."""
    stem, ext = split(name)
    return stem if ext in SIDECAR_EXTS else None


def sidecar_photo(name: str) -> str | None:
    """The photo (basename) a sidecar belongs to: `DSC01.ARW.xmp` and `DSC01.xmp` → `DSC01`."""
    owner = sidecar_of(name)
    return basename(owner) if owner is not None and kind_of(owner) else owner


def sanitize_folder(name: str) -> str:
    """A project name made into a folder name: no separators or control characters, no leading
    dots, single spaces, at most 100 characters and 200 bytes. Empty means nothing usable was left."""
    cleaned = _FOLDER_BAD.sub(" ", unicodedata.normalize("NFC", name))
    cleaned = " ".join(cleaned.split()).lstrip(".").strip()[:MAX_FOLDER_CHARS]
    # Cut at a character's boundary: what is left of a character cut in two goes.
    return cleaned.encode()[:MAX_NAME_BYTES].decode(errors="ignore").rstrip()


def project_name_problem(name: str) -> str | None:
    """Why a project cannot have this name, or None: what creating and renaming a project check."""
    if len(name.encode()) > MAX_PROJECT_NAME_BYTES:
        return f"project name is longer than {MAX_PROJECT_NAME_BYTES} bytes"
    if not sanitize_folder(name):
        return "project name must contain letters or digits"
    return None


def numbered(name: str, n: int) -> str:
    """The n-th alternative of a taken name: `Shoot` → `Shoot (2)`."""
    return name if n == 1 else f"{name} ({n})"


class NoFolder(Exception):
    """Every numbered alternative of a folder name is taken."""


def first_free(base: str, taken: Callable[[str], bool], current: str | None = None) -> str:
    """`base`, else `base (2)`, `(3)`…: the first that is `current` (a project's own folder) or not `taken`."""
    for n in range(1, MOST_NUMBERED):
        candidate = numbered(base, n)
        if candidate == current or not taken(candidate):
            return candidate
    raise NoFolder(f"too many projects named {base!r}")


def trash_name(name: str, n: int) -> str:
    """`.trash/<name>`, or `<stem> (2).<ext>` when taken."""
    if n == 1:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"


@lru_cache(maxsize=1 << 16)
def photo_key(project_id: str, filename: str) -> str:
    """Subject-safe and computable by anyone: sha256 of `<project_id>/<basename>`, 24 hex digits."""
    return hashlib.sha256(f"{project_id}/{filename}".encode()).hexdigest()[:24]


@lru_cache(maxsize=1 << 16)
def name_key(filename: str) -> str:
    """Subject-safe and the same in every project: sha256 of the basename, 24 hex digits."""
    return hashlib.sha256(filename.encode()).hexdigest()[:24]


_MAGIC: dict[str, tuple[bytes, ...]] = {
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "tif": (b"II*\x00", b"MM\x00*"),
    "tiff": (b"II*\x00", b"MM\x00*"),
}
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def content_mismatch(name: str, head: bytes) -> str | None:
    """Why the first bytes of a file are not what its extension says, or None."""
    ext = split(name)[1]
    if ext in _MAGIC:
        if not head.startswith(_MAGIC[ext]):
            return f"content is not a {ext.upper()} file"
    elif ext in ("heic", "heif"):
        if head[4:8] != b"ftyp" or head[8:12] not in _HEIF_BRANDS:
            return f"content is not a {ext.upper()} file"
    elif ext in SIDECAR_EXTS and not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return "content is not an XMP file"  # XML, after an optional byte order mark
    return None
