"""The offline clip maker: a still becomes an H.264 clip by a slow camera move (Ken Burns).

Deterministic: the same image and parameters give the same bytes (libx264 on one thread, fixed
settings, no timestamps from the clock). Each frame is a window on the image, moved and scaled
with sub-pixel precision (Pillow's resize ``box``), so the motion is smooth.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Literal

import av
from PIL import Image

from atelier_contracts.capabilities import frames_of

MODEL = "offline-camera-1"
Move = Literal["zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "static"]
MOVES: tuple[Move, ...] = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "static")
ZOOM = 1.18
"""How far the camera moves in (zoom) or how much margin a pan travels across."""


def _window(width: int, height: int, aspect: float) -> tuple[float, float]:
    """The largest rectangle of ``aspect`` (w/h) inside the image."""
    return (width, width / aspect) if width / height <= aspect else (height * aspect, height)


def _box(t: float, move: Move, size: tuple[int, int], aspect: float) -> tuple[float, float, float, float]:
    """The window at time ``t`` in [0, 1], eased in and out."""
    t = t * t * (3 - 2 * t)  # smoothstep: the camera starts and stops gently
    width, height = size
    full_w, full_h = _window(width, height, aspect)
    if move == "zoom_in":
        zoom = 1 + (ZOOM - 1) * t
    elif move == "zoom_out":
        zoom = ZOOM - (ZOOM - 1) * t
    elif move == "static":
        zoom = 1.0
    else:
        zoom = ZOOM
    w, h = full_w / zoom, full_h / zoom
    spare_x, spare_y = width - w, height - h
    cx, cy = 0.5, 0.5
    if move == "pan_left":
        cx = 1 - t
    elif move == "pan_right":
        cx = t
    elif move == "pan_up":
        cy = 1 - t
    elif move == "pan_down":
        cy = t
    x0, y0 = spare_x * cx, spare_y * cy
    return (x0, y0, x0 + w, y0 + h)


def render_clip(
    image: bytes,
    duration_s: float = 4.0,
    fps: int = 24,
    width: int = 640,
    height: int = 360,
    move: Move = "zoom_in",
    progress: Callable[[float, str], None] | None = None,
) -> bytes:
    """An MP4 (H.264, yuv420p) of ``round(duration_s * fps)`` frames of ``width`` by ``height``;
    ``progress`` hears the share of frames encoded."""
    if width % 2 or height % 2:
        raise ValueError("width and height must be even (yuv420p)")
    source = Image.open(io.BytesIO(image), formats=["PNG", "JPEG", "WEBP"]).convert("RGB")
    count = frames_of(duration_s, fps)
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast", "threads": "1", "tune": "stillimage"}
        for i in range(count):
            box = _box(i / max(count - 1, 1), move, source.size, width / height)
            still = source.resize((width, height), Image.Resampling.BILINEAR, box=box)
            frame = av.VideoFrame.from_image(still)  # type: ignore[no-untyped-call]
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
            if progress is not None:
                progress((i + 1) / count, "filming the still")
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()
