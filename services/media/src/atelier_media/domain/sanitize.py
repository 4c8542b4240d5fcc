"""Safe ingest of an upload: the type from the bytes, one decoder for it, everything encoded anew.

An image is opened with the one Pillow decoder its first bytes name (a PNG claimed by a JPEG
header is refused, never tried against every plugin), its size read from the header and
refused past the pixel limit before a pixel is decoded (Pillow's own bomb warning counts as a
refusal too), then decoded whole — a file cut short is refused, not padded — turned upright,
converted from its colour profile to sRGB, shrunk to the long-edge cap, and written out as a
fresh image: pixels only, no EXIF, GPS, XMP, comments or profile, transparency kept. That
re-encoding is what defeats polyglots: whatever rode along in the file is not in its pixels.

Audio is opened with the one demuxer its bytes name, decoded whole (up to a length limit) and
written as a WAV master (16-bit PCM, its own sample rate, mono or stereo).
"""

from __future__ import annotations

import io
import os
import warnings
import wave
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageCms, ImageFile, ImageOps, JpegImagePlugin

from atelier_contracts.uploads import AUDIO_TYPES, IMAGE_TYPES, SNIFF_BYTES, allowed_types, sniff
from atelier_media.domain.thumbnail import DECODE_ERRORS, normalise_mode, shrink, transparent

THUMBNAIL_EDGE = 256
MAX_AUDIO_RATE = 48_000
_ORIENTATION = 0x0112
_STORED_AS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "png"}
"""What each decoded format is stored as: GIF becomes PNG (its first frame, losslessly)."""
_CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "wav": "audio/wav"}
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


