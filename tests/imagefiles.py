"""Image files made for the tests: DNGs (little-endian TIFF written by hand: a raw CFA image and, when
asked, an embedded JPEG preview in IFD0 with the RAW in a SubIFD, as cameras and converters write them),
and PNGs of one colour at any size and bit depth, written a row at a time (they compress to almost nothing)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image

BYTE, ASCII, SHORT, LONG = 1, 2, 3, 4
_FORMAT = {BYTE: "B", ASCII: "B", SHORT: "H", LONG: "I"}


class _File:
    def __init__(self) -> None:
        self.data = bytearray(b"II*\x00\x00\x00\x00\x00")  # the first IFD's offset is set last

    def blob(self, raw: bytes) -> int:
        self.data += b"\x00" * (len(self.data) % 2)
        self.data += raw
        return len(self.data) - len(raw)

    def ifd(self, entries: dict[int, tuple[int, object]]) -> int:
        """Writes an IFD (its large values first) and answers its offset."""
        table = [struct.pack("<H", len(entries))]
        for tag, (kind, value) in sorted(entries.items()):
            values = list(value.encode() + b"\x00") if kind == ASCII else value  # type: ignore[union-attr]
            raw = struct.pack(f"<{len(values)}{_FORMAT[kind]}", *values)  # type: ignore[arg-type]
            field = raw.ljust(4, b"\x00") if len(raw) <= 4 else struct.pack("<I", self.blob(raw))
            table.append(struct.pack("<HHI", tag, kind, len(values)) + field)  # type: ignore[arg-type]
        return self.blob(b"".join(table) + b"\x00\x00\x00\x00")


def dng(
    preview: Image.Image | None = None,
    orientation: int = 1,
    make: str = "Darkroom",
    model: str = "Test Camera",
    taken: str = "2024:06:01 12:30:45",
    lens: str | None = None,
) -> bytes:
    """A 64x48 Bayer RAW (16-bit, uncompressed) with its camera, time, orientation and lens (LensModel),
    and `preview` embedded as a JPEG when given."""
    out = _File()
    width, height = 64, 48
    pixels = out.blob(struct.pack(f"<{width * height}H", *([1000] * (width * height))))
    raw = {
        254: (LONG, [0]),
        256: (LONG, [width]),
        257: (LONG, [height]),
        258: (SHORT, [16]),
        259: (SHORT, [1]),
        262: (SHORT, [32803]),
        273: (LONG, [pixels]),
        277: (SHORT, [1]),
        278: (LONG, [height]),
        279: (LONG, [width * height * 2]),
        33421: (SHORT, [2, 2]),
        33422: (BYTE, [0, 1, 1, 2]),
        50717: (LONG, [4095]),
    }
    exif = out.ifd({36867: (ASCII, taken), **({42036: (ASCII, lens)} if lens else {})})
    camera = {
        271: (ASCII, make),
        272: (ASCII, model),
        274: (SHORT, [orientation]),
        34665: (LONG, [exif]),
        50706: (BYTE, [1, 4, 0, 0]),
        50708: (ASCII, f"{make} {model}"),
    }
    if preview is None:
        first = out.ifd({**raw, **camera})
    else:
        buffer = io.BytesIO()
        preview.convert("RGB").save(buffer, "JPEG", quality=90)
        jpeg = out.blob(buffer.getvalue())
        sub = out.ifd(raw)
        first = out.ifd(
            {
                **camera,
                254: (LONG, [1]),
                256: (LONG, [preview.width]),
                257: (LONG, [preview.height]),
                258: (SHORT, [8, 8, 8]),
                259: (SHORT, [7]),
                262: (SHORT, [6]),
                273: (LONG, [jpeg]),
                277: (SHORT, [3]),
                278: (LONG, [preview.height]),
                279: (LONG, [len(buffer.getvalue())]),
                330: (LONG, [sub]),
            }
        )
    out.data[4:8] = struct.pack("<I", first)
    return bytes(out.data)


def solid_png(path: Path, width: int, height: int, pixel: bytes, bit_depth: int = 8, colour_type: int = 2) -> Path:
    """A PNG whose every pixel is `pixel` (its raw bytes: 3 for 8-bit RGB, 2 for 16-bit grey…)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    squeeze = zlib.compressobj(9)
    row = b"\x00" + pixel * width  # filter type 0
    idat = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path
