"""Speech for a story: espeak-ng when installed, else a small built-in speech-like synthesiser.

The built-in voice is not intelligible speech; it gives each word a few voiced syllables with a
vowel colour, a pitch contour that falls through each sentence and rises for questions, and pauses
at word gaps and punctuation, so a listener hears the rhythm of the text and its length is right.
Syllable sounds are drawn from a small cache keyed by vowel, pitch and length: a long story reuses
a few hundred blocks instead of computing millions of samples.
"""

from __future__ import annotations

import functools
import io
import math
import random
import re
import shutil
import struct
import subprocess
import sys
import wave
from array import array

MODEL = "offline-voice-1"
ESPEAK_MODEL = "espeak-ng"
RATE = 16_000
ENGINES = ("auto", "builtin", "espeak")

_TABLE_SIZE = 1024  # a power of two, so a phase index wraps with a bit mask
_FORMANTS = {"a": (800, 1200), "e": (500, 1900), "i": (300, 2300), "o": (500, 900), "u": (350, 800)}
_PAUSES = {",": 0.2, ";": 0.28, ":": 0.28, ".": 0.4, "!": 0.4, "?": 0.4}
_TOKEN = re.compile(r"[A-Za-z0-9']+|[.,;:!?]")
_SYLLABLE = re.compile(r"([^aeiouy]*)([aeiouy]+)")


def synthesize(text: str, seed: int = 0, engine: str = "auto") -> tuple[bytes, str]:
    """Speak ``text`` (Markdown is read as plain text) and return ``(wav_bytes, model_name)``.

    ``engine``: ``"auto"`` uses espeak-ng when it is on PATH and falls back to the built-in voice if it
    is missing or fails; ``"builtin"`` always uses the built-in voice; ``"espeak"`` requires espeak-ng.
    The built-in voice gives identical bytes for the same text and seed; espeak-ng ignores ``seed``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    spoken = plain_text(text)
    espeak = shutil.which("espeak-ng")
    if engine == "espeak" and espeak is None:
        raise RuntimeError("engine 'espeak' needs espeak-ng on PATH (apt-get install espeak-ng)")
    if engine != "builtin" and espeak is not None and spoken:
        try:
            return _espeak(espeak, spoken), ESPEAK_MODEL
        except RuntimeError:
            if engine == "espeak":
                raise
    return _builtin(spoken, seed), MODEL


def wav_duration_seconds(data: bytes) -> float:
    """The playing time of a WAV file's bytes; ``ValueError`` if they are not a readable WAV."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"not a readable WAV file: {exc}") from exc


def plain_text(text: str) -> str:
    """Markdown to speakable text; a line without final punctuation (a heading) ends a sentence."""
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", raw)  # keep a link's words, drop its address
        line = re.sub(r"[#>*_`~|]+", " ", line)
        line = " ".join(line.split()).lstrip("-+ ")
        if line:
            lines.append(line if line[-1] in ".!?:;," else line + ".")
    return " ".join(lines)


def _espeak(executable: str, text: str) -> bytes:
    # Text goes on stdin, so a story starting with "-" cannot be read as an option, and audio comes
    # back on stdout, so nothing touches the disk.
    cmd = [executable, "-b", "1", "-v", "en-us", "-s", "160", "--stdout", "--stdin"]
    try:
        done = subprocess.run(
            cmd, input=text.encode(), capture_output=True, timeout=30 + len(text) / 200, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"espeak-ng did not finish: {exc}") from exc
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"espeak-ng failed with exit code {done.returncode}: {err}")
    return _fix_sizes(done.stdout)


