"""A composite: shots (clips with their speech and a line of text) into one MP4, frame-exact.

Each shot lasts ``round(duration_s * fps)`` frames: its clip is cut there, or its last frame
held; its speech is cut or padded with silence to exactly those frames' samples (48 kHz, so a
frame is a whole number of samples at 12, 15, 24, 25 and 30 fps). So picture and sound stay in
sync shot by shot, and the whole lasts the sum of the shots to the frame. Video is H.264
(yuv420p), sound AAC, and each shot's text a cue of a soft subtitle track (``mov_text``) — or,
with ``burn_subtitles``, drawn on the frames.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import ImageDraw, ImageFont

from atelier_contracts.capabilities import frames_of

AUDIO_RATE = 48_000
AAC_FRAME = 1024
_ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, \
Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, \
MarginL, MarginR, MarginV, Encoding
Style: Default,Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""
"""What FFmpeg's ``mov_text`` encoder needs to open (it takes its cues as ASS)."""


@dataclass(frozen=True)
class Shot:
    clip: Path
    duration_s: float
    audio: Path | None = None
    text: str = ""


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class Composite:
    frames: int
    fps: int
    width: int
    height: int
    cues: list[Cue]
    poster: bytes
    """A JPEG of the first shot's middle frame, as encoded (subtitles burned in, if they are)."""
    poster_frame: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def srt(cues: list[Cue]) -> str:
    """The cues as a SubRip file (what players and marketplaces take beside an MP4)."""

    def stamp(s: float) -> str:
        ms = round(s * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "".join(
        f"{n}\n{stamp(c.start_s)} --> {stamp(c.end_s)}\n{c.text}\n\n" for n, c in enumerate(cues, 1)
    )


def _clip_frames(path: Path, width: int, height: int) -> Iterator[av.VideoFrame]:
    with av.open(str(path), mode="r") as container:
        if not container.streams.video:
            raise ValueError(f"{path.name} holds no video")
        for frame in container.decode(video=0):
            yield frame.reformat(width=width, height=height, format="yuv420p")


def _speech(path: Path | None, samples: int) -> bytes:
    """The shot's speech as 16-bit mono PCM at 48 kHz, exactly ``samples`` long."""
    pcm = bytearray()
    if path is not None:
        with av.open(str(path), mode="r") as container:
            if container.streams.audio:
                resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE)
                for frame in container.decode(audio=0):
                    for out in resampler.resample(frame):
                        pcm += bytes(out.planes[0])[: out.samples * 2]
                    if len(pcm) >= samples * 2:
                        break
                for out in resampler.resample(None):
                    pcm += bytes(out.planes[0])[: out.samples * 2]
    return bytes(pcm[: samples * 2]).ljust(samples * 2, b"\0")


def _burn(
    frame: av.VideoFrame, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont
) -> av.VideoFrame:
    picture = frame.to_image()  # type: ignore[no-untyped-call]
    draw = ImageDraw.Draw(picture)
    box = draw.textbbox((0, 0), text, font=font)
    x = (picture.width - (box[2] - box[0])) // 2
    y = picture.height - (box[3] - box[1]) - picture.height // 12
    draw.text((x, y), text, font=font, fill="white", stroke_width=2, stroke_fill="black")
    burnt: av.VideoFrame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
    return burnt.reformat(format="yuv420p")


