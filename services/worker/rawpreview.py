"""A RAW file's embedded preview (LibRaw through rawpy) and its camera, lens, time and orientation."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image
from PIL.ExifTags import IFD, Base

CAMERA_TAGS = (Base.Make, Base.Model)
SHOT_TAGS = (Base.DateTimeOriginal, Base.OffsetTimeOriginal, Base.LensMake, Base.LensModel)  # in the Exif IFD
# LibRaw's `flip` (dcraw's) as an EXIF orientation.
_ORIENTATION_OF_FLIP = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}


class NoPreview(Exception):
    """A RAW with no embedded preview that can be shown: its photo is `not_supported`."""


@dataclass
class RawPreview:
    image: Image.Image  # the preview, not yet decoded when it is a JPEG
    exif: Image.Exif  # camera, lens and time from the RAW (else its preview); orientation from the RAW
    size: tuple[int, int]  # the RAW's own image size, before orientation


def raw_preview(path: str) -> RawPreview:
    import rawpy  # here, not above: it brings numpy, 15 MB more in every image process that sees no RAW

    try:
        with rawpy.imread(path) as raw:
            sizes = raw.sizes
            thumb = raw.extract_thumb()
    except rawpy.LibRawNoThumbnailError as exc:
        raise NoPreview("the RAW file has no embedded preview") from exc
    except rawpy.LibRawUnsupportedThumbnailError as exc:
        raise NoPreview("the RAW file's embedded preview is in a format that cannot be read") from exc
    except rawpy.LibRawError as exc:
        raise NoPreview("not a RAW file LibRaw can read") from exc
    image: Image.Image
    if isinstance(thumb.data, bytes):  # a JPEG (ThumbFormat.JPEG); else the pixels as an array
        try:
            image = Image.open(io.BytesIO(thumb.data))
        except OSError as exc:
            raise NoPreview("the RAW file's embedded preview is not a readable JPEG") from exc
    else:
        image = Image.fromarray(thumb.data)
    exif = _camera_exif(path, image.getexif())
    exif[Base.Orientation] = _ORIENTATION_OF_FLIP.get(sizes.flip, 1)
    return RawPreview(image, exif, (sizes.width, sizes.height))


def _camera_exif(path: str, preview: Image.Exif) -> Image.Exif:
    """Camera, lens and time taken from the RAW's own TIFF structure (most RAW formats are TIFF), else from
    the preview, which cameras often write without EXIF."""
    sources = [preview]
    try:
        with open(path, "rb") as fp:
            own = Image.Exif()
            own.load_from_fp(fp)
            own.get_ifd(IFD.Exif)  # read now, while the file is open
            sources.insert(0, own)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):  # not TIFF-based: CR3, RAF…
        pass
    found = Image.Exif()
    for tag in CAMERA_TAGS:
        if value := next((s[tag] for s in sources if s.get(tag)), None):
            found[tag] = value
    for tag in SHOT_TAGS:
        if value := next((s.get_ifd(IFD.Exif)[tag] for s in sources if s.get_ifd(IFD.Exif).get(tag)), None):
            found.get_ifd(IFD.Exif)[tag] = value
    return found
