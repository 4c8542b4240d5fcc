"""An adapter for any server speaking OpenAI's HTTP API (OpenAI itself, vLLM, Ollama, LocalAI, ...).

Every failure leaves as a :class:`ProviderError`: statuses are classified by
:mod:`.openai_errors`, transport exceptions are mapped there too, and a 2xx that is not the shape
we asked for becomes ``SERVER_ERROR`` "malformed answer", so the router can fail over.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import io
import json as jsonlib
import os
import wave
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from atelier_contracts.common import Usage
from atelier_contracts.runtime.progress import report_progress
from atelier_provider_router.adapters.openai_errors import classify, from_exception, malformed
from atelier_provider_router.app.matrix import ProviderConfig
from atelier_provider_router.app.ports import (
    SHOTS_ASK,
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

KEEPALIVE_EXPIRY_S = 2.0
"""Idle connections are dropped sooner than servers drop them (uvicorn and Node: 5 s), so a
request never goes out on a connection the server is closing: it would fail unseen by the
provider and count against it."""
STUDIO_CAPABILITIES = frozenset({"image.optimize", "image.bg_replace", "image.refine", "image.platform"})
"""Image edits with a mask: the studio's operations (``docs/studio.md``)."""
DEFAULT_CAPABILITIES = frozenset(
    {"text.generate", "image.generate", "image.edit", "tts", "video.from_image", *STUDIO_CAPABILITIES}
)
"""What an OpenAI-compatible endpoint can do (``video.from_image``: OpenAI's video jobs API)."""
VIDEO_POLL_S = 0.5
VIDEO_POLL_MAX_S = 10.0
"""A video job is polled after 0.5 s, then less often, every 10 s at most."""
# Our port speaks of a "default" voice; OpenAI has no such name.
_VOICES = {"default": "alloy"}
_Files = dict[str, tuple[str, bytes, str]]


