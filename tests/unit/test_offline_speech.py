"""Offline speech: the built-in voice always, espeak-ng when it is installed."""

from __future__ import annotations

import io
import shutil
import wave
from array import array
from pathlib import Path

import pytest

from atelier_provider_router.adapters.offline.speech import plain_text, synthesize, wav_duration_seconds

STORY = (
    "Once upon a time, in a quiet valley, there lived a curious fox named Pip. Every morning, Pip "
    "wandered outside to say hello to the golden sky. What could be hiding beyond the hills? One day, "
    "Pip found a shimmering key lying in the grass, and the adventure began."
)
HAS_ESPEAK = shutil.which("espeak-ng") is not None


def words(count: int) -> str:
    story = STORY.split()
    return " ".join((story * (count // len(story) + 1))[:count])


def samples(data: bytes) -> array[int]:
    with wave.open(io.BytesIO(data), "rb") as wav:
        return array("h", wav.readframes(wav.getnframes()))


def params(data: bytes) -> tuple[int, int, int, int]:
    """Channels, bytes per sample, sample rate, frames."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()


def test_builtin_voice_writes_16khz_mono_16bit_wav() -> None:
    data, model = synthesize(words(20), engine="builtin")

    assert model == "offline-voice-1"
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    channels, width, rate, frames = params(data)
    assert (channels, width, rate) == (1, 2, 16_000)
    assert frames > 16_000


def test_builtin_voice_sounds_like_syllables_and_pauses() -> None:
    pcm = samples(synthesize(words(30), engine="builtin")[0])
    silent = sum(1 for v in pcm if v == 0) / len(pcm)

    assert max(abs(v) for v in pcm) > 4000  # clearly audible
    assert 0.1 < silent < 0.6  # words separated by gaps, but mostly voiced


def test_builtin_duration_grows_linearly_with_text() -> None:
    short = wav_duration_seconds(synthesize(words(50), engine="builtin")[0])
    long = wav_duration_seconds(synthesize(words(200), engine="builtin")[0])

    assert long > 3 * short
    assert 0.3 <= long / 200 <= 0.45  # about the pace of read-aloud speech


def test_punctuation_adds_pauses() -> None:
    plain = wav_duration_seconds(synthesize("the fox ran home to bed", engine="builtin")[0])
    paused = wav_duration_seconds(synthesize("the fox ran, home. to bed!", engine="builtin")[0])

    assert paused > plain + 0.5


def test_builtin_voice_is_deterministic_per_text_and_seed() -> None:
    text = words(40)

    assert synthesize(text, seed=5, engine="builtin") == synthesize(text, seed=5, engine="builtin")
    assert synthesize(text, seed=5, engine="builtin")[0] != synthesize(text, seed=6, engine="builtin")[0]


def test_markdown_is_read_as_plain_text() -> None:
    assert plain_text("# The Fox\n\nHello *brave* [fox](http://x.example).\n- one") == (
        "The Fox. Hello brave fox. one."
    )


def test_empty_text_gives_a_short_silent_wav() -> None:
    data, model = synthesize("  \n# \n", engine="builtin")

    assert model == "offline-voice-1"
    assert 0 < wav_duration_seconds(data) < 1
    assert set(samples(data)) == {0}


def test_unknown_engine_is_rejected() -> None:
    with pytest.raises(ValueError, match="engine"):
        synthesize("hello", engine="festival")


def test_wav_duration_rejects_non_wav_bytes() -> None:
    with pytest.raises(ValueError, match="WAV"):
        wav_duration_seconds(b"not a wav file at all")


def test_auto_uses_builtin_voice_without_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)

    assert synthesize("hello there", engine="auto")[1] == "offline-voice-1"


def test_espeak_engine_requires_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)

    with pytest.raises(RuntimeError, match="espeak-ng"):
        synthesize("hello there", engine="espeak")


def test_failing_espeak_falls_back_in_auto_and_raises_in_espeak(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "espeak-ng"
    broken.write_text("#!/bin/sh\necho 'no voices' >&2\nexit 3\n")
    broken.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda _name: str(broken))

    assert synthesize("hello there", engine="auto")[1] == "offline-voice-1"
    with pytest.raises(RuntimeError, match="exit code 3"):
        synthesize("hello there", engine="espeak")


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
def test_espeak_engine_speaks_the_text() -> None:
    short, model = synthesize(words(20), engine="espeak")
    long, _ = synthesize(words(80), engine="espeak")

    assert model == "espeak-ng"
    channels, width, _rate, frames = params(short)
    assert (channels, width) == (1, 2)
    assert len(short) == 44 + 2 * frames  # the header's sizes match the audio that follows
    assert wav_duration_seconds(short) > 2
    assert wav_duration_seconds(long) > 3 * wav_duration_seconds(short)


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
def test_auto_prefers_espeak_when_installed() -> None:
    assert synthesize("-v is text here, not an option", engine="auto")[1] == "espeak-ng"
