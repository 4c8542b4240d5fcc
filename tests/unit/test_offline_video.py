"""The offline camera: real H.264 clips from a still, exact in frames, the same bytes every time."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.common import Artifact
from atelier_contracts.faults import FaultInjection
from atelier_contracts.work import WorkItem
from atelier_provider_router.adapters.offline.video import render_clip
from atelier_provider_router.adapters.registry import build_providers
from atelier_provider_router.app.capabilities import handlers
from atelier_provider_router.app.matrix import load
from atelier_provider_router.app.router import Router


def still(size: tuple[int, int] = (1200, 800)) -> bytes:
    img = Image.new("RGB", size, (30, 40, 90))
    draw = ImageDraw.Draw(img)
    for x in range(0, size[0], 100):  # stripes, so a move changes what each frame shows
        draw.rectangle((x, 0, x + 40, size[1]), fill=(240, 200, 60))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def probe(clip: bytes) -> tuple[str, int, int, int, float, list[Image.Image]]:
    with av.open(io.BytesIO(clip)) as container:
        [stream] = container.streams.video
        frames = [f.to_image() for f in container.decode(stream)]
        duration = float(container.duration or 0) / 1e6
        return stream.codec_context.name, stream.width, stream.height, len(frames), duration, frames


@pytest.mark.parametrize(("duration_s", "fps", "frames"), [(4.0, 24, 96), (2.5, 30, 75), (1.0, 12, 12)])
def test_a_clip_has_exactly_its_frames(duration_s: float, fps: int, frames: int) -> None:
    codec, width, height, count, duration, _ = probe(render_clip(still(), duration_s, fps, 320, 180))
    assert (codec, width, height, count) == ("h264", 320, 180, frames)
    assert duration == pytest.approx(duration_s, abs=1e-6)


def test_the_same_still_and_settings_make_the_same_bytes() -> None:
    assert render_clip(still(), 1.0, 24, 320, 180, "pan_right") == render_clip(
        still(), 1.0, 24, 320, 180, "pan_right"
    )


def test_the_camera_moves_and_each_move_differs() -> None:
    *_, panned = probe(render_clip(still(), 1.0, 12, 320, 180, "pan_right"))
    *_, zoomed = probe(render_clip(still(), 1.0, 12, 320, 180, "zoom_in"))
    *_, static = probe(render_clip(still(), 1.0, 12, 320, 180, "static"))

    def change(a: Image.Image, b: Image.Image) -> float:
        """Mean absolute difference of two frames, 0..255."""
        return float(ImageStat.Stat(ImageChops.difference(a.convert("L"), b.convert("L"))).mean[0])

    assert change(panned[0], panned[-1]) > 20, "a pan shows another part of the still at its end"
    assert change(zoomed[0], zoomed[-1]) > 20
    assert change(panned[-1], zoomed[-1]) > 20
    assert change(static[0], static[-1]) < 2, "a static shot stays put (encoder noise aside)"


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        render_clip(still(), 1.0, 24, 321, 180)


async def test_video_from_text_makes_an_image_then_a_clip(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    matrix = load(None)
    video_from_text = handlers(Router(matrix, build_providers(matrix)), blobs, FaultInjection())[
        "video.from_text"
    ]
    params = {"prompt": "a lighthouse at dusk", "duration_s": 2.0, "move": "pan_left"}
    item = WorkItem(
        work_id="job_1.shot.1", job_id="job_1", tenant="t1", step="shot", attempt=1,
        capability="video.from_text", params=params,
    )  # fmt: skip
    result = await video_from_text(item)
    clip, picture = result.outputs
    assert (clip.kind, clip.blob.content_type, picture.kind) == ("video", "video/mp4", "image")
    assert clip.meta["frames"] == 48
    codec, width, height, count, _, _ = probe(blobs.read_bytes(clip.blob.key))
    assert (codec, width, height, count) == ("h264", 640, 360, 48)
    assert [a.outcome for a in result.attempts] == ["succeeded", "succeeded"], "both calls recorded"
    assert result.usage.units["video_seconds"] == 2.0
    assert result.usage.units["images"] == 1


async def test_video_from_image_films_the_still_it_needs(tmp_path: Path) -> None:
    blobs = FileBlobStore(tmp_path / "blobs")
    matrix = load(None)
    video_from_image = handlers(Router(matrix, build_providers(matrix)), blobs, FaultInjection())[
        "video.from_image"
    ]
    source = Artifact(name="original", kind="image", blob=blobs.put_bytes(still(), "image/png"))
    params = {"duration_s": 1.5, "fps": 24, "width": 480, "height": 270}
    item = WorkItem(
        work_id="job_1.clip.1", job_id="job_1", tenant="t1", step="clip", attempt=1,
        capability="video.from_image", params=params, inputs={"source.original": source},
    )  # fmt: skip
    [clip] = (await video_from_image(item)).outputs
    codec, width, height, count, duration, _ = probe(blobs.read_bytes(clip.blob.key))
    assert (codec, width, height, count, duration) == ("h264", 480, 270, 36, 1.5)
