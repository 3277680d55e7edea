"""Large PNG and TIFF sources decoded by bands give exactly what decoding them whole gives."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from darkroom.worker import bands
from darkroom.worker.imaging import _eight_bit

WIDTH, HEIGHT = 203, 157  # odd sizes: the last band and the last reduced row and column are partial
FACTOR = (3, 2)


@pytest.fixture(autouse=True)
def small_bands(monkeypatch) -> None:
    monkeypatch.setattr(bands, "BAND_BYTES", 4 * WIDTH * 10)  # ten rows a band


def _noise(mode: str) -> Image.Image:
    rng = np.random.default_rng(7)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, (HEIGHT, WIDTH), dtype=np.uint16))
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}.get(mode, 3)
    data = rng.integers(0, 255, (HEIGHT, WIDTH, channels), dtype=np.uint8)
    image = Image.fromarray(data[:, :, 0] if channels == 1 else data, None if mode in ("P", "1") else mode)
    return image.convert(mode) if mode in ("P", "1") else image


def _same_as_whole(path: Path) -> None:
    with Image.open(path) as whole:
        expected = _eight_bit(whole).reduce(FACTOR)
    with Image.open(path) as img:
        got = bands.reduced(img, FACTOR, _eight_bit)
    assert got is not None, "decoded whole, not by bands"
    assert got.mode == expected.mode and got.size == expected.size
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"])
def test_png_bands_match_the_whole_image(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode.replace(';', '')}.png"
    _noise(mode).save(path, optimize=False, compress_level=6)  # adaptive filters: every kind of row filter
    _same_as_whole(path)


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_png_bands_match_the_whole_image(tmp_path: Path, channels: int) -> None:
    import zlib

    rng = np.random.default_rng(3)
    samples = rng.integers(0, 65535, (HEIGHT, WIDTH * channels), dtype=np.uint16).astype(">u2")
    scanlines = b"".join(bytes([int(rng.integers(0, 5))]) + row.tobytes() for row in samples)  # random filters

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 16, 2 if channels == 3 else 6, 0, 0, 0)
    path = tmp_path / "colour16.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")
    )
    _same_as_whole(path)


def test_an_interlaced_png_is_decoded_whole(tmp_path: Path) -> None:
    path = tmp_path / "interlaced.png"
    _noise("RGB").save(path)
    with Image.open(path) as img:
        img.info["interlace"] = 1  # as Pillow reports an Adam7 file
        assert bands.reduced(img, FACTOR, _eight_bit) is None


@pytest.mark.parametrize(
    "options",
    [
        {},  # uncompressed, one strip
        {"compression": "tiff_lzw"},
        {"compression": "tiff_adobe_deflate"},
        {"compression": "jpeg", "quality": 90},
        {"compression": "packbits"},
    ],
    ids=["raw", "lzw", "deflate", "jpeg", "packbits"],
)
def test_tiff_bands_match_the_whole_image_as_pillow_writes_it(tmp_path: Path, options: dict) -> None:
    path = tmp_path / "pillow.tif"
    _noise("RGB").save(path, **options)
    _same_as_whole(path)


@pytest.mark.parametrize(
    "options",
    [
        {"rowsperstrip": 7},
        {"rowsperstrip": 8, "compression": "zlib", "predictor": 2},
        {"tile": (32, 32)},
        {"tile": (16, 48), "compression": "zlib"},
        {"planarconfig": "separate", "rowsperstrip": 5},
        {"byteorder": ">", "rowsperstrip": 9, "grey16": True},
    ],
    ids=["strips", "deflate-predictor", "tiles", "deflate-tiles", "planar", "big-endian-16"],
)
def test_tiff_bands_match_the_whole_image_in_other_layouts(tmp_path: Path, options: dict) -> None:
    path = tmp_path / "layout.tif"
    grey16 = options.pop("grey16", False)
    data = np.asarray(_noise("I;16" if grey16 else "RGB"))
    if options.get("planarconfig") == "separate":
        data = np.moveaxis(data, -1, 0)  # one plane a colour
    tifffile.imwrite(path, data, photometric="minisblack" if grey16 else "rgb", metadata=None, **options)
    _same_as_whole(path)


def test_a_truncated_or_broken_png_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "cut.png"
    _noise("RGB").save(path)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with Image.open(path) as img, pytest.raises(OSError, match="image file is truncated"):
        bands.reduced(img, FACTOR, _eight_bit)
    path.write_bytes(whole[:200] + bytes(len(whole) - 400) + whole[-200:])  # zeros in the pixel stream
    with Image.open(path) as img, pytest.raises(OSError, match="broken PNG data"):
        bands.reduced(img, FACTOR, _eight_bit)