class OpenAICompatibleProvider:
    """One OpenAI-compatible endpoint; ``api_key`` may be empty for local servers that need none.

    Pass ``client`` to share one connection pool between providers; it is then not closed by
    :meth:`aclose`. Each call's timeout is ``options.timeout_s`` for the whole exchange.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str = "",
        capabilities: frozenset[str] = DEFAULT_CAPABILITIES,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not base_url:
            raise ValueError(f"provider {name!r}: base_url is required")
        if api_key and not (api_key.isascii() and api_key.isprintable()):
            # Caught here, at start-up, rather than as an encoding error inside every call.
            raise ValueError(f"provider {name!r}: the API key has characters a header cannot carry")
        self.name = name
        self.capabilities = capabilities
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        story = f'Write a story titled "{request.title}" about: {request.prompt}'
        user = SHOTS_ASK + request.prompt if request.shots else story
        payload = {
            "model": options.model,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": user}],
            "max_tokens": request.max_tokens,
            "seed": request.seed,
        }
        response = await self._post("/chat/completions", options, json=payload)
        return parse_chat_answer(response.content, options.model)

    async def generate_image(self, request: ImageRequest, options: CallOptions) -> MediaResult:
        payload = {
            "model": options.model,
            "prompt": f"{request.title}: {request.prompt}" if request.title else request.prompt,
            "size": f"{request.size}x{request.size}",
            "n": 1,
            "response_format": "b64_json",
        }
        response = await self._post("/images/generations", options, json=payload)
        return parse_image_answer(response.content, options.model)

    async def edit_image(self, request: ImageEditRequest, options: CallOptions) -> MediaResult:
        files: _Files = {"image": _upload("image", request.image)}
        if request.mask is not None:
            files["mask"] = _upload("mask", request.mask)
        form = {
            "model": options.model,
            "prompt": request.prompt,
            "size": f"{request.size}x{request.size}",
            "n": "1",
            "response_format": "b64_json",
        }
        response = await self._post("/images/edits", options, data=form, files=files)
        return parse_image_answer(response.content, options.model)

    async def synthesize_speech(self, request: SpeechRequest, options: CallOptions) -> MediaResult:
        payload = {
            "model": options.model,
            "input": request.text,
            "voice": _VOICES.get(request.voice, request.voice),
            "response_format": "wav",
        }
        response = await self._post("/audio/speech", options, json=payload)
        result = parse_speech_answer(
            response.content, response.headers.get("content-type", ""), options.model
        )
        return dataclasses.replace(result, usage=Usage(units={"characters": len(request.text)}))

    async def image_to_video(self, request: VideoRequest, options: CallOptions) -> MediaResult:
        """OpenAI's video jobs, which run for minutes: submit (the still as ``input_reference``),
        poll until completed or failed, fetch the MP4. A call given up on (the job cancelled, the
        route's timeout) deletes the remote job, so it stops costing."""
        form = {
            "model": options.model,
            "prompt": request.prompt or "The camera moves slowly over the still.",
            "seconds": f"{request.duration_s:g}",
            "size": f"{request.width}x{request.height}",
        }
        files: _Files = {"input_reference": _upload("input_reference", request.image)}
        # The router bounds the whole call (the route's timeout_s) and cancels it past that.
        created = _json((await self._request("POST", "/videos", options, data=form, files=files)).content)
        video_id = created.get("id")
        if not isinstance(video_id, str) or not video_id:
            raise malformed("no video id")
        finished = False
        try:
            wait = VIDEO_POLL_S
            while True:
                job = _json((await self._request("GET", f"/videos/{video_id}", options)).content)
                status = job.get("status")
                done = job.get("progress")
                if isinstance(done, int | float) and not isinstance(done, bool):
                    report_progress(done / 100, f"remote video {status}")
                if status == "completed":
                    break
                if status in ("failed", "cancelled", "expired"):
                    finished = True
                    reason = _object(job.get("error") or {}, "error")
                    message = str(reason.get("message") or f"the video job {status}")
                    policy = "moderation" in str(reason.get("code", ""))
                    raise ProviderError(
                        ErrorClass.CONTENT_POLICY if policy else ErrorClass.SERVER_ERROR, message
                    )
                await asyncio.sleep(wait)
                wait = min(wait * 1.5, VIDEO_POLL_MAX_S)
            clip = (await self._request("GET", f"/videos/{video_id}/content", options)).content
            finished = True
        finally:
            if not finished:
                await self._cancel_video(video_id)
        return MediaResult(
            data=clip,
            content_type="video/mp4",
            model=str(created.get("model") or options.model),
            meta={"width": request.width, "height": request.height, "remote_id": video_id},
            usage=Usage(units={"video_seconds": request.duration_s}),
        )

    async def _cancel_video(self, video_id: str) -> None:
        """Best effort, shielded from the cancellation that brought us here, and brief."""
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

        async def delete() -> None:
            with contextlib.suppress(httpx.HTTPError, TimeoutError):
                await self._client.delete(f"{self._base_url}/videos/{video_id}", headers=headers, timeout=5.0)

        await asyncio.shield(delete())

    async def _post(
        self,
        path: str,
        options: CallOptions,
        *,
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: _Files | None = None,
    ) -> httpx.Response:
        return await self._request("POST", path, options, json=json, data=data, files=files)

    async def _request(
        self,
        method: str,
        path: str,
        options: CallOptions,
        *,
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: _Files | None = None,
    ) -> httpx.Response:
        headers = {}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        if options.idempotency_key:
            headers["Idempotency-Key"] = options.idempotency_key
        try:
            # httpx's timeout bounds each phase (connect, each read); the outer one bounds the whole
            # call, so a server trickling bytes cannot hold us past the router's deadline.
            async with asyncio.timeout(options.timeout_s):
                response = await self._client.request(
                    method,
                    self._base_url + path,
                    json=json,
                    data=data,
                    files=files,
                    headers=headers,
                    timeout=httpx.Timeout(options.timeout_s),
                )
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
            raise from_exception(exc) from exc
        if not response.is_success:
            raise classify(response.status_code, response.headers, response.content)
        return response


def parse_chat_answer(body: bytes, model: str) -> TextResult:
    """A chat completion's text and token counts; ``SERVER_ERROR`` when the shape is wrong."""
    answer = _json(body)
    choice = _object(_dig(answer, "choices", 0), "choices[0]")
    message = _object(_dig(choice, "message"), "message")
    if choice.get("finish_reason") == "content_filter" or message.get("refusal"):
        raise ProviderError(ErrorClass.CONTENT_POLICY, str(message.get("refusal") or "content filtered"), 200)
    text = message.get("content")
    if not isinstance(text, str) or not text.strip():
        raise malformed("no message content")
    units: dict[str, float] = {}
    usage = answer.get("usage")
    if isinstance(usage, dict):
        for theirs, ours in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
            count = usage.get(theirs)
            if isinstance(count, int | float) and not isinstance(count, bool):
                units[ours] = count
    return TextResult(text=text, model=model, usage=Usage(units=units))


def parse_image_answer(body: bytes, model: str) -> MediaResult:
    """The first image of an images answer, decoded from ``b64_json`` and checked to be an image."""
    encoded = _dig(_json(body), "data", 0, "b64_json")
    if not isinstance(encoded, str):
        raise malformed("b64_json is not a string")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed("bad base64") from exc
    content_type = image_type(data)
    if content_type is None:
        raise malformed("not a PNG, JPEG or WebP image")
    try:
        # Reads the header only: cheap, and catches bytes that merely start like an image.
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as exc:
        raise malformed("unreadable image") from exc
    return MediaResult(
        data=data,
        content_type=content_type,
        model=model,
        meta={"width": width, "height": height},
        usage=Usage(units={"images": 1}),
    )


def parse_speech_answer(body: bytes, content_type: str, model: str) -> MediaResult:
    """Audio bytes: a WAV (we ask for one) with its duration, or any ``audio/*`` the server chose."""
    if body[:4] == b"RIFF" and body[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(body)) as wav:
                seconds = wav.getnframes() / wav.getframerate()
        except (wave.Error, EOFError, ZeroDivisionError) as exc:
            raise malformed("unreadable WAV") from exc
        return MediaResult(
            data=body, content_type="audio/wav", model=model, meta={"duration_s": round(seconds, 3)}
        )
    media_type = content_type.split(";")[0].strip().lower()
    if body and media_type.startswith("audio/"):
        return MediaResult(data=body, content_type=media_type, model=model)
    raise malformed("not audio")


def image_type(data: bytes) -> str | None:
    """The content type from the bytes' signature: PNG, JPEG or WebP, else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _upload(field: str, data: bytes) -> tuple[str, bytes, str]:
    content_type = image_type(data) or "application/octet-stream"
    extension = content_type.rsplit("/", 1)[-1].replace("octet-stream", "bin")
    return (f"{field}.{extension}", data, content_type)


def _json(body: bytes) -> dict[str, Any]:
    try:
        answer = jsonlib.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise malformed("not JSON") from exc
    return _object(answer, "the answer")


def _dig(value: Any, *path: str | int) -> Any:
    """``value[path[0]][path[1]]...``; ``SERVER_ERROR`` "malformed answer" when a step is missing."""
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError) as exc:
            raise malformed(f"no {step!r} in the answer") from exc
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise malformed(f"{what} is not a JSON object")
    return value


def _build(name: str, config: ProviderConfig) -> OpenAICompatibleProvider:
    key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
    return OpenAICompatibleProvider(name=name, base_url=config.base_url, api_key=key)


def _check(config: ProviderConfig) -> list[str]:
    problems = [] if config.base_url else ["an openai adapter needs base_url"]
    key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
    if key and not (key.isascii() and key.isprintable()):
        problems.append(f"{config.api_key_env} has characters an HTTP header cannot carry")
    return problems


ADAPTER = Adapter(capabilities=DEFAULT_CAPABILITIES, build=_build, check=_check)
