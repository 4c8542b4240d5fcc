"""Speech delivery: one sample rate, mono, one loudness, in the format asked for, a WAV master."""

from __future__ import annotations

import array
import io
import math
import struct
import wave

import av
import pytest

from atelier_media.domain.audio import deliver


def tone(amplitude: float, rate: int = 22050, seconds: float = 2.0, channels: int = 2) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = (
            struct.pack("<h", int(amplitude * 32767 * math.sin(2 * math.pi * 440 * i / rate))) * channels
            for i in range(int(rate * seconds))
        )
        w.writeframes(b"".join(frames))
    return out.getvalue()


def rms_dbfs(wav_bytes: bytes) -> float:
    with wave.open(io.BytesIO(wav_bytes)) as w:
        samples = array.array("h", w.readframes(w.getnframes()))
    mean = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(mean / 32768**2)


def test_quiet_and_loud_speech_come_out_equally_loud_mono_at_one_rate() -> None:
    quiet, loud = deliver(tone(0.02), "wav"), deliver(tone(0.9, rate=44100, channels=1), "wav")
    for made in (quiet, loud):
        with wave.open(io.BytesIO(made.master)) as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 24000, 2)
        assert made.duration_s == pytest.approx(2.0, abs=0.05)
    assert abs(rms_dbfs(quiet.master) - rms_dbfs(loud.master)) < 1.0
    assert rms_dbfs(tone(0.02)) < -35, "the quiet one started 30 dB down"


def test_a_louder_target_is_louder() -> None:
    soft, strong = deliver(tone(0.3), "wav", loudness_lufs=-24), deliver(tone(0.3), "wav", loudness_lufs=-14)
    assert rms_dbfs(strong.master) - rms_dbfs(soft.master) == pytest.approx(10, abs=1.5)


@pytest.mark.parametrize(
    ("fmt", "content_type", "codec", "container"),
    [
        ("mp3", "audio/mpeg", "mp3float", "mp3"),  # FFmpeg's MP3 decoder
        ("opus", "audio/ogg", "opus", "ogg"),
        ("aac", "audio/mp4", "aac", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("wav", "audio/wav", "pcm_s16le", "wav"),
    ],
)
def test_each_format_is_what_it_says(fmt: str, content_type: str, codec: str, container: str) -> None:
    made = deliver(tone(0.3), fmt)  # type: ignore[arg-type]
    assert made.content_type == content_type
    with av.open(io.BytesIO(made.data)) as probe:
        assert probe.format.name == container
        [stream] = probe.streams.audio
        assert stream.codec_context.name == codec
        assert stream.channels == 1
        assert float(probe.duration or 0) / 1e6 == pytest.approx(2.0, abs=0.1)
    assert made.master.startswith(b"RIFF"), "the WAV master beside it"


def test_what_is_not_audio_is_refused() -> None:
    with pytest.raises(ValueError, match="could not be read"):
        deliver(b"not audio at all", "mp3")
