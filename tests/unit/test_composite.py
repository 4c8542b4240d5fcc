"""Composites: shots into one MP4, its length the sum of the shots to the frame, sound in sync,
one subtitle cue per line (or the lines burned in)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from atelier_export.domain.composite import Shot, frames_of, render
from atelier_provider_router.adapters.offline.video import render_clip
from tests.hostile_uploads import wav


def clip(tmp: Path, name: str, seconds: float, colour: tuple[int, int, int]) -> Path:
    still = io.BytesIO()
    Image.new("RGB", (800, 600), colour).save(still, "PNG")
    path = tmp / f"{name}.mp4"
    path.write_bytes(render_clip(still.getvalue(), seconds, 24, 320, 180, "static"))
    return path


def voice(tmp: Path, name: str, seconds: float) -> Path:
    path = tmp / f"{name}.wav"
    path.write_bytes(wav(seconds))
    return path


def read(
    path: Path,
) -> tuple[dict[str, str], int, float, float, list[tuple[float, float, str]], list[Image.Image]]:
    with av.open(str(path)) as container:
        codecs = {s.type: s.codec_context.name for s in container.streams}
        video, audio = container.streams.video[0], container.streams.audio[0]
        video_s = float(video.duration * video.time_base)
        audio_s = float(audio.duration * audio.time_base)
        cues = []
        if container.streams.subtitles:
            for packet in container.demux(container.streams.subtitles[0]):
                if packet.size > 2 and packet.pts is not None:
                    start = float(packet.pts * packet.time_base)
                    cues.append(
                        (start, start + float(packet.duration * packet.time_base), bytes(packet)[2:].decode())
                    )
        container.seek(0)
        frames = [f.to_image() for f in container.decode(video=0)]
    return codecs, len(frames), video_s, audio_s, cues, frames


def test_six_shots_last_their_sum_to_the_frame_with_sound_and_cues(tmp_path: Path) -> None:
    durations = [2.0, 2.3, 1.7, 3.0, 2.55, 1.0]
    shots = [
        Shot(
            clip=clip(tmp_path, f"c{i}", 2.0, (40 * i, 90, 200 - 30 * i)),  # shorter, longer, equal
            duration_s=d,
            audio=voice(tmp_path, f"v{i}", 1.0 + i * 0.6),  # shorter and longer than its shot
            text=f"Line {i + 1}",
        )
        for i, d in enumerate(durations)
    ]
    out = tmp_path / "episode.mp4"
    made = render(shots, out, fps=24, width=320, height=180)
    expected = sum(frames_of(d, 24) for d in durations)
    assert made.frames == expected
    codecs, frames, video_s, audio_s, cues, _ = read(out)
    assert codecs == {"video": "h264", "audio": "aac", "subtitle": "mov_text"}
    assert frames == expected
    assert video_s == pytest.approx(expected / 24, abs=1e-9), "to the frame"
    assert audio_s == pytest.approx(expected / 24, abs=0.03), "the sound lasts as long (within an AAC frame)"
    starts = [sum(frames_of(d, 24) for d in durations[:i]) / 24 for i in range(6)]
    assert [c[2] for c in cues] == [f"Line {i}" for i in range(1, 7)]
    assert [c[0] for c in cues] == pytest.approx(starts, abs=0.002)
    assert [c[1] - c[0] for c in cues] == pytest.approx([frames_of(d, 24) / 24 for d in durations], abs=0.002)


def test_a_shot_longer_than_its_clip_holds_the_last_frame(tmp_path: Path) -> None:
    out = tmp_path / "held.mp4"
    render(
        [Shot(clip=clip(tmp_path, "short", 0.5, (200, 30, 30)), duration_s=2.0)], out, width=320, height=180
    )
    _, frames, video_s, audio_s, cues, pictures = read(out)
    assert (frames, video_s) == (48, 2.0)
    assert audio_s == pytest.approx(2.0, abs=0.03), "silence where there is no speech"
    assert cues == []
    red, _, _ = pictures[-1].getpixel((160, 90))  # type: ignore[misc]
    assert red > 150


def test_burned_subtitles_are_drawn_and_no_track_is_added(tmp_path: Path) -> None:
    shot = clip(tmp_path, "c", 1.0, (30, 30, 30))
    soft, burned = tmp_path / "soft.mp4", tmp_path / "burned.mp4"
    render([Shot(clip=shot, duration_s=1.0, text="HELLO")], soft, width=320, height=180)
    render(
        [Shot(clip=shot, duration_s=1.0, text="HELLO")], burned, width=320, height=180, burn_subtitles=True
    )
    *_, soft_cues, soft_frames = read(soft)
    *_, burned_cues, burned_frames = read(burned)
    assert [c[2] for c in soft_cues] == ["HELLO"]
    assert burned_cues == []
    lower = (0, 120, 320, 180)
    diff = ImageChops.difference(soft_frames[10].crop(lower), burned_frames[10].crop(lower))
    assert ImageStat.Stat(diff.convert("L")).extrema[0][1] > 100, "the line is drawn where subtitles go"


def test_progress_is_heard_frame_by_frame_with_the_shot_encoding(tmp_path: Path) -> None:
    heard: list[tuple[float, str]] = []
    shots = [Shot(clip=clip(tmp_path, f"c{i}", 0.5, (90, 90, 90)), duration_s=1.0) for i in range(3)]
    render(shots, tmp_path / "p.mp4", width=320, height=180, progress=lambda f, m: heard.append((f, m)))
    total = 3 * 24  # a frame each, the held frames of the short clips too
    assert [f for f, _ in heard] == pytest.approx([n / total for n in range(1, total + 1)])
    assert heard[0][1] == "shot 1 of 3"
    assert heard[-1][1] == "shot 3 of 3"


def test_a_frame_rate_that_splits_no_samples_evenly_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="whole samples"):
        render([Shot(clip=clip(tmp_path, "c", 1.0, (0, 0, 0)), duration_s=1.0)], tmp_path / "x.mp4", fps=23)