def render(
    shots: list[Shot],
    out: Path,
    *,
    fps: int = 24,
    width: int = 640,
    height: int = 360,
    burn_subtitles: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> Composite:
    """Write the composite of ``shots`` to ``out``; ``progress`` hears the share of frames done
    and the shot being encoded, after every frame."""
    if not shots:
        raise ValueError("a composite needs at least one shot")
    if AUDIO_RATE % fps:
        raise ValueError(f"{fps} fps does not divide {AUDIO_RATE} Hz into whole samples per frame")
    font = ImageFont.load_default(size=max(12, height // 18))
    total = sum(frames_of(s.duration_s, fps) for s in shots)
    cues: list[Cue] = []
    poster_at, poster = frames_of(shots[0].duration_s, fps) // 2, b""
    with av.open(str(out), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        assert isinstance(video, av.VideoStream)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "23", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        assert isinstance(audio, av.AudioStream)
        audio.bit_rate = 96_000
        subtitles = container.add_stream("mov_text")
        subtitles.codec_context.subtitle_header = _ASS_HEADER
        subtitles.codec_context.time_base = Fraction(1, 1000)
        to_aac = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE, frame_size=AAC_FRAME)
        frame_no = sample_no = 0
        for number, shot in enumerate(shots, 1):
            count = frames_of(shot.duration_s, fps)
            doing = f"shot {number} of {len(shots)}"
            start_s = frame_no / fps
            last: av.VideoFrame | None = None
            made = 0
            for frame in _clip_frames(shot.clip, width, height):
                if made == count:
                    break
                last = frame
                made += 1
                if frame_no == poster_at:
                    poster = _jpeg(frame, shot.text if burn_subtitles else "", font)
                frame_no = _put_video(
                    container, video, frame, frame_no, shot.text if burn_subtitles else "", font
                )
                if progress is not None:
                    progress(frame_no / total, doing)
            if last is None:
                raise ValueError(f"{shot.clip.name} has no frames")
            for _ in range(count - made):  # a clip shorter than its shot: its last frame held
                if frame_no == poster_at:
                    poster = _jpeg(last, shot.text if burn_subtitles else "", font)
                frame_no = _put_video(
                    container, video, last, frame_no, shot.text if burn_subtitles else "", font
                )
                if progress is not None:
                    progress(frame_no / total, doing)
            sample_no = _put_audio(
                container, audio, to_aac, _speech(shot.audio, count * AUDIO_RATE // fps), sample_no
            )
            if shot.text:
                cues.append(Cue(start_s=start_s, end_s=frame_no / fps, text=shot.text))
        for packet in video.encode(None):
            container.mux(packet)
        for rest in to_aac.resample(None):
            for packet in audio.encode(rest):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
        if not burn_subtitles:
            for cue in cues:
                data = cue.text.encode()
                packet = av.Packet(struct.pack(">H", len(data)) + data)
                packet.stream = subtitles
                packet.pts = packet.dts = round(cue.start_s * 1000)
                packet.duration = round((cue.end_s - cue.start_s) * 1000)
                container.mux(packet)
    return Composite(
        frames=total, fps=fps, width=width, height=height, cues=cues, poster=poster, poster_frame=poster_at
    )


def _jpeg(frame: av.VideoFrame, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> bytes:
    picture = (_burn(frame, text, font) if text else frame).to_image()  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def _put_video(
    container: av.container.OutputContainer,
    stream: av.VideoStream,
    frame: av.VideoFrame,
    index: int,
    text: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> int:
    out = _burn(frame, text, font) if text else frame
    out.pts = index
    out.time_base = Fraction(1, int(stream.average_rate or 24))
    for packet in stream.encode(out):
        container.mux(packet)
    return index + 1


def _put_audio(
    container: av.container.OutputContainer,
    stream: av.AudioStream,
    to_aac: av.AudioResampler,
    pcm: bytes,
    first: int,
) -> int:
    """A shot's samples, in AAC's frames of 1024 (the rest waits for the next shot's)."""
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = AUDIO_RATE
    frame.pts = first
    frame.time_base = Fraction(1, AUDIO_RATE)
    for chunk in to_aac.resample(frame):
        for packet in stream.encode(chunk):
            container.mux(packet)
    return first + len(pcm) // 2


def probe(data: bytes) -> dict[str, object]:
    """What a composite holds, read back (for the step's meta and tests)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        return {
            "duration_s": float(container.duration or 0) / 1e6,
            "streams": [s.codec_context.name for s in container.streams],
        }