def _fix_sizes(data: bytes) -> bytes:
    """Write the real RIFF and data sizes: on a pipe espeak-ng cannot seek back, so it leaves
    placeholders that would make readers expect ~2 GB of audio."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not write a WAV stream")
    out = bytearray(data)
    pos = 12
    while pos + 8 <= len(out):
        chunk, size = bytes(out[pos : pos + 4]), struct.unpack_from("<I", out, pos + 4)[0]
        if chunk == b"data":
            struct.pack_into("<I", out, pos + 4, len(out) - pos - 8)
            struct.pack_into("<I", out, 4, len(out) - 8)
            return bytes(out)
        pos += 8 + size + (size & 1)
    raise RuntimeError("espeak-ng wrote a WAV stream without audio data")


def _builtin(text: str, seed: int) -> bytes:
    voice = _Voice(seed)
    samples = array("h")
    for sentence in re.findall(r"[^.!?]+[.!?]*", text):
        voice.speak_sentence(sentence, samples)
    if not samples:
        samples.extend(voice.silence(0.25))
    if sys.byteorder == "big":  # WAV is little-endian
        samples.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


class _Voice:
    """One speaker: a base pitch from the seed, and caches of the sound blocks it has made."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.base_hz = rng.uniform(150.0, 210.0)
        self.rng = rng
        self.noise = [rng.uniform(-1.0, 1.0) for _ in range(RATE // 10)]
        self.tables: dict[tuple[str, int], list[float]] = {}
        self.blocks: dict[tuple[str, int, str, float], array[int]] = {}
        self.onsets: dict[str, array[int]] = {}

    def speak_sentence(self, sentence: str, out: array[int]) -> None:
        tokens = _TOKEN.findall(sentence.lower())
        words = [t for t in tokens if t not in _PAUSES]
        question = sentence.rstrip().endswith("?")
        spoken = 0
        for token in tokens:
            if token in _PAUSES:
                out.extend(self.silence(_PAUSES[token]))
                continue
            spoken += 1
            # Declination: pitch drifts down through the sentence, as it does in read speech.
            level = 6 - round(4 * spoken / max(1, len(words))) + self.rng.choice((-1, 0, 0, 1))
            self.speak_word(token, level, final=spoken == len(words), question=question, out=out)
            out.extend(self.silence(0.06))

    def speak_word(self, word: str, level: int, final: bool, question: bool, out: array[int]) -> None:
        syllables = _SYLLABLE.findall(word)[:4] or [(word, "a" if word[0].isdigit() else "e")]
        for i, (onset, vowel) in enumerate(syllables):
            last = final and i == len(syllables) - 1
            contour = (
                ("rise" if question else "fall") if last else self.rng.choice(("flat", "flat", "up", "down"))
            )
            seconds = 0.25 if last else (0.18 if i == 0 else 0.12)  # stress the first syllable
            kind = _onset_kind(onset)
            if kind:
                out.extend(self.onset(kind))
            out.extend(self.block(_vowel_class(vowel), max(0, min(8, level + (i == 0))), contour, seconds))

    def silence(self, seconds: float) -> array[int]:
        return array("h", bytes(2 * int(seconds * RATE)))

    def onset(self, kind: str) -> array[int]:
        if kind not in self.onsets:
            n = int((0.05 if kind == "fric" else 0.02) * RATE)
            gain = 2500 if kind == "fric" else 4000
            burst = [int(gain * self.noise[i] * math.sin(math.pi * i / n)) for i in range(n)]
            lead = [0] * (int(0.012 * RATE) if kind == "plos" else 0)  # the closure before a stop
            self.onsets[kind] = array("h", lead + burst)
        return self.onsets[kind]

    def block(self, vowel: str, level: int, contour: str, seconds: float) -> array[int]:
        key = (vowel, level, contour, seconds)
        if key not in self.blocks:
            self.blocks[key] = self._render(vowel, level, contour, seconds)
        return self.blocks[key]

    def _render(self, vowel: str, level: int, contour: str, seconds: float) -> array[int]:
        hz = self.base_hz * 2 ** (1.5 * (level - 4) / 12)  # 1.5 semitones per level
        start, end = {
            "flat": (1.0, 0.98),
            "up": (0.96, 1.06),
            "down": (1.04, 0.94),
            "rise": (0.98, 1.3),
            "fall": (1.06, 0.78),
        }[contour]
        n = int(seconds * RATE)
        table = self.table(vowel, level, hz)
        # Phase of a linear glide from start*hz to end*hz, in table steps: a*i + b*i*i.
        a = start * hz * _TABLE_SIZE / RATE
        b = (end - start) * hz * _TABLE_SIZE / (2 * n * RATE)
        mask = _TABLE_SIZE - 1
        env = _envelope(n)
        return array("h", [int(table[int(a * i + b * i * i) & mask] * env[i]) for i in range(n)])

    def table(self, vowel: str, level: int, hz: float) -> list[float]:
        """One pitch period whose harmonics are shaped by the vowel's two formants."""
        key = (vowel, level)
        if key not in self.tables:
            f1, f2 = _FORMANTS[vowel]
            harmonics = [(h, _formant_gain(h * hz, f1, f2) / h**0.5) for h in range(1, int(4000 / hz) + 1)]
            step = math.tau / _TABLE_SIZE
            wave_ = [sum(g * math.sin(h * step * i) for h, g in harmonics) for i in range(_TABLE_SIZE)]
            peak = max(abs(v) for v in wave_) or 1.0
            self.tables[key] = [9000 * v / peak for v in wave_]
        return self.tables[key]


def _formant_gain(freq: float, f1: float, f2: float) -> float:
    return 1 / (1 + ((freq - f1) / 120) ** 2) + 0.6 / (1 + ((freq - f2) / 180) ** 2) + 0.05


@functools.lru_cache(maxsize=16)
def _envelope(n: int) -> tuple[float, ...]:
    attack, release = max(1, n // 8), max(1, n // 4)
    return tuple(
        min(1.0, i / attack) * min(1.0, (n - i) / release) ** 1.5 * (0.85 + 0.15 * math.cos(math.pi * i / n))
        for i in range(n)
    )


def _vowel_class(letters: str) -> str:
    first = letters[0]
    return "i" if first == "y" else first


def _onset_kind(consonants: str) -> str:
    if not consonants:
        return ""
    head = consonants[-1]
    if head in "sfhzcxj" or consonants.endswith(("sh", "th", "ch")):
        return "fric"
    return "plos" if head in "ptkbdgq" else ""
