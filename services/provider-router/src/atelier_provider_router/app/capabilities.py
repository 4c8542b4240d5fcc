"""Work handlers per capability: read inputs from blobs, call a provider, store outputs as blobs."""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
from PIL import Image, ImageOps

from atelier_contracts.audio import AudioCacheEntry, cache_key
from atelier_contracts.blobstore import BlobNotFound, BlobStore, BlobStoreUnavailable
from atelier_contracts.capabilities import StudioParams
from atelier_contracts.common import Artifact, BlobRef, Usage
from atelier_contracts.faults import FaultInjection
from atelier_contracts.kinds.base import PlanInvalid
from atelier_contracts.kinds.episode import parse_shots
from atelier_contracts.kinds.studio import LOGO_STEP, ORIGINAL_STEP
from atelier_contracts.runtime.workpool import WorkError, WorkHandler, WorkResult
from atelier_contracts.sessions import SessionContext
from atelier_contracts.studio import Recipe, context_of
from atelier_contracts.studio_catalog import StudioCatalog, Templates, fill_template
from atelier_contracts.work import WorkItem
from atelier_provider_router import studio_image
from atelier_provider_router.adapters.openai_compat import STUDIO_CAPABILITIES
from atelier_provider_router.app.ports import (
    ImageEditRequest,
    ImageRequest,
    MediaResult,
    SpeechRequest,
    TextRequest,
    VideoRequest,
)
from atelier_provider_router.app.router import Routed, Router


def param(item: WorkItem, name: str, default: Any = None) -> Any:
    """A parameter the step's kind bound for it. Work dispatched before steps had their own
    parameters carried the whole job input instead: looked at second, while such work drains."""
    if name in item.params:
        return item.params[name]
    return item.params.get("input", {}).get(name, default)


def _prompt(item: WorkItem, blobs: BlobStore | None = None) -> tuple[str, str, int]:
    """The step's prompt; a step given none (a story's cover) is drawn from the text it needs."""
    title = str(item.params.get("title", ""))
    prompt = str(param(item, "prompt", "") or "").strip()
    if not prompt and blobs is not None and item.inputs:
        prompt = _from_text(_input_text(blobs, item), title)
    if not prompt:
        raise WorkError("prompt_invalid", "the step has no prompt", retryable=False)
    feedback = str(param(item, "feedback", "") or "").strip()
    if feedback:  # a reviewer sent the step back: what to do differently this time
        prompt = f"{prompt} ({feedback})"
    return prompt, title, int(param(item, "seed", 0))


_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def list_items(text: str, count: int) -> list[str]:
    """Up to ``count`` items of a list a model wrote: its lines without bullets or numbers, or,
    from a model that wrote prose instead, its sentences. Fewer than asked is a shorter list."""
    lines = [_MARKER.sub("", line).strip(" #*_") for line in text.splitlines()]
    items = [line for line in lines if line]
    if len(items) < count:
        items = [s.strip() for s in _SENTENCE.split(" ".join(items)) if s.strip()]
    return items[:count]


def _from_text(text: str, title: str, words: int = 60) -> str:
    """An illustration prompt from a text: its title and its opening (Markdown marks dropped)."""
    plain = " ".join(w.strip("#*_>`") for w in text.split())
    opening = " ".join(plain.split()[:words])
    return f"{title}: {opening}" if title else opening


async def simulate_faults(item: WorkItem, faults: FaultInjection) -> None:
    """Offline fault injection, so retries, timeouts and failover can be watched without an outage;
    only where the deployment allows it (``atelier_contracts.faults``).

    ``input.simulate.fail = {step: n}`` fails the step's first n attempts (retryable, or final
    with ``"final": true``); ``input.simulate.slow = {step: n}`` makes the first n attempts answer
    only after ``slow_s`` seconds (default 5, at most the deployment's ``max_delay_s``), past a
    short step deadline.
    """
    simulate = param(item, "simulate") or {}
    if not simulate or not faults.enabled:
        return
    if item.attempt <= int((simulate.get("slow") or {}).get(item.step, 0)):
        await asyncio.sleep(min(float(simulate.get("slow_s", 5)), faults.max_delay_s))
    if item.attempt <= int((simulate.get("fail") or {}).get(item.step, 0)):
        final = bool(simulate.get("final", False))
        code = "prompt_invalid" if final else "provider_error"
        raise WorkError(code, f"simulated failure of attempt {item.attempt}", retryable=not final)


