"""Speech as delivered: one sample rate, mono, one loudness, in the format asked for.

FFmpeg's filters and encoders through PyAV (its wheel carries FFmpeg): ``loudnorm`` (EBU R128,
single pass) brings the integrated loudness to the target with a true-peak ceiling, ``aresample``
and ``aformat`` make it mono 16-bit at the sample rate; the WAV master keeps those samples
exactly, and the delivered file is encoded from them (MP3 with LAME, Opus in Ogg, AAC in MP4).
"""

from __future__ import annotations

import io
import itertools
import wave
from dataclasses import dataclass
from typing import Literal

import av
import av.filter

Format = Literal["mp3", "opus", "aac", "wav"]
FORMATS: dict[str, tuple[str, str, str]] = {
    # format: (encoder, container, content type)
    "mp3": ("libmp3lame", "mp3", "audio/mpeg"),
    "opus": ("libopus", "ogg", "audio/ogg"),
    "aac": ("aac", "mp4", "audio/mp4"),
}
BITRATES = {"mp3": 64_000, "opus": 32_000, "aac": 64_000}
"""Speech, mono: what podcasts ship."""


@dataclass(frozen=True)
class Delivered:
    master: bytes
    """WAV, 16-bit PCM, mono, at ``sample_rate``, at the target loudness."""
    data: bytes
    content_type: str
    sample_rate: int
    duration_s: float


def normalise(source: bytes, sample_rate: int = 24_000, loudness_lufs: float = -16.0) -> bytes:
    """16-bit mono PCM at ``sample_rate`` and ``loudness_lufs`` (integrated, EBU R128)."""
    try:
        container = av.open(io.BytesIO(source), mode="r")
    except av.error.FFmpegError as exc:
        raise ValueError(f"the speech could not be read: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise ValueError("the speech has no audio stream")
        stream = container.streams.audio[0]
        graph = av.filter.Graph()
        chain = [
            graph.add_abuffer(template=stream),
            # Mono first: loudness is measured on what is delivered (a stereo source measures
            # 3 dB louder than its mono downmix).
            graph.add("aformat", "channel_layouts=mono"),
            graph.add("loudnorm", f"I={loudness_lufs}:TP=-1.5:LRA=11"),
            graph.add("aresample", str(sample_rate)),
            graph.add("aformat", f"sample_fmts=s16:channel_layouts=mono:sample_rates={sample_rate}"),
            graph.add("abuffersink"),
        ]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()
        pcm = bytearray()

        def drain() -> None:
            while True:
                try:
                    frame = graph.pull()
                except (av.error.BlockingIOError, av.error.EOFError):
                    return
                assert isinstance(frame, av.AudioFrame)
                pcm.extend(bytes(frame.planes[0])[: frame.samples * 2])

        try:
            for frame in container.decode(stream):
                graph.push(frame)
                drain()
        except av.error.FFmpegError as exc:
            raise ValueError(f"the speech is corrupt: {exc}") from exc
        graph.push(None)
        drain()
    if not pcm:
        raise ValueError("the speech has no samples")
    return bytes(pcm)


def wav(pcm: bytes, sample_rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return out.getvalue()


def encode(pcm: bytes, sample_rate: int, fmt: Format) -> tuple[bytes, str]:
    """The samples in ``fmt`` (``wav``: the master itself); ``(bytes, content type)``."""
    if fmt == "wav":
        return wav(pcm, sample_rate), "audio/wav"
    encoder, container_format, content_type = FORMATS[fmt]
    rate = (
        48_000
        if fmt == "opus" and sample_rate not in (8_000, 12_000, 16_000, 24_000, 48_000)
        else sample_rate
    )
    out = io.BytesIO()
    with av.open(out, mode="w", format=container_format) as container:
        stream = container.add_stream(encoder, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        stream.bit_rate = BITRATES[fmt]
        resampler = av.AudioResampler(format=stream.format, layout="mono", rate=rate)
        step = 1024 * 4
        for start in range(0, len(pcm), step * 2):
            chunk = pcm[start : start + step * 2]
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
            frame.planes[0].update(chunk)
            frame.sample_rate = sample_rate
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    container.mux(packet)
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue(), content_type


def deliver(source: bytes, fmt: Format, sample_rate: int = 24_000, loudness_lufs: float = -16.0) -> Delivered:
    pcm = normalise(source, sample_rate, loudness_lufs)
    data, content_type = encode(pcm, sample_rate, fmt)
    return Delivered(
        master=wav(pcm, sample_rate),
        data=data,
        content_type=content_type,
        sample_rate=sample_rate,
        duration_s=len(pcm) / 2 / sample_rate,
    )