class Refused(Exception):
    """An upload that cannot be taken: ``code`` (an error code) and its HTTP ``status``."""

    def __init__(self, code: str, status: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 40_000_000
    """Width times height, read from the header; a larger image is refused before decoding."""
    max_edge: int = 4096
    """The stored original's long edge: a larger image is shrunk to it."""
    max_audio_s: float = 600.0
    """At most 10 minutes (48 kHz stereo: 115 MB of samples while it is made safe)."""
    types: frozenset[str] = frozenset(IMAGE_TYPES) | frozenset(AUDIO_TYPES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Limits:
        env = os.environ if env is None else env
        return cls(
            max_pixels=int(env.get("ATELIER_UPLOAD_MAX_PIXELS", str(cls.max_pixels))),
            max_edge=int(env.get("ATELIER_UPLOAD_MAX_EDGE", str(cls.max_edge))),
            max_audio_s=float(env.get("ATELIER_UPLOAD_MAX_AUDIO_S", str(cls.max_audio_s))),
            types=allowed_types(env),
        )


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    format: str
    width: int
    height: int
    has_alpha: bool
    thumbnail: bytes

    @property
    def content_type(self) -> str:
        return _CONTENT_TYPES[self.format]


@dataclass(frozen=True)
class CleanAudio:
    data: bytes
    duration_s: float
    sample_rate: int
    channels: int
    format: str = "wav"
    content_type: str = "audio/wav"


def content_type_of(source: BinaryIO, limits: Limits) -> str:
    """The allowed type the file's first bytes show, or ``Refused``."""
    head = source.read(SNIFF_BYTES)
    source.seek(0)
    if not head:
        raise Refused("upload_empty", 400, "The file is empty.")
    found = sniff(head)
    if found is None or found not in limits.types:
        shown = f"its bytes are {found}" if found else "its bytes are no known type"
        allowed = ", ".join(sorted(limits.types))
        raise Refused("unsupported_media", 415, f"Not an allowed type ({shown}); allowed: {allowed}.")
    return found


def sanitize(source: BinaryIO, limits: Limits) -> tuple[str, CleanImage | CleanAudio]:
    """The upload's type as its bytes show it, and the upload made safe."""
    found = content_type_of(source, limits)
    if found in IMAGE_TYPES:
        return found, sanitize_image(source, IMAGE_TYPES[found], limits)
    return found, sanitize_audio(source, AUDIO_TYPES[found], limits)


def sanitize_image(source: BinaryIO, decoder: str, limits: Limits) -> CleanImage:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img: Image.Image = Image.open(source, formats=[decoder])
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise Refused("image_too_large", 413, f"The image is too large to decode: {exc}") from None
        except DECODE_ERRORS as exc:
            raise Refused("media_invalid", 422, f"Not a readable {decoder} image: {exc}") from None
        width, height = img.size
        if width < 1 or height < 1:
            raise Refused("media_invalid", 422, f"The image has no pixels ({width}x{height}).")
        if width * height > limits.max_pixels:
            raise Refused(
                "image_too_large",
                413,
                f"The image is {width}x{height} = {width * height:,} pixels; at most "
                f"{limits.max_pixels:,} are taken (ATELIER_UPLOAD_MAX_PIXELS).",
            )
        icc = img.info.get("icc_profile")
        try:
            if isinstance(img, JpegImagePlugin.JpegImageFile) and max(width, height) > limits.max_edge:
                img.draft(img.mode, (limits.max_edge, limits.max_edge))  # DCT scaling: 2 to 8 times less work
            img.load()
            img = ImageOps.exif_transpose(img) if img.getexif().get(_ORIENTATION, 1) != 1 else img
            img = _to_srgb(img, icc)
        except DECODE_ERRORS as exc:
            raise Refused(
                "media_invalid", 422, f"The {decoder} image is cut short or corrupt: {exc}"
            ) from None
    img = normalise_mode(img)
    if img.mode == "RGBA" and not transparent(img):
        img = img.convert("RGB")  # transparency in name only
    img = shrink(img, limits.max_edge)
    # Pixels only: no info, no profile, no EXIF. A transformed image is a new one already and
    # only its info dict is the source's; the decoded file itself is copied once.
    clean = img.copy() if isinstance(img, ImageFile.ImageFile) else img
    clean.info = {}
    clean._exif = None  # Pillow's cache of the source's EXIF (getexif), used by some encoders
    fmt = _STORED_AS[decoder]
    return CleanImage(
        data=_encode(clean, fmt),
        format=fmt,
        width=clean.width,
        height=clean.height,
        has_alpha=clean.mode == "RGBA",
        thumbnail=_encode(shrink(clean, THUMBNAIL_EDGE), "webp", quality=80),
    )


def _to_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Pixels in sRGB: converted through the embedded profile, or as Pillow reads them."""
    if not icc:
        return img
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ImageCms.PyCMSError):
        return img  # a broken profile: the pixels as they are, the profile dropped
    mode = "RGBA" if "A" in img.mode or "transparency" in img.info else "RGB"
    if img.mode not in ("RGB", "RGBA", "CMYK", "L", "LA"):
        img = img.convert(mode)
    try:
        converted = ImageCms.profileToProfile(img, profile, _SRGB, outputMode=mode)
    except (OSError, ValueError, ImageCms.PyCMSError):
        return img.convert(mode)
    assert converted is not None  # not in place
    return converted


def _encode(img: Image.Image, fmt: str, quality: int = 92) -> bytes:
    out = io.BytesIO()
    if fmt == "png":
        img.save(out, format="PNG", optimize=False)
    elif fmt == "webp":
        img.save(out, format="WEBP", quality=quality, method=4)
    else:
        img.save(out, format="JPEG", quality=quality, optimize=False)
    return out.getvalue()


def sanitize_audio(source: BinaryIO, demuxer: str, limits: Limits) -> CleanAudio:
    import av  # PyAV: FFmpeg's demuxers and decoders, from its wheel

    if demuxer == "wav":
        _check_riff_size(source)
    try:
        container = av.open(source, mode="r", format=demuxer)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise Refused("media_invalid", 422, f"Not a readable {demuxer} file: {exc}") from None
    with container:
        if not container.streams.audio:
            raise Refused("media_invalid", 422, f"The {demuxer} file holds no audio stream.")
        stream = container.streams.audio[0]
        declared_s = (container.duration or 0) / 1e6 if demuxer != "wav" else 0.0
        # Never above 48 kHz: a header may claim any rate, and samples times rate is the memory.
        rate = min(stream.rate or 48_000, MAX_AUDIO_RATE)
        layout = "mono" if (stream.channels or 1) == 1 else "stereo"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        pcm = bytearray()
        samples = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    pcm += bytes(out.planes[0])[: out.samples * out.layout.nb_channels * 2]
                    samples += out.samples
                if samples > limits.max_audio_s * rate:
                    raise Refused(
                        "input_too_large",
                        413,
                        f"The audio is longer than {limits.max_audio_s:g} s (ATELIER_UPLOAD_MAX_AUDIO_S).",
                    )
        except av.error.FFmpegError as exc:
            raise Refused("media_invalid", 422, f"The {demuxer} audio is corrupt: {exc}") from None
    if samples == 0:
        raise Refused("media_invalid", 422, f"The {demuxer} file has no audio samples.")
    if declared_s and samples / rate < declared_s * 0.98 - 0.1:  # FLAC, Ogg: the header knows
        raise Refused(
            "media_invalid",
            422,
            f"The {demuxer} audio is cut short: {samples / rate:.2f} of {declared_s:.2f} s.",
        )
    channels = 1 if layout == "mono" else 2
    out_file = io.BytesIO()
    with wave.open(out_file, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(bytes(pcm))
    return CleanAudio(
        data=out_file.getvalue(), duration_s=samples / rate, sample_rate=rate, channels=channels
    )


def _check_riff_size(source: BinaryIO) -> None:
    """A WAV file says how long it is in its RIFF header: fewer bytes than that is a cut file."""
    head = source.read(12)
    size = source.seek(0, io.SEEK_END)
    source.seek(0)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise Refused("media_invalid", 422, "Not a readable wav file: no RIFF/WAVE header.")
    riff = int.from_bytes(head[4:8], "little")
    declared = riff + 8
    if riff not in (0, 0xFFFF_FFFF) and declared > size:  # 0 and all ones: a streamed file
        raise Refused("media_invalid", 422, f"The wav file is cut short: {size} of {declared} bytes.")