def _read_input(blobs: BlobStore, item: WorkItem, step: str, required: bool = True) -> bytes | None:
    """The bytes of the file the step ``step`` gave this one (an upload, a candidate)."""
    found = next((a for key, a in item.inputs.items() if key.startswith(f"{step}.")), None)
    if found is None:
        if required:
            raise WorkError("input_missing", f"no {step} input for {item.step}", retryable=False)
        return None
    try:
        return blobs.read_bytes(found.blob.key)
    except BlobNotFound as exc:
        raise WorkError("input_missing", f"blob {found.blob.key} is missing", retryable=True) from exc


def studio_prompt(templates: Templates, recipe: Recipe, said: str) -> str:
    """What a remote model is asked: the operation's template with the recipe filled in."""
    return fill_template(getattr(templates, recipe.operation), recipe, said)


def _input_text(blobs: BlobStore, item: WorkItem, kind: str = "text") -> str:
    if param(item, "text"):  # the step's own line (an episode's shot), whatever it needs
        return str(param(item, "text"))
    own = param(item, "prompt")
    if not item.inputs and own:
        return str(own)  # a task speaks its own text
    for artifact in item.inputs.values():
        if artifact.kind == kind:
            try:
                return blobs.read_bytes(artifact.blob.key).decode()
            except BlobNotFound as exc:
                raise WorkError(
                    "input_missing", f"blob {artifact.blob.key} is missing", retryable=True
                ) from exc
    raise WorkError("input_missing", f"no {kind} input for {item.step}", retryable=False)


SPEECH_CHARS_PER_S = 10.0
"""A slow narrator's pace: the worst case of audio seconds billed for a text."""


def text_worst_case(request: TextRequest) -> dict[str, float]:
    """Input tokens: one per three UTF-8 bytes (≈ one per CJK character, above English's one per
    four characters); output tokens: the request's cap."""
    size = len((request.system + request.title + request.prompt).encode())
    return {"input_tokens": math.ceil(size / 3) + 16, "output_tokens": float(request.max_tokens)}


def image_worst_case(size: int) -> dict[str, float]:
    return {"images": 1.0, "megapixels": size * size / 1e6}


def speech_worst_case(request: SpeechRequest) -> dict[str, float]:
    chars = float(len(request.text))
    return {"characters": chars, "audio_seconds": chars / SPEECH_CHARS_PER_S}


STORE_PATIENCE_S = 30.0
"""How long a provider's output is held while the blob store refuses it, before the attempt
fails: a short outage costs no second call."""


async def _store(
    blobs: BlobStore, routed: Routed[Any], data: bytes, content_type: str, before: Routed[Any] | None = None
) -> BlobRef:
    """The provider's output in the blob store, tried again (0.5 s, doubling, to 4 s) while the
    store refuses, for ``STORE_PATIENCE_S``. Past that the attempt fails as
    ``storage_unavailable`` with the calls just made (and ``before``'s), so their usage and cost
    are recorded all the same."""
    deadline = asyncio.get_running_loop().time() + STORE_PATIENCE_S
    wait = 0.5
    while True:
        try:
            return blobs.put_bytes(data, content_type)
        except BlobStoreUnavailable as exc:
            if asyncio.get_running_loop().time() + wait > deadline:
                calls = [*(before.attempts if before else []), *routed.attempts]
                alerts = [*(before.alerts if before else []), *routed.alerts]
                raise WorkError(
                    "storage_unavailable", str(exc), retryable=True, attempts=calls, alerts=alerts
                ) from exc
        await asyncio.sleep(wait)
        wait = min(wait * 2, 4.0)


def _cache_entry(
    tenant: str,
    text: str,
    voice: str,
    provider: str,
    model: str,
    blob: BlobRef,
    now: datetime,
    repaired: AudioCacheEntry | None,
) -> AudioCacheEntry:
    key = cache_key(tenant, text, voice, provider, model)
    if repaired is not None and repaired.key == key:
        return msgspec.structs.replace(repaired, blob=blob, repairs=repaired.repairs + 1, updated_at=now)
    return AudioCacheEntry(
        key=key,
        tenant=tenant,
        voice=voice,
        provider=provider,
        model=model,
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
        text_preview=text[:80],
        blob=blob,
        created_at=now,
        updated_at=now,
    )


