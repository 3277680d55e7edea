"""Large PNG and TIFF sources decoded a band of rows at a time and reduced as each band comes, so an
image process holds one band and the reduced image, never the whole decoded source (a 9400x9400 RGB
PNG is 353 MB decoded: Pillow keeps 4 bytes a pixel)."""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import IO, BinaryIO

from PIL import Image, ImageFile, TiffImagePlugin
from PIL.TiffTags import LONG

BAND_BYTES = 8 << 20  # decoded bytes per band, about
READ_BYTES = 1 << 20  # compressed bytes read, and inflated bytes taken, at a time
# The TIFF tags a band's own small TIFF needs to be decoded like the source's rows.
_LAYOUT_TAGS = (258, 259, 262, 266, 277, 284, 317, 320, 322, 323, 332, 338, 339, 347, 530, 531, 532)
# 16-bit colour PNG rows: read as little-endian, Pillow's 8 bits are the low bytes.
_LOW_BYTES = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L"}
WIDTH, LENGTH, STRIP_OFFSETS, ROWS_PER_STRIP, STRIP_BYTES = 256, 257, 273, 278, 279
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTES = 322, 323, 324, 325

Band = Callable[[Image.Image], Image.Image]


def reduced(img: Image.Image, factor: tuple[int, int], prepare: Band) -> Image.Image | None:
    """`prepare(img).reduce(factor)`, decoded a band at a time (each a whole number of the reduction's
    blocks high); None when the format or its layout cannot be read by bands (then the caller decodes
    it whole)."""
    width, height = img.size
    rows = max(1, BAND_BYTES // (4 * width) // factor[1]) * factor[1]
    if img.format == "PNG":
        bands = _png_bands(img, rows)
    elif img.format == "TIFF":
        bands = _tiff_bands(img, rows, factor[1])
    else:
        return None
    if bands is None:
        return None
    out: Image.Image | None = None
    top = 0
    for band in bands:
        small = prepare(band).reduce(factor)
        if out is None:
            out = Image.new(small.mode, (math.ceil(width / factor[0]), math.ceil(height / factor[1])))
        out.paste(small, (0, top // factor[1]))
        top += band.height
    return out


def _packs(mode: str, rawmode: str) -> bool:
    """Whether decoded rows give back their raw bytes exactly (the next band's PNG filters need them)."""
    try:
        Image.new(mode, (1, 1)).tobytes("raw", rawmode)
        return True
    except (ValueError, OSError):
        return False


def _png_bands(img: Image.Image, rows: int) -> Iterator[Image.Image] | None:
    """Each band's filtered rows, inflated from the IDAT stream, are decoded by Pillow after the row
    above them (their filters' reference), given unfiltered; the EXIF chunk after the pixels, if any,
    is put in `img.info` so that reading it does not decode the whole image."""
    if not isinstance(img, ImageFile.ImageFile) or len(img.tile) != 1 or img.info.get("interlace") or not img.filename:
        return None
    tile = img.tile[0]
    rawmode = tile.args if isinstance(tile.args, str) else tile.args[0] if tile.args else ""
    if tile.codec_name != "zip" or not (_packs(img.mode, rawmode) or rawmode in _LOW_BYTES):
        return None
    return _png_rows(img, str(img.filename), tile.offset, rawmode, rows)


def _png_rows(img: Image.Image, path: str, offset: int, rawmode: str, rows: int) -> Iterator[Image.Image]:
    width, height = img.size
    stride = len(Image.new(img.mode, (width, 1)).tobytes("raw", img.mode if rawmode in _LOW_BYTES else rawmode))
    stride *= 2 if rawmode in _LOW_BYTES else 1
    with open(path, "rb") as fp:
        fp.seek(offset - 8)
        inflated = _inflated(fp)
        previous = bytes(stride)
        pending = bytearray()
        for top in range(0, height, rows):
            count = min(rows, height - top)
            wanted = count * (stride + 1)
            while len(pending) < wanted:
                pending += next(inflated, b"") or _truncated()
            stream = zlib.compress(b"\x00" + previous + pending[:wanted], 0)
            del pending[:wanted]
            band = Image.frombytes(img.mode, (width, count + 1), stream, "zip", rawmode)
            previous = _last_row(band, stream, rawmode)
            band = band.crop((0, 1, width, count + 1))
            if img.palette is not None:
                band.putpalette(img.palette)
            yield band
        for _ in inflated:  # the chunks after the pixels
            pass
        img.info.setdefault("exif", _exif_after_pixels(fp))


def _last_row(band: Image.Image, stream: bytes, rawmode: str) -> bytes:
    """The band's last row as the PNG holds it unfiltered. Pillow keeps 16-bit colour in 8 bits, so
    those bands are decoded once more for the low bytes."""
    last = (0, band.height - 1, band.width, band.height)
    if rawmode not in _LOW_BYTES:
        return band.crop(last).tobytes("raw", rawmode)
    low = Image.frombytes(band.mode, band.size, stream, "zip", _LOW_BYTES[rawmode])
    row = bytearray(2 * len(high := band.crop(last).tobytes("raw", band.mode)))
    row[0::2], row[1::2] = high, low.crop(last).tobytes("raw", band.mode)
    return bytes(row)


def _truncated() -> bytes:
    raise OSError("image file is truncated")


def _inflated(fp: BinaryIO) -> Iterator[bytes]:
    """The PNG's pixel stream inflated, READ_BYTES at a time; `fp` starts at the first IDAT chunk and
    ends after the last."""
    inflate = zlib.decompressobj()
    while True:
        header = fp.read(8)
        if len(header) < 8:
            _truncated()
        length, kind = struct.unpack(">I4s", header)
        if kind != b"IDAT":
            fp.seek(-8, io.SEEK_CUR)
            break
        left = length
        while left:
            data = fp.read(min(left, READ_BYTES))
            if not data:
                _truncated()
            left -= len(data)
            while data:
                try:
                    out = inflate.decompress(data, READ_BYTES)
                except zlib.error as exc:
                    raise OSError(f"broken PNG data ({exc})") from exc
                data = inflate.unconsumed_tail
                if out:
                    yield out
        fp.seek(4, io.SEEK_CUR)  # CRC: inflate checks the stream's own
    if rest := inflate.flush():
        yield rest


def _exif_after_pixels(fp: BinaryIO) -> bytes:
    while header := fp.read(8):
        length, kind = struct.unpack(">I4s", header)
        if kind == b"eXIf":
            return b"Exif\x00\x00" + fp.read(length)
        if kind == b"IEND":
            break
        fp.seek(length + 4, io.SEEK_CUR)
    return b""


def _tiff_bands(img: Image.Image, rows: int, multiple: int) -> Iterator[Image.Image] | None:
    """Each band is a small TIFF of its own: the source's layout tags and the strips (or rows of tiles)
    that hold the band's rows, decoded by Pillow (and libtiff) like the source. Uncompressed strips
    are cut at any row."""
    if not isinstance(img, TiffImagePlugin.TiffImageFile) or not img.filename:
        return None
    tags = img.tag_v2
    with open(str(img.filename), "rb") as fp:
        header = fp.read(8)
    if header[2:4] not in (b"*\x00", b"\x00*"):
        return None  # BigTIFF
    tiled = TILE_OFFSETS in tags
    planes = tags.get(277, 1) if tags.get(284, 1) == 2 else 1
    if tiled:
        unit, across = tags[TILE_LENGTH], math.ceil(img.width / tags[TILE_WIDTH])
        offsets, counts = tags[TILE_OFFSETS], tags[TILE_BYTES]
    else:
        unit, across = tags.get(ROWS_PER_STRIP, img.height), 1
        offsets, counts = tags[STRIP_OFFSETS], tags[STRIP_BYTES]
    unit = min(unit, img.height)
    if len(offsets) != len(counts) or len(offsets) != math.ceil(img.height / unit) * across * planes:
        return None
    if tags.get(259, 1) == 1 and not tiled and tags.get(262) != 6:  # (subsampled YCbCr comes in blocks)
        unit = 1  # uncompressed rows are cut anywhere
    step = math.lcm(unit, multiple)  # whole strips or tiles, and whole blocks of the reduction
    rows = max(step, rows // step * step)
    return _tiff_rows(img, header, tags, (offsets, counts), tiled, unit, across, planes, rows)


def _tiff_rows(
    img: TiffImagePlugin.TiffImageFile,
    header: bytes,
    tags: TiffImagePlugin.ImageFileDirectory_v2,
    segments_at: tuple[tuple[int, ...], tuple[int, ...]],
    tiled: bool,
    unit: int,
    across: int,
    planes: int,
    rows: int,
) -> Iterator[Image.Image]:
    width, height = img.size
    offsets, counts = segments_at
    per_plane = len(offsets) // planes
    strip_rows = min(tags.get(ROWS_PER_STRIP, height), height)
    bits = tags.get(258, 1)
    stride = math.ceil(width * (bits[0] if isinstance(bits, tuple) else bits) * tags.get(277, 1) // planes / 8)
    with open(str(img.filename), "rb") as fp:
        for top in range(0, height, rows):
            count = min(rows, height - top)
            segments: list[bytes] = []
            for plane in range(planes):
                if unit == 1:  # uncompressed strips: the band's rows, one strip a plane
                    segments.append(
                        _rows_of_strips(
                            fp, offsets[plane * per_plane : (plane + 1) * per_plane], strip_rows, stride, top, count
                        )
                    )
                else:
                    first = plane * per_plane + top // unit * across
                    last = plane * per_plane + math.ceil((top + count) / unit) * across
                    for index in range(first, last):
                        fp.seek(offsets[index])
                        segments.append(fp.read(counts[index]))
            band = Image.open(io.BytesIO(_small_tiff(header, tags, width, count, tiled, unit, segments)))
            band.load()
            yield band


def _rows_of_strips(
    fp: IO[bytes], offsets: tuple[int, ...], strip_rows: int, stride: int, top: int, count: int
) -> bytes:
    out = bytearray()
    row = top
    while row < top + count:
        strip, within = divmod(row, strip_rows)
        take = min(strip_rows - within, top + count - row)
        fp.seek(offsets[strip] + within * stride)
        out += fp.read(take * stride)
        row += take
    return bytes(out)


def _small_tiff(
    header: bytes,
    tags: TiffImagePlugin.ImageFileDirectory_v2,
    width: int,
    height: int,
    tiled: bool,
    unit: int,
    segments: list[bytes],
) -> bytes:
    ifd = TiffImagePlugin.ImageFileDirectory_v2(header)
    for tag in _LAYOUT_TAGS:
        if tag in tags:
            ifd[tag] = tags[tag]
            ifd.tagtype[tag] = tags.tagtype[tag]
    ifd[WIDTH], ifd[LENGTH] = width, height
    offsets_tag, counts_tag = (TILE_OFFSETS, TILE_BYTES) if tiled else (STRIP_OFFSETS, STRIP_BYTES)
    if not tiled:
        ifd[ROWS_PER_STRIP] = height if unit == 1 else unit
    ifd[counts_tag] = tuple(len(s) for s in segments)
    ifd[offsets_tag] = tuple(accumulate((len(s) for s in segments[:-1]), initial=0))
    for tag in (ROWS_PER_STRIP, offsets_tag, counts_tag):
        if tag in ifd:
            ifd.tagtype[tag] = LONG
    if tiled:  # Pillow counts strip offsets from the end of the IFD's data itself, tile offsets from the start
        start = 8 + len(ifd.tobytes(8))
        ifd[offsets_tag] = tuple(start + offset for offset in ifd[offsets_tag])
    head = header[:4] + (struct.pack("<I", 8) if header[:2] == b"II" else struct.pack(">I", 8))
    return head + ifd.tobytes(8) + b"".join(segments)
