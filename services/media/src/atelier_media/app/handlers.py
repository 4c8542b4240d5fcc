"""Media work handlers: thumbnails and the automatic reviewer; variants, audio and video join here."""

from __future__ import annotations

import asyncio

from atelier_contracts.blobstore import BlobNotFound, BlobStore
from atelier_contracts.common import Artifact
from atelier_contracts.runtime.workpool import WorkError, WorkHandler, WorkResult
from atelier_contracts.work import WorkItem
from atelier_media.domain import review
from atelier_media.domain.thumbnail import make_thumbnail

MODEL = "pillow-thumbnail-1"


def handlers(blobs: BlobStore) -> dict[str, WorkHandler]:
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
            elif artifact.kind == "text" and "min_words" in checks:
                problems += review.check_text(step, content.decode(errors="replace"), checks)
        found = review.verdict(problems)
        answer = {"verdict": "approve" if found.approve else "reject", "feedback": found.feedback}
        return WorkResult(outputs=[], provider="media", model=review.MODEL, data=answer)

    return {"image.thumbnail": thumbnail, "review.auto": auto_review}
