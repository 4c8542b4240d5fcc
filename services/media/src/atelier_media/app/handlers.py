"""Media work handlers: thumbnails, export variants, speech delivery and the automatic reviewer."""

from __future__ import annotations

import asyncio
from typing import Protocol

from PIL import Image

from atelier_contracts.blobstore import BlobNotFound, BlobStore
from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.presets import PresetRegistry
from atelier_contracts.runtime.workpool import WorkError, WorkHandler, WorkResult
from atelier_contracts.work import WorkItem
from atelier_media.domain import audio, review
from atelier_media.domain.thumbnail import make_thumbnail
from atelier_media.domain.variant import render

MODEL = "pillow-thumbnail-1"
VARIANT_MODEL = "pillow-variant-1"
AUDIO_MODEL = "ffmpeg-loudnorm-1"


class VariantCache(Protocol):
    """Rendered variants by (original blob key, preset digest)."""

    async def get(self, original: str, digest: str) -> BlobRef | None: ...

    async def put(self, original: str, digest: str, ref: BlobRef) -> None: ...


def handlers(
    blobs: BlobStore, presets: PresetRegistry | None = None, variants: VariantCache | None = None
) -> dict[str, WorkHandler]:
    registry = presets or PresetRegistry()

    async def thumbnail(item: WorkItem) -> WorkResult:
        source = next((a for a in item.inputs.values() if a.kind == "image"), None)
        if source is None:
            raise WorkError("input_missing", f"no image input for {item.step}", retryable=False)
        try:
            data = blobs.read_bytes(source.blob.key)
        except BlobNotFound as exc:
            raise WorkError("input_missing", f"blob {source.blob.key} is missing", retryable=True) from exc
        max_side = int(item.params.get("max_side", 256))
        fmt = str(item.params.get("format", "webp"))
        try:
            thumb, content_type = await asyncio.to_thread(make_thumbnail, data, max_side, fmt)
        except ValueError as exc:
            raise WorkError("input_invalid", str(exc), retryable=False) from exc
        ref = blobs.put_bytes(thumb, content_type)
        artifact = Artifact(name="thumbnail", kind="thumbnail", blob=ref, meta={"max_side": max_side})
        return WorkResult(outputs=[artifact], provider="media", model=MODEL)

    async def auto_review(item: WorkItem) -> WorkResult:
        """A review gate's automatic half: checks the files it reviews, answers a verdict."""
        checks = item.params.get("checks", {})
        problems: list[str] = []
        for key, artifact in sorted(item.inputs.items()):
            try:
                content = blobs.read_bytes(artifact.blob.key)
            except BlobNotFound as exc:
                missing = f"blob {artifact.blob.key} is missing"
                raise WorkError("input_missing", missing, retryable=True) from exc
            step = key.split(".", 1)[0]
            if artifact.kind == "image":
                problems += await asyncio.to_thread(review.check_image, step, content, checks)
            elif artifact.kind == "video":
                problems += await asyncio.to_thread(review.check_video, step, content, checks)
            elif artifact.kind == "text" and "min_words" in checks:
                problems += review.check_text(step, content.decode(errors="replace"), checks)
        found = review.verdict(problems)
        answer = {"verdict": "approve" if found.approve else "reject", "feedback": found.feedback}
        return WorkResult(outputs=[], provider="media", model=review.MODEL, data=answer)

    async def variant(item: WorkItem) -> WorkResult:
        """The original in one export preset: rendered once per (original, preset definition)."""
        name = str(item.params.get("preset", ""))
        preset = registry.get(name)
        if preset is None:
            raise WorkError("preset_not_found", f"no export preset {name!r}", retryable=False)
        source = next((a for a in item.inputs.values() if a.kind == "image"), None)
        if source is None:
            raise WorkError("input_missing", f"no image input for {item.step}", retryable=False)
        digest = preset.digest()
        cached = await variants.get(source.blob.key, digest) if variants is not None else None
        if cached is not None and blobs.keep(cached.key):
            ref, meta = cached, {"cached": True}
        else:
            try:
                original = blobs.read_bytes(source.blob.key)
            except BlobNotFound as exc:
                raise WorkError(
                    "input_missing", f"blob {source.blob.key} is missing", retryable=True
                ) from exc
            try:
                made = await asyncio.to_thread(render, original, preset)
            except ValueError as exc:
                raise WorkError("input_invalid", str(exc), retryable=False) from exc
            ref, meta = blobs.put_bytes(made.data, made.content_type), {"cached": False}
            if variants is not None:
                await variants.put(source.blob.key, digest, ref)
        width, height = await asyncio.to_thread(_dimensions, blobs, ref.key)
        artifact = Artifact(
            name=name,
            kind="image",
            blob=ref,
            meta={"preset": name, "width": width, "height": height, "digest": digest, **meta},
        )
        return WorkResult(outputs=[artifact], provider="media", model=VARIANT_MODEL)

    async def audio_deliver(item: WorkItem) -> WorkResult:
        """Speech normalised (rate, mono, loudness): a WAV master and the format asked for."""
        source = next((a for a in item.inputs.values() if a.kind == "audio"), None)
        if source is None:
            raise WorkError("input_missing", f"no audio input for {item.step}", retryable=False)
        try:
            speech = blobs.read_bytes(source.blob.key)
        except BlobNotFound as exc:
            raise WorkError("input_missing", f"blob {source.blob.key} is missing", retryable=True) from exc
        fmt = str(item.params.get("format", "mp3"))
        rate = int(item.params.get("sample_rate", 24_000))
        lufs = float(item.params.get("loudness_lufs", -16.0))
        try:
            made = await asyncio.to_thread(audio.deliver, speech, fmt, rate, lufs)  # type: ignore[arg-type]
        except ValueError as exc:
            raise WorkError("input_invalid", str(exc), retryable=False) from exc
        meta = {"sample_rate": made.sample_rate, "channels": 1, "duration_s": round(made.duration_s, 3)}
        outputs = [  # the file asked for first: a bundle names it after the step
            Artifact(
                name="audio",
                kind="audio",
                blob=blobs.put_bytes(made.data, made.content_type),
                meta={**meta, "format": fmt, "loudness_lufs": lufs},
            ),
            Artifact(name="master", kind="audio", blob=blobs.put_bytes(made.master, "audio/wav"), meta=meta),
        ]
        return WorkResult(outputs=outputs, provider="media", model=AUDIO_MODEL)

    return {
        "image.thumbnail": thumbnail,
        "review.auto": auto_review,
        "image.variant": variant,
        "audio.deliver": audio_deliver,
    }


def _dimensions(blobs: BlobStore, key: str) -> tuple[int, int]:
    with blobs.open(key) as f, Image.open(f) as img:
        return img.size