def _done(routed: Routed[Any], artifact: Artifact) -> WorkResult:
    return WorkResult(
        outputs=[artifact],
        provider=routed.route.provider,
        model=routed.result.model or routed.route.model,
        usage=routed.usage,
        attempts=routed.attempts,
        fallbacks=routed.fallbacks,
        alerts=routed.alerts,
    )


class AudioCache(Protocol):
    """Speech already made (``atelier_contracts.audio``)."""

    async def get(self, key: str) -> AudioCacheEntry | None: ...

    async def put(self, entry: AudioCacheEntry) -> None: ...

    async def served(self, key: str, now: datetime) -> None: ...


def handlers(
    router: Router,
    blobs: BlobStore,
    faults: FaultInjection | None = None,
    audio_cache: AudioCache | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    catalog: StudioCatalog | None = None,
) -> dict[str, WorkHandler]:
    """The provider router's work handlers: each routes its call over the capability's providers.
    ``faults``: whether jobs may inject failures and delays (default: as the environment says);
    ``audio_cache``: where speech already made is found instead of calling a provider again."""
    faults = FaultInjection.from_env() if faults is None else faults
    catalog = StudioCatalog.from_env() if catalog is None else catalog

    async def text_generate(item: WorkItem) -> WorkResult:
        await simulate_faults(item, faults)
        prompt, title, seed = _prompt(item)
        count = int(param(item, "count", 0)) if param(item, "format") == "list" else 0
        request = TextRequest(prompt=prompt, title=title, seed=seed)
        if param(item, "format") == "shots":
            return await shot_list(item, prompt, title, seed)
        if count:
            request = TextRequest(
                prompt=f"List {count} distinct ideas, one per line, about: {prompt}",
                title=title,
                seed=seed,
                system="You answer with a plain list: one item per line, no numbers, nothing else.",
                max_tokens=min(60 * count, 16000),
                items=count,
            )
        routed = await router.call(
            "text.generate", item, lambda p, o: p.generate_text(request, o), text_worst_case(request)
        )
        text = routed.result.text
        if count:  # a list the job plans from (``WorkSucceeded.data``), and the list as a file
            items = list_items(text, count)
            ref = await _store(blobs, routed, "\n".join(items).encode(), "text/markdown")
            artifact = Artifact(name="list", kind="text", blob=ref, meta={"items": len(items)})
            return replace(_done(routed, artifact), data={"items": items})
        ref = await _store(blobs, routed, text.encode(), "text/markdown")
        return _done(routed, Artifact(name="story", kind="text", blob=ref, meta={"words": len(text.split())}))

    async def shot_list(item: WorkItem, script: str, title: str, seed: int) -> WorkResult:
        """A script as structured shots (``kinds.episode.ShotList``): the job plans from them
        (``data``), and they are a file of the job. An answer that is no shot list fails the
        attempt (another attempt or provider may do better), saying what was wrong."""
        request = TextRequest(
            prompt=script,
            title=title,
            seed=seed,
            system="You are a storyboard artist. You answer with JSON only.",
            max_tokens=4000,
            shots=True,
        )
        routed = await router.call(
            "text.generate", item, lambda p, o: p.generate_text(request, o), text_worst_case(request)
        )
        try:
            shots = parse_shots(routed.result.text)
        except PlanInvalid as exc:
            raise WorkError(
                "shots_invalid", str(exc), retryable=True, attempts=routed.attempts, alerts=routed.alerts
            ) from None
        listed = msgspec.to_builtins(shots)
        body = msgspec.json.encode({"shots": listed})
        ref = await _store(blobs, routed, body, "application/json")
        artifact = Artifact(name="shots", kind="text", blob=ref, meta={"shots": len(shots)})
        return replace(_done(routed, artifact), data={"shots": listed})

    async def image_generate(item: WorkItem) -> WorkResult:
        await simulate_faults(item, faults)
        prompt, title, seed = _prompt(item, blobs)
        size, look = int(item.params.get("size", 1024)), str(item.params.get("look", "plain"))
        request = ImageRequest(prompt=prompt, title=title, seed=seed, size=size, look=look)
        routed = await router.call(
            "image.generate", item, lambda p, o: p.generate_image(request, o), image_worst_case(request.size)
        )
        ref = await _store(blobs, routed, routed.result.data, routed.result.content_type)
        return _done(routed, Artifact(name="image", kind="image", blob=ref, meta=dict(routed.result.meta)))

    async def tts(item: WorkItem) -> WorkResult:
        await simulate_faults(item, faults)
        text = _input_text(blobs, item)  # Markdown: the provider decides how to speak it
        seed = int(param(item, "seed", 0))
        voice = str(param(item, "voice", "default") or "default")
        request = SpeechRequest(text=text, seed=seed, voice=voice)
        spoken_as = voice if seed == 0 else f"{voice}#{seed}"  # the built-in voice differs by seed
        repairing: AudioCacheEntry | None = None
        if audio_cache is not None:
            for route in router.order("tts", item.params.get("sticky_provider")):
                key = cache_key(item.tenant, text, spoken_as, route.provider, route.model)
                entry = await audio_cache.get(key)
                if entry is None:
                    continue
                if blobs.keep(entry.blob.key):
                    await audio_cache.served(key, clock())
                    artifact = Artifact(name="audio", kind="audio", blob=entry.blob, meta={"cached": True})
                    return WorkResult(outputs=[artifact], provider=route.provider, model=route.model)
                repairing = entry  # its blob was released: made again below, the entry kept
                break
        routed = await router.call(
            "tts", item, lambda p, o: p.synthesize_speech(request, o), speech_worst_case(request)
        )
        ref = await _store(blobs, routed, routed.result.data, routed.result.content_type)
        if audio_cache is not None:  # keyed by the route's model, as the lookup above is
            route = routed.route
            made = _cache_entry(
                item.tenant, text, spoken_as, route.provider, route.model, ref, clock(), repairing
            )
            await audio_cache.put(made)
        meta = {**routed.result.meta, "cached": False}
        return _done(routed, Artifact(name="audio", kind="audio", blob=ref, meta=meta))

    def video_request(item: WorkItem, still: bytes, prompt: str) -> VideoRequest:
        return VideoRequest(
            image=still,
            prompt=prompt,
            duration_s=float(param(item, "duration_s", 4.0)),
            fps=int(param(item, "fps", 24)),
            width=int(param(item, "width", 640)),
            height=int(param(item, "height", 360)),
            move=str(param(item, "move", "zoom_in")),
            seed=int(param(item, "seed", 0)),
        )

    async def film(item: WorkItem, request: VideoRequest) -> Routed[MediaResult]:
        return await router.call(
            "video.from_image",
            item,
            lambda p, o: p.image_to_video(request, o),
            {"video_seconds": request.duration_s},
        )

    async def video_from_image(item: WorkItem) -> WorkResult:
        """A still (the image the step needs) becomes a clip."""
        await simulate_faults(item, faults)
        still = next((a for a in item.inputs.values() if a.kind == "image"), None)
        if still is None:
            raise WorkError("input_missing", f"no image input for {item.step}", retryable=False)
        try:
            image_bytes = blobs.read_bytes(still.blob.key)
        except BlobNotFound as exc:
            raise WorkError("input_missing", f"blob {still.blob.key} is missing", retryable=True) from exc
        routed = await film(item, video_request(item, image_bytes, str(param(item, "prompt", "") or "")))
        ref = await _store(blobs, routed, routed.result.data, routed.result.content_type)
        return _done(routed, Artifact(name="clip", kind="video", blob=ref, meta=dict(routed.result.meta)))

    async def video_from_text(item: WorkItem) -> WorkResult:
        """An image is made from the prompt, then a clip from it: both are the step's files."""
        await simulate_faults(item, faults)
        prompt, title, seed = _prompt(item, blobs)
        width, height = int(param(item, "width", 640)), int(param(item, "height", 360))
        size = next((s for s in (512, 1024) if s >= max(width, height)), 1024)
        picture = ImageRequest(prompt=prompt, title=title, seed=seed, size=size)
        drawn = await router.call(
            "image.generate", item, lambda p, o: p.generate_image(picture, o), image_worst_case(size)
        )
        still = await _store(blobs, drawn, drawn.result.data, drawn.result.content_type)
        try:
            filmed = await film(item, video_request(item, drawn.result.data, prompt))
        except WorkError as exc:  # the image's call is recorded with the clip's failure
            raise WorkError(
                exc.code,
                exc.message,
                retryable=exc.retryable,
                attempts=[*drawn.attempts, *exc.attempts],
                retry_after_s=exc.retry_after_s,
                alerts=[*drawn.alerts, *exc.alerts],
            ) from exc
        clip = await _store(blobs, filmed, filmed.result.data, filmed.result.content_type, before=drawn)
        done = _done(filmed, Artifact(name="clip", kind="video", blob=clip, meta=dict(filmed.result.meta)))
        image = Artifact(name="image", kind="image", blob=still, meta=dict(drawn.result.meta))
        return replace(
            done,
            outputs=[done.outputs[0], image],
            usage=_sum_usage(drawn.usage, filmed.usage),
            attempts=[*drawn.attempts, *filmed.attempts],
            fallbacks=[*drawn.fallbacks, *filmed.fallbacks],
            alerts=[*drawn.alerts, *filmed.alerts],
        )

    async def studio(item: WorkItem) -> WorkResult:
        """A studio candidate: the original cut out (here: a remote model gets it as the mask),
        edited by the capability's providers, the logo placed at its anchor (here, for every
        provider, so it sits on the same pixel each round), encoded, and for a platform its
        rules measured on the file."""
        await simulate_faults(item, faults)
        params = msgspec.convert(item.params, StudioParams)
        recipe = params.recipe
        original = _read_input(blobs, item, ORIGINAL_STEP)
        assert original is not None  # required
        logo = _read_input(blobs, item, LOGO_STEP, required=False)
        prompt = studio_prompt(catalog.current().templates, recipe, params.prompt)

        def cut_out() -> tuple[Image.Image, bytes]:
            photo = studio_image.open_rgb(original)
            return photo, studio_image.mask_png(studio_image.segment(photo))

        try:
            photo, mask = await asyncio.to_thread(cut_out)
        except (OSError, ValueError) as exc:
            raise WorkError(
                "image_unreadable", f"the photo could not be read: {exc}", retryable=False
            ) from exc
        canvas = studio_image.canvas_of(photo.size, recipe)
        request = ImageEditRequest(image=original, prompt=prompt, mask=mask, size=1024, recipe=recipe)
        routed = await router.call(
            item.capability, item, lambda p, o: p.edit_image(request, o), image_worst_case(max(canvas))
        )

        def finish() -> tuple[bytes, list[dict[str, Any]]]:
            made = studio_image.open_rgb(routed.result.data)
            if made.size != canvas:  # a remote model answers in its own sizes
                made = ImageOps.fit(made, canvas, Image.Resampling.LANCZOS)
            if recipe.logo is not None and logo is not None:
                made = studio_image.place_logo(made, studio_image.open_rgba(logo), recipe.logo)
            data = studio_image.encode(made, recipe.format)
            checks = studio_image.check_platform(data, params.platform) if params.platform else []
            return data, checks

        data, checks = await asyncio.to_thread(finish)
        ref = await _store(blobs, routed, data, f"image/{recipe.format}")
        session = params.session.context if params.session is not None else SessionContext()
        meta: dict[str, Any] = {
            "width": canvas[0],
            "height": canvas[1],
            "recipe": msgspec.to_builtins(recipe),
            "context": msgspec.to_builtins(context_of(recipe, session)),
        }
        if params.platform is not None:
            meta |= {
                "platform": params.platform_name,
                "checks": checks,
                "passed": all(c["ok"] for c in checks),
            }
        return _done(routed, Artifact(name="image", kind="image", blob=ref, meta=meta))

    return {
        **dict.fromkeys(STUDIO_CAPABILITIES, studio),
        "text.generate": text_generate,
        "image.generate": image_generate,
        "tts": tts,
        "video.from_image": video_from_image,
        "video.from_text": video_from_text,
    }


def _sum_usage(a: Usage, b: Usage) -> Usage:
    units = dict(a.units)
    for name, value in b.units.items():
        units[name] = units.get(name, 0.0) + value
    return Usage(units=units, cost_usd=a.cost_usd + b.cost_usd)
