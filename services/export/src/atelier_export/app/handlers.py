"""Export work handlers: the job's ZIP bundle with a manifest, and composites of shots."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from atelier_contracts.blobstore import Blobs, BlobStore, extension_for
from atelier_contracts.capabilities import CompositeParams
from atelier_contracts.common import Artifact, BlobRef
from atelier_contracts.runtime.progress import report_progress
from atelier_contracts.runtime.workpool import WorkError, WorkHandler, WorkResult
from atelier_contracts.work import WorkItem
from atelier_export.domain.bundle import BundleEntry, write_bundle
from atelier_export.domain.composite import Shot, render, srt

MODEL = "zip-bundle-1"
COMPOSITE_MODEL = "ffmpeg-composite-1"


def manifest_for(item: WorkItem, files: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema": "atelier.bundle/1",
        "job_id": item.job_id,
        "kind": item.params.get("kind"),
        "title": item.params.get("title"),
        # What was asked for, as the kind handed it to this step (older work: the job input).
        "input": item.params.get("request", item.params.get("input", {})),
        "files": files,
    }


def handlers(blobs: Blobs) -> dict[str, WorkHandler]:
    async def bundle(item: WorkItem) -> WorkResult:
        entries: list[BundleEntry] = []
        files: list[dict[str, Any]] = []
        named: set[str] = set()
        for key in sorted(item.inputs, key=lambda k: _input_order(item, k)):
            artifact = item.inputs[key]
            step = key.split(".", 1)[0]
            path = blobs.path_of(artifact.blob.key)
            if not path.exists():
                raise WorkError("input_missing", f"blob for {key} is missing", retryable=True)
            # A step's first file is named after the step; its others after themselves too.
            first = step not in named
            named.add(step)
            base = step if first else f"{step}-{artifact.name}"
            arcname = f"{base}{extension_for(artifact.blob.content_type)}"
            entries.append(BundleEntry(arcname=arcname, source=path, content_type=artifact.blob.content_type))
            files.append(
                {
                    "path": arcname,
                    "step": step,
                    "kind": artifact.kind,
                    "content_type": artifact.blob.content_type,
                    "size": artifact.blob.size,
                    "sha256": artifact.blob.key,
                }
            )
        ref = await asyncio.to_thread(_build, blobs, entries, manifest_for(item, files))
        artifact = Artifact(name="bundle", kind="bundle", blob=ref, meta={"files": len(entries) + 1})
        return WorkResult(outputs=[artifact], provider="export", model=MODEL)

    async def composite(item: WorkItem) -> WorkResult:
        """A timeline of shots (each a clip, its speech and a line) into one MP4."""
        try:
            timeline = msgspec.convert(item.params, CompositeParams)
        except msgspec.ValidationError as exc:
            raise WorkError("input_invalid", f"the timeline is not one: {exc}", retryable=False) from exc

        def file_of(step: str | None, kind: str) -> Path | None:
            if step is None:
                return None
            found = next(
                (a for k, a in item.inputs.items() if k.split(".", 1)[0] == step and a.kind == kind), None
            )
            if found is None:
                raise WorkError("input_missing", f"no {kind} from step {step!r}", retryable=False)
            path = blobs.path_of(found.blob.key)
            if not path.exists():
                raise WorkError("input_missing", f"the {kind} of step {step!r} is missing", retryable=True)
            return path

        shots = []
        for shot in timeline.shots:
            clip = file_of(shot.clip, "video")
            assert clip is not None
            shots.append(
                Shot(
                    clip=clip, duration_s=shot.duration_s, audio=file_of(shot.audio, "audio"), text=shot.text
                )
            )
        outputs = await asyncio.to_thread(_composite, blobs, shots, timeline)
        return WorkResult(outputs=outputs, provider="export", model=COMPOSITE_MODEL)

    return {"bundle.zip": bundle, "video.composite": composite}


def _composite(blobs: BlobStore, shots: list[Shot], timeline: CompositeParams) -> list[Artifact]:
    """The episode, its poster frame and (when a shot speaks) its subtitles as a SubRip file."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "composite.mp4"
        made = render(
            shots,
            out,
            fps=timeline.fps,
            width=timeline.width,
            height=timeline.height,
            burn_subtitles=timeline.burn_subtitles,
            progress=report_progress,
        )
        ref = blobs.put_file(out, "video/mp4")
    meta = {
        "frames": made.frames,
        "fps": made.fps,
        "duration_s": made.duration_s,
        "width": made.width,
        "height": made.height,
        "cues": [dataclasses.asdict(cue) for cue in made.cues],
        "burned": timeline.burn_subtitles,
    }
    outputs = [Artifact(name="episode", kind="video", blob=ref, meta=meta)]
    poster = blobs.put_bytes(made.poster, "image/jpeg")
    outputs.append(Artifact(name="poster", kind="image", blob=poster, meta={"frame": made.poster_frame}))
    if made.cues:
        subtitles = blobs.put_bytes(srt(made.cues).encode(), "application/x-subrip")
        outputs.append(
            Artifact(name="subtitles", kind="subtitles", blob=subtitles, meta={"cues": len(made.cues)})
        )
    return outputs


def _input_order(item: WorkItem, key: str) -> tuple[str, int]:
    """By step, and within a step in the order it made its files (``WorkItem.inputs`` keeps it)."""
    return key.split(".", 1)[0], list(item.inputs).index(key)


def _build(blobs: BlobStore, entries: list[BundleEntry], manifest: dict[str, Any]) -> BlobRef:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bundle.zip"
        with out.open("wb") as f:
            write_bundle(f, entries, manifest)
        return blobs.put_file(out, "application/zip")
