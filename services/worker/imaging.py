"""Derivatives and metadata from one source image; runs in a process pool (CPU-bound)."""

from __future__ import annotations

import io
import math
import os
import signal
import struct
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageCms
from PIL.ExifTags import IFD, Base

from ..kernel.photos import kind_of
from ..kernel.tether import die_with_parent
from .bands import reduced
from .rawpreview import raw_preview

_SRGB = ImageCms.createProfile("sRGB")


def _dated(icc: bytes, stamp: bytes = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)) -> bytes:
    """The profile with a fixed creation time (ICC header bytes 24-35; its profile ID is unset, so no
    checksum covers them): every image process embeds the same bytes, and the same photo made again
    gives the same files."""
    return icc[:24] + stamp + icc[36:]


SRGB_ICC = _dated(ImageCms.ImageCmsProfile(_SRGB).tobytes())  # embedded in every derivative
FIT_BAND_ROWS = 256  # rows of the preview resampled at a time
_EIGHT_BIT = ("L", "LA", "RGB", "RGBA", "CMYK")  # modes kept as they are until the colour conversion
T = Image.Transpose
_TRANSPOSE = {
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_270,
    7: T.TRANSVERSE,
    8: T.ROTATE_90,
}  # EXIF orientation: what displays the image upright


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
    lens: str | None = None


def init_worker(parent_pid: int | None = None) -> None:
    """Pool initializer: die with the parent (a killed worker leaves no orphans, even one killed while
    this process was starting), HEIC support where pillow-heif is installed, and
    processing.max_megapixels (Spec) as the only size limit: Pillow's own decompression-bomb check
    would refuse smaller images first, in its own words."""
    if not die_with_parent(parent_pid):
        os._exit(1)
    # Ctrl-C reaches the whole process group: the parent stops the pool, and a traceback of each
    # image process interrupted would only break the one-line log.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Image.MAX_IMAGE_PIXELS = None
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # HEIC sources then fail clearly as unreadable
        pass


def make_derivatives(source: str, thumb: str, preview: str, spec: Spec) -> Metadata:
    """Decode once at about the preview's size, orient, convert to sRGB (and say so in an embedded
    profile), shrink. A RAW gives its embedded preview, and the camera, time and orientation it records."""
    image, exif, size = _opened(source)
    with image as img:
        small = _shrunk(img, spec)
        meta = _metadata(img.getexif() if exif is None else exif, size)
        icc = img.info.get("icc_profile")
        if small is not img:
            img.close()  # the source's pixels go now: the preview's alone are held while it is encoded
    oriented = _to_srgb(_oriented(small, meta.orientation), icc)
    _save(oriented, preview, "JPEG", quality=spec.preview_quality, optimize=True, icc_profile=SRGB_ICC)
    oriented.thumbnail((spec.thumb_dim, spec.thumb_dim), Image.Resampling.LANCZOS)
    _save(oriented, thumb, "WEBP", quality=spec.thumb_quality, method=4, icc_profile=SRGB_ICC)
    return meta


def read_metadata(source: str) -> Metadata:
    """What make_derivatives reports of a photo (camera, time, orientation, size), making nothing."""
    image, exif, size = _opened(source)
    with image as img:
        return _metadata(img.getexif() if exif is None else exif, size)


def _opened(source: str) -> tuple[Image.Image, Image.Exif | None, tuple[int, int]]:
    """The image to decode, the EXIF a RAW records (None: the image's own), and the photo's size."""
    if kind_of(source) == "raw":
        found = raw_preview(source)
        return found.image, found.exif, found.size
    image = Image.open(source)
    return image, None, image.size


def _shrunk(img: Image.Image, spec: Spec) -> Image.Image:
    """The image at most preview_dim on a side, in 8 bits (JPEG draft mode decodes at a reduced scale)."""
    width, height = img.size
    if width * height > spec.max_megapixels * 1_000_000:
        raise ImageTooLarge(
            f"the image is {width}x{height} ({width * height / 1_000_000:.1f} megapixels), over "
            f"the limit of processing.max_megapixels = {spec.max_megapixels:g}"
        )
    scale = min(1.0, spec.preview_dim / max(width, height))
    if img.format == "JPEG":
        # Decode at the smallest DCT scale that still covers the preview: both sides count.
        img.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))
    else:
        # Reduced by whole factors while decoding (as Image.thumbnail would after it, with its reducing
        # gap of 2), then resampled: a large PNG or TIFF is never held whole.
        factor = (int(1 / scale / 2) or 1, int(1 / scale / 2) or 1)
        small = reduced(img, factor, _eight_bit) if factor != (1, 1) else None
        if small is not None:
            small.thumbnail((spec.preview_dim, spec.preview_dim), Image.Resampling.LANCZOS)
            return small
    img.load()
    # Shrink first: rotating and converting colours at full size would cost memory and time.
    return _fitted(_eight_bit(img), spec.preview_dim)


