"""What maintenance heals (pure): which photos' derivatives to make again and why, what a failure
was, which leftovers of broken-off uploads to remove."""

from __future__ import annotations

import errno
import struct
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Iterable

from PIL import Image

from ..kernel.photos import is_upload_temp
from ..kernel.vocabulary import FailureKind
from ..projector.views import PhotoView
from .imaging import ImageTooLarge

# Failures that making the derivatives again from the same file would only repeat.
PERMANENT: frozenset[str] = frozenset({"unreadable", "too_large"})
STALE_UPLOAD_S = 3600  # an upload writes its part file all along: one untouched this long was abandoned


@dataclass(frozen=True)
class Stamp:
    """Which file a variant is: another size or modification time is another file."""

    size: int
    mtime_ns: int


def remake_reason(
    photo: PhotoView, source: str | None, stamp: Stamp | None, made_ns: int | None, busy: bool
) -> str | None:
    """Why `photo`'s derivatives must be made again, or None while they are right. `source`: the
    variant they should come from (its `stamp` now, None when it is not on disk); `made_ns`: the
    older derivative file's mtime, None when one is missing; `busy`: other work on the project is
    under way, which may be making them now."""
    if source is None or stamp is None:
        return None  # nothing to make them from: manifest_check settles the status
    status = photo.thumbnail_status
    if status == "pending":
        return None if busy else "pending with no job running for it"
    if status == "failed" and photo.error_kind not in PERMANENT:
        return f"failed ({photo.error_kind or 'cause not recorded'}), which may have passed"
    if status in ("missing", "not_supported") and photo.made_from is None:
        return f"nothing was made from {source}"
    # Generated, not supported or failed for good: settled, for the file it was made from.
    if photo.made_from is not None and photo.made_from != source:
        return f"made from {photo.made_from}, not {source}"
    if photo.made_from is not None and (photo.made_from_size, photo.made_from_mtime_ns) != (stamp.size, stamp.mtime_ns):
        return f"{source} is another file since"
    if status == "generated" and made_ns is None:
        return "a derivative file is gone"
    if status == "generated" and made_ns is not None and made_ns < stamp.mtime_ns:
        return f"older than {source}"
    return None


def failure_kind(exc: BaseException) -> FailureKind:
    """What kind of failure making derivatives met: only `unreadable` and `too_large` are the file's own."""
    if isinstance(exc, (ImageTooLarge, Image.DecompressionBombError)):
        return "too_large"
    if isinstance(exc, MemoryError):
        return "out_of_memory"
    if isinstance(exc, BrokenProcessPool):
        return "crashed"  # an image process died under it (the kernel's OOM killer, a signal)
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        by_errno: dict[int, FailureKind] = {
            errno.ENOSPC: "no_space",
            errno.EDQUOT: "no_space",
            errno.ENOMEM: "out_of_memory",
        }
        return by_errno.get(exc.errno, "io_error")
    if isinstance(exc, (OSError, SyntaxError, ValueError, EOFError, struct.error)):
        return "unreadable"  # how Pillow's decoders say a file is not an image they can read
    return "unknown"


def stale_uploads(entries: Iterable[tuple[str, float]], now: float) -> list[str]:
    """The part files of uploads that broke off, among (name, mtime) of a project folder's entries."""
    return sorted(name for name, mtime in entries if is_upload_temp(name) and now - mtime > STALE_UPLOAD_S)
