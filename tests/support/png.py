"""Read a PNG's pixels (what a browser screenshot is) with the standard library alone.

Pillow is used when it is installed (faster); otherwise the file is decoded by hand:
8-bit greyscale, grey + alpha, RGB or RGBA, not interlaced (Chromium writes RGB or RGBA),
the zlib stream inflated and each row's filter (none, sub, up, average, Paeth) undone."""

from __future__ import annotations

import io
import struct
import zlib
from collections import Counter
from dataclasses import dataclass

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: bytes per pixel of each colour type at 8 bits per sample
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class Pixels:
    """A decoded image: ``channels`` bytes per pixel, rows top to bottom."""

    width: int
    height: int
    channels: int
    data: bytes

    def colours(self) -> Counter[bytes]:
        """How many pixels have each colour."""
        step = self.channels
        return Counter(self.data[i : i + step] for i in range(0, len(self.data), step))


def decode_png(blob: bytes) -> Pixels:
    """The PNG's pixels: RGBA through Pillow if installed, else as stored, by hand."""
    try:
        from PIL import Image
    except ImportError:
        return decode_png_by_hand(blob)
    with Image.open(io.BytesIO(blob)) as image:
        rgba = image.convert("RGBA")
        return Pixels(rgba.width, rgba.height, 4, rgba.tobytes())


def _chunks(blob: bytes) -> list[tuple[bytes, bytes]]:
    if not blob.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    found, pos = [], len(_SIGNATURE)
    while pos + 8 <= len(blob):
        (length,) = struct.unpack(">I", blob[pos : pos + 4])
        kind = blob[pos + 4 : pos + 8]
        found.append((kind, blob[pos + 8 : pos + 8 + length]))
        pos += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            break
    return found


def decode_png_by_hand(blob: bytes) -> Pixels:
    """The PNG's pixels, read with ``zlib`` alone (``ValueError`` for what it cannot read)."""
    chunks = _chunks(blob)
    if not chunks or chunks[0][0] != b"IHDR":
        raise ValueError("PNG without a header")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace")
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    channels = _CHANNELS[colour]
    return Pixels(width, height, channels, bytes(_unfilter(raw, width, height, channels)))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> bytearray:
    stride = width * bpp
    if len(raw) != height * (stride + 1):
        raise ValueError("PNG image data of the wrong size")
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # up
            line = bytearray((x + b) & 0xFF for x, b in zip(line, prev, strict=True))
        elif kind == 3:  # average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                left, corner = (line[i - bpp], prev[i - bpp]) if i >= bpp else (0, 0)
                line[i] = (line[i] + _paeth(left, prev[i], corner)) & 0xFF
        elif kind != 0:
            raise ValueError(f"PNG row {y}: unknown filter {kind}")
        out += line
        prev = line
    return out