def _fitted(img: Image.Image, most: int) -> Image.Image:
    """What img.thumbnail((most, most), LANCZOS) gives (to a level at most, where a band's edge rounds
    otherwise), resampled a band of rows at a time: Pillow resamples across, then down, through an
    intermediate image as wide as the result and as high as the source (16 MB more held at the peak
    of a 24 MP JPEG's preview). Sources twice the size or more are left to thumbnail, which reduces them
    by whole factors first."""
    size = fitted_size(img.size, most)
    width, height = img.size
    if size is None or width >= 2 * size[0] or height >= 2 * size[1]:
        img.thumbnail((most, most), Image.Resampling.LANCZOS)
        return img
    out = Image.new(img.mode, size)
    scale = height / size[1]
    edges = [*range(0, size[1], FIT_BAND_ROWS), size[1]]
    for top, bottom in zip(edges, edges[1:]):
        box = (0, top * scale, width, bottom * scale)  # the source rows this band is made from
        out.paste(img.resize((size[0], bottom - top), Image.Resampling.LANCZOS, box=box), (0, top))
    return out


def fitted_size(size: tuple[int, int], most: int) -> tuple[int, int] | None:
    """The size Image.thumbnail((most, most)) gives an image of `size`, None when it fits already."""
    width, height = size
    if width <= most and height <= most:
        return None
    aspect = width / height
    if aspect <= 1:  # the height becomes `most`, the width the nearest to the aspect
        width = min(math.floor(most * aspect), math.ceil(most * aspect), key=lambda n: abs(aspect - n / most))
        return max(width, 1), most
    height = min(math.floor(most / aspect), math.ceil(most / aspect), key=lambda n: n and abs(aspect - most / n))
    return most, max(height, 1)


def _oriented(img: Image.Image, orientation: int | None) -> Image.Image:
    method = _TRANSPOSE.get(orientation or 1)
    return img if method is None else img.transpose(method)


def _eight_bit(img: Image.Image) -> Image.Image:
    """Samples of 16 bits and more scaled into 8 (Pillow's own conversion clips them to white); other
    modes made RGB."""
    if img.mode in _EIGHT_BIT:
        return img
    if img.mode.startswith("I"):  # I;16 from 16-bit PNG, TIFF and HEIF, its byte orders, I with the same range
        if img.mode not in ("I", "I;16"):
            img = img.convert("I")  # the only way Pillow scales the other byte orders
        return img.point(lambda v: v / 257 + 0.5).convert("L")
    if img.mode == "F":  # floating-point samples, 0.0 to 1.0
        return img.point(lambda v: v * 255 + 0.5).convert("L")
    return img.convert("RGB")


def _metadata(exif: Image.Exif, size: tuple[int, int]) -> Metadata:
    sub = exif.get_ifd(IFD.Exif)
    orientation = exif.get(Base.Orientation)
    orientation = orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else None
    width, height = size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return Metadata(
        taken_at=_taken_at(sub.get(Base.DateTimeOriginal), sub.get(Base.OffsetTimeOriginal)),
        make=_text(exif.get(Base.Make)),
        model=_text(exif.get(Base.Model)),
        orientation=orientation,
        width=width,
        height=height,
        lens=_lens(sub.get(Base.LensMake), sub.get(Base.LensModel)),
    )


def _lens(lens_make: object, lens_model: object) -> str | None:
    """LensModel, with LensMake before it when the model does not already name it ("Apple iPhone 6
    back camera…" but not "Canon Canon EF…"); None when the camera records no lens."""
    make, model = _text(lens_make), _text(lens_model)
    if model and make and make.lower() not in model.lower():
        return f"{make} {model}"
    return model


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


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    if img.mode not in ("RGB", "L", "CMYK"):
        img = img.convert("RGB")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            img = ImageCms.profileToProfile(img, source, _SRGB, outputMode="RGB") or img
        except (ImageCms.PyCMSError, OSError):  # a broken profile: keep the pixels as they are
            pass
    return img.convert("RGB") if img.mode != "RGB" else img


def _save(img: Image.Image, path: str, fmt: str, **options) -> None:
    target = Path(path)
    # `.thumb/` or `.preview/` of a project folder that is there: a folder renamed or deleted meanwhile
    # is never made again by a late derivative.
    target.parent.mkdir(exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    img.save(temp, fmt, **options)
    os.replace(temp, target)
