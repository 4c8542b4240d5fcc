"""The built-in offline provider: real files, made locally and deterministically from the prompt."""

from __future__ import annotations

import asyncio
import functools

from atelier_contracts.capabilities import frames_of
from atelier_contracts.common import Usage
from atelier_contracts.runtime.progress import report_progress
from atelier_provider_router import studio_image
from atelier_provider_router.adapters.offline import image, speech, text, video
from atelier_provider_router.app.ports import (
    Adapter,
    CallOptions,
    ErrorClass,
    ImageEditRequest,
    ImageRequest,
    MediaResult,
    ProviderError,
    SpeechRequest,
    TextRequest,
    TextResult,
    VideoRequest,
)

INLINE_TEXT_CHARS = 20_000
"""Past this many characters of prompt (times the items of a list), the text is written in a
thread: about 2 ms of writing."""


class OfflineProvider:
    name = "offline"
    capabilities = frozenset(
        {"text.generate", "image.generate", "tts", "video.from_image", "image.optimize", "image.bg_replace"}
        | {"image.refine", "image.platform"}
    )

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        if request.shots:
            write = functools.partial(text.write_shots, request.prompt, request.seed)
        elif request.items:
            write = functools.partial(text.write_list, request.prompt, request.seed, request.items)
        else:
            write = functools.partial(text.write_story, request.prompt, request.title, request.seed)
        # Short text on the loop, not in a thread like the media below: it takes 0.25 to 2 ms to
        # write, and a hop to a thread and back cost ~0.1 ms of CPU and 0.7 to 0.9 ms of waiting
        # for the thread to be scheduled, per step (docs/benchmarks.md). A long prompt written
        # many times over (a list of hundreds of items) is a thread's work again.
        if len(request.prompt) * max(1, request.items) <= INLINE_TEXT_CHARS:
            story = write()
        else:
            story = await asyncio.to_thread(write)
        words = len(story.split())
        return TextResult(text=story, model=text.MODEL, usage=Usage(units={"output_words": words}))

    async def generate_image(self, request: ImageRequest, options: CallOptions) -> MediaResult:
        data = await asyncio.to_thread(
            image.render_illustration, request.prompt, request.title, request.seed, request.size, request.look
        )
        return MediaResult(
            data=data,
            content_type="image/png",
            model=image.MODEL,
            meta={"width": request.size, "height": request.size},
            usage=Usage(units={"images": 1}),
        )

    async def edit_image(self, request: ImageEditRequest, options: CallOptions) -> MediaResult:
        """A studio edit, for real: the product cut out, cleaned up, relit and put on its new
        background as the recipe says (``studio_image``); other edits it does not do."""
        if request.recipe is None:
            raise ProviderError(ErrorClass.INVALID_REQUEST, "the offline provider edits studio recipes only")
        recipe = request.recipe

        def edit() -> tuple[bytes, tuple[int, int]]:
            original = studio_image.open_rgb(request.image)
            made, _ = studio_image.render(original, studio_image.segment(original), recipe)
            return studio_image.encode(made, "png"), made.size

        try:
            data, (width, height) = await asyncio.to_thread(edit)
        except (OSError, ValueError) as exc:
            raise ProviderError(ErrorClass.INVALID_REQUEST, f"the photo could not be edited: {exc}") from exc
        return MediaResult(
            data=data,
            content_type="image/png",
            model=studio_image.MODEL,
            meta={"width": width, "height": height},
            usage=Usage(units={"images": 1}),
        )

    async def synthesize_speech(self, request: SpeechRequest, options: CallOptions) -> MediaResult:
        data, model = await asyncio.to_thread(speech.synthesize, request.text, request.seed)
        seconds = speech.wav_duration_seconds(data)
        return MediaResult(
            data=data,
            content_type="audio/wav",
            model=model,
            meta={"duration_s": round(seconds, 3)},
            usage=Usage(units={"audio_seconds": round(seconds, 3), "characters": len(request.text)}),
        )

    async def image_to_video(self, request: VideoRequest, options: CallOptions) -> MediaResult:
        if request.move not in video.MOVES:
            raise ProviderError(ErrorClass.INVALID_REQUEST, f"no camera move {request.move!r}")
        try:
            clip = await asyncio.to_thread(
                video.render_clip,
                request.image,
                request.duration_s,
                request.fps,
                request.width,
                request.height,
                request.move,
                report_progress,
            )
        except (OSError, ValueError) as exc:
            raise ProviderError(ErrorClass.INVALID_REQUEST, f"the still could not be filmed: {exc}") from exc
        frames = frames_of(request.duration_s, request.fps)
        meta: dict[str, object] = {
            "width": request.width,
            "height": request.height,
            "fps": request.fps,
            "frames": frames,
            "duration_s": frames / request.fps,
            "move": request.move,
        }
        return MediaResult(
            data=clip,
            content_type="video/mp4",
            model=video.MODEL,
            meta=meta,
            usage=Usage(units={"video_seconds": frames / request.fps}),
        )


ADAPTER = Adapter(capabilities=OfflineProvider.capabilities, build=lambda name, config: OfflineProvider())
