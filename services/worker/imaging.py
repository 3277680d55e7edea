"""Derivatives and metadata from one source image; runs in a process pool (CPU-bound)."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

from ..kernel.tether import die_with_parent

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 36867
OFFSET_TIME_ORIGINAL = 36881
MAKE, MODEL, ORIENTATION = 271, 272, 274
_SRGB = ImageCms.createProfile("sRGB")


class ImageTooLarge(Exception):
    pass


@dataclass(frozen=True)
class Spec:
    thumb_dim: int
    thumb_quality: int
    preview_dim: int
    preview_quality: int
    max_megapixels: float


@dataclass(frozen=True)
class Metadata:
    taken_at: str | None
    make: str | None
    model: str | None
    orientation: int | None
    width: int
    height: int


def init_worker(parent_pid: int | None = None) -> None:
    """Pool initializer: die with the parent (a killed worker leaves no orphans, even one killed
    while this process was starting), and HEIC support where pillow-heif is installed."""
    if not die_with_parent(parent_pid):
        os._exit(1)
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # HEIC sources then fail clearly as unreadable
        pass


def make_derivatives(source: str, thumb: str, preview: str, spec: Spec) -> Metadata:
    """Decode once (JPEG draft mode decodes at a reduced scale), orient, convert to sRGB, shrink."""
    with Image.open(source) as img:
        width, height = img.size
        if width * height > spec.max_megapixels * 1_000_000:
            raise ImageTooLarge(f"{width}x{height} is over {spec.max_megapixels:g} megapixels")
        meta = _metadata(img, width, height)
        scale = min(1.0, spec.preview_dim / max(width, height))
        if img.format == "JPEG":
            # Decode at the smallest DCT scale that still covers the preview: both sides count.
            img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
        img.load()
        exif = img.getexif()
        icc = img.info.get("icc_profile")
        # Shrink first: rotating and converting colours at full size would cost memory and time.
        img.thumbnail((spec.preview_dim, spec.preview_dim), Image.Resampling.LANCZOS)
        img.info["icc_profile"] = icc
        img.info["exif"] = exif.tobytes()
        oriented = _to_srgb(ImageOps.exif_transpose(img))
    _save(oriented, preview, "JPEG", quality=spec.preview_quality, optimize=True)
    oriented.thumbnail((spec.thumb_dim, spec.thumb_dim), Image.Resampling.LANCZOS)
    _save(oriented, thumb, "WEBP", quality=spec.thumb_quality, method=4)
    return meta


def _metadata(img: Image.Image, width: int, height: int) -> Metadata:
    exif = img.getexif()
    sub = exif.get_ifd(EXIF_IFD)
    orientation = exif.get(ORIENTATION)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Metadata(taken_at=_taken_at(sub.get(DATETIME_ORIGINAL), sub.get(OFFSET_TIME_ORIGINAL)),
                    make=_text(exif.get(MAKE)), model=_text(exif.get(MODEL)), orientation=orientation,
                    width=width, height=height)


def _taken_at(value: object, offset: object) -> str | None:
    """EXIF `2008:05:30 15:56:01` → `2008-05-30T15:56:01`, the camera's local time (with its
    offset only when the file records one)."""
    text = _text(value)
    if not text or len(text) < 19 or text.startswith("0000"):
        return None
    stamp = f"{text[0:4]}-{text[5:7]}-{text[8:10]}T{text[11:19]}"
    zone = _text(offset)
    return stamp + zone if zone and len(zone) == 6 and zone[0] in "+-" else stamp


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.strip("\x00 ").strip()
    return value or None


def _to_srgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            img = ImageCms.profileToProfile(img, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):  # a broken profile: keep the pixels as they are
            pass
    return img.convert("RGB") if img.mode != "RGB" else img


def _save(img: Image.Image, path: str, fmt: str, **options) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    img.save(temp, fmt, **options)
    os.replace(temp, target)
