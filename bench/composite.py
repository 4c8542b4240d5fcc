"""Compositing: seconds of encoding per minute of video, for six clips with speech and subtitles.

python -m bench.composite  # or: make bench. BENCH_COMPOSITE_S (default 60) the video's length,
                           # BENCH_COMPOSITE_SIZE (default 640x360)

Six shots of equal length, each a clip from the offline camera and a spoken line; the composite
is encoded (H.264, AAC, a subtitle cue per shot), and again with the lines burned in.
"""

from __future__ import annotations

import io
import math
import os
import platform
import struct
import tempfile
import time
import wave
from pathlib import Path

from PIL import Image

from atelier_export.domain.composite import Shot, render
from atelier_provider_router.adapters.offline.video import render_clip

SECONDS = float(os.environ.get("BENCH_COMPOSITE_S", "60"))
WIDTH, HEIGHT = (int(v) for v in os.environ.get("BENCH_COMPOSITE_SIZE", "640x360").split("x"))


def speech(seconds: float, rate: int = 24000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(struct.pack("<h", int(6000 * math.sin(i / 9))) for i in range(int(seconds * rate)))
        )
    return out.getvalue()


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    each = SECONDS / 6
    with tempfile.TemporaryDirectory(prefix="atelier-bench-composite-") as tmp:
        folder = Path(tmp)
        shots = []
        started = time.perf_counter()
        for i in range(6):
            still = io.BytesIO()
            Image.linear_gradient("L").resize((1280, 960)).convert("RGB").rotate(i * 30).save(still, "PNG")
            clip, voice = folder / f"clip{i}.mp4", folder / f"voice{i}.wav"
            clip.write_bytes(render_clip(still.getvalue(), each, 24, WIDTH, HEIGHT, "zoom_in"))
            voice.write_bytes(speech(each * 0.8))
            shots.append(Shot(clip=clip, duration_s=each, audio=voice, text=f"Line {i + 1}"))
        clips_s = time.perf_counter() - started
        print(f"6 clips of {each:.0f} s at {WIDTH}x{HEIGHT} from the offline camera: {clips_s:.1f} s")
        for burn in (False, True):
            started = time.perf_counter()
            made = render(shots, folder / "episode.mp4", width=WIDTH, height=HEIGHT, burn_subtitles=burn)
            took = time.perf_counter() - started
            per_minute = took / (made.duration_s / 60)
            what = "lines burned in" if burn else "soft subtitles"
            print(
                f"composite, {what}: {made.duration_s:.1f} s of video in {took:.1f} s: "
                f"{per_minute:.1f} s per minute of video ({made.duration_s / took:.1f}x real time)"
            )


if __name__ == "__main__":
    main()
