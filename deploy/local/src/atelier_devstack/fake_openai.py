"""A local server speaking OpenAI's HTTP API, deterministic, with faults on demand.

Chat answers are short Markdown stories with real ``usage`` counts (tokens counted as
whitespace-separated words), images are gradient PNGs of the asked size, edits are PNGs of the
input's size, speech is a WAV tone lasting 20 ms per input character.

Faults (:class:`Faults`) are set with ``POST /_faults`` (a JSON object; each call replaces the whole
set and reseeds the RNG) or :meth:`FakeOpenAI.set_faults`; ``GET /_stats`` counts requests and
outcomes, lists the ``Idempotency-Key`` headers received and, per key, how many requests were answered
successfully (``billed``: what a real provider would charge for), and how many requests are still being
answered (``in_flight``). Every request draws the same number of random rolls in the same order, so one
seed and one request sequence give one fault sequence.

The ``reset`` fault needs the connection's socket, which ASGI does not expose: the server runs with a
subclass of uvicorn's h11 protocol that records each connection's transport by client address; the
app sets ``SO_LINGER`` to zero and aborts the transport, so the client sees a TCP reset and no answer.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import io
import json
import math
import random
import re
import socket
import struct
import threading
import time
import wave
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

SPEECH_RATE = 8_000
SECONDS_PER_CHARACTER = 0.02
_ROLLS = ("rate_429", "rate_500", "rate_503", "reset", "rate_slow", "malformed")
_SIZE = re.compile(r"^(\d{1,4})x(\d{1,4})$")
_Client = tuple[str, int]


@dataclasses.dataclass(frozen=True)
class Faults:
    """What goes wrong, and how often; rates are probabilities per request, 0 to 1."""

    seed: int = 0
    rate_429: float = 0.0
    retry_after_s: float = 1.0
    """The Retry-After sent with ``rate_429`` and ``rate_503`` answers."""
    window_429_s: float = 0.0
    """Every request answers 429 for this many seconds after the faults are set."""
    rate_500: float = 0.0
    rate_503: float = 0.0
    slow_s: float = 0.0
    """Wait this long before answering (or until the client hangs up)."""
    rate_slow: float = 1.0
    malformed: float = 0.0
    """Answer 200 with a body that is not JSON."""
    reset: float = 0.0
    """Reset the connection without answering."""
    content_policy: str = "forbidden"
    """A 400 ``content_policy_violation`` when the prompt contains this word (empty: never)."""
    api_key: str = ""
    """When set, a 401 unless the request carries ``Authorization: Bearer <api_key>``."""
    context_limit: int = 0
    """When set, a 400 ``context_length_exceeded`` for prompts longer than this many characters."""
    models: tuple[str, ...] = ()
    """When set, a 404 ``model_not_found`` for any other model."""
    video_render_s: float = 1.0
    """How long a video job (``POST /v1/videos``) takes from queued to completed."""
    video_fail: bool = False
    """Video jobs end ``failed`` instead of ``completed``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        for name in _ROLLS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if min(self.retry_after_s, self.window_429_s, self.slow_s, self.context_limit) < 0:
            raise ValueError("durations and limits must not be negative")


class _State:
    """Faults, RNG and counters, shared between the server's thread and the caller's."""

    def __init__(self, faults: Faults) -> None:
        self._lock = threading.Lock()
        self.configure(faults)
        self.requests: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.by_endpoint: dict[str, Counter[str]] = {}
        self.idempotency_keys: list[str] = []
        self.billed: Counter[str] = Counter()
        self.in_flight = 0

    def configure(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._rng = random.Random(faults.seed)
            self._window_ends = time.monotonic() + faults.window_429_s

    def arrive(self, endpoint: str, idempotency_key: str | None) -> tuple[Faults, dict[str, float], float]:
        """Counts a request; returns the faults, this request's rolls and the 429 window's seconds left."""
        with self._lock:
            self.requests[endpoint] += 1
            self.in_flight += 1
            if idempotency_key is not None:
                self.idempotency_keys.append(idempotency_key)
            rolls = {name: self._rng.random() for name in _ROLLS}
            return self.faults, rolls, self._window_ends - time.monotonic()

    def finish(self, endpoint: str, outcome: str, idempotency_key: str | None) -> None:
        with self._lock:
            self.in_flight -= 1
            if outcome == "ok" and idempotency_key is not None:
                self.billed[idempotency_key] += 1
            self.outcomes[outcome] += 1
            self.by_endpoint.setdefault(endpoint, Counter())[outcome] += 1

    def count(self, endpoint: str) -> None:
        """A request outside the faults' reach (the video job routes), counted all the same."""
        with self._lock:
            self.requests[endpoint] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "outcomes": dict(self.outcomes),
                "by_endpoint": {name: dict(counts) for name, counts in self.by_endpoint.items()},
                "idempotency_keys": list(self.idempotency_keys),
                "billed": dict(self.billed),
                "in_flight": self.in_flight,
                "faults": dataclasses.asdict(self.faults),
            }


class _Rejected(Exception):
    """An answer other than success, with the outcome name counted in the stats."""

    def __init__(self, outcome: str, response: Response) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.response = response


def error(status: int, message: str, kind: str, code: str | None, **headers: str) -> JSONResponse:
    """OpenAI's error shape."""
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status, headers=headers or None)


def _invalid(message: str) -> _Rejected:
    return _Rejected("invalid_request", error(400, message, "invalid_request_error", None))


def _seconds(value: float) -> str:
    # Whole seconds as HTTP says; fractions kept so tests can use sub-second waits.
    return str(math.ceil(value)) if value >= 10 else f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def _rate_limited(seconds: float) -> _Rejected:
    headers = {
        "retry-after": _seconds(seconds),
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": f"{round(seconds * 1000)}ms",
    }
    message = "Rate limit reached for requests. Please try again later."
    return _Rejected("rate_limited", error(429, message, "requests", "rate_limit_exceeded", **headers))


def story(messages: list[dict[str, Any]], seed: int) -> str:
    """A short Markdown story from a chat's last user message (``titled "T" about: P`` if present)."""
    user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    title = re.search(r'titled "(.+?)"', user)
    about = user.split("about:", 1)[-1].strip().rstrip(".") or "a quiet afternoon"
    turns = ("a lantern flickered", "the wind hummed a tune", "a small door creaked open")
    return (
        f"# {title.group(1) if title else 'A Story'}\n\n"
        f"Once upon a time there was a tale about {about}. "
        f"Just then {turns[seed % len(turns)]}, and everyone leaned in to listen.\n\n"
        "And they all slept soundly that night. The end.\n"
    )


def gradient_png(width: int, height: int, prompt: str, base: Image.Image | None = None) -> bytes:
    """A gradient tinted by the prompt's hash, blended over ``base`` when given."""
    ramp = Image.linear_gradient("L")
    tint = Image.new("L", (width, height), hashlib.sha256(prompt.encode()).digest()[0])
    image = Image.merge("RGB", (ramp.rotate(90).resize((width, height)), ramp.resize((width, height)), tint))
    if base is not None:
        image = Image.blend(base.convert("RGB").resize((width, height)), image, 0.5)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def tone_wav(text: str) -> bytes:
    """A 400 Hz tone, 20 ms per character: one 20-sample period repeated, so it costs nothing."""
    period = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * i / 20))) for i in range(20))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SPEECH_RATE)
        frames = round(len(text) * SECONDS_PER_CHARACTER * SPEECH_RATE)
        wav.writeframes(period * (frames // 20))
    return buffer.getvalue()


@dataclasses.dataclass(frozen=True)
class _Call:
    """A parsed request: its model, the text the content checks read, and how to answer it."""

    model: str
    text: str
    answer: Callable[[], Awaitable[Response]]


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise _invalid("We could not parse the JSON body of your request.") from exc
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    return body


def _string(body: Any, name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or not value:
        raise _invalid(f"'{name}' is required and must be a non-empty string.")
    return value


def _integer(body: Any, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(f"'{name}' must be an integer from {low} to {high}.")
    return value


def _format(body: Any, allowed: str) -> None:
    if body.get("response_format", allowed) != allowed:
        raise _invalid(f"This server only answers response_format '{allowed}'.")


def _size(body: Any) -> tuple[int, int]:
    match = _SIZE.match(str(body.get("size") or "1024x1024"))
    if not match or not all(1 <= int(side) <= 4096 for side in match.groups()):
        raise _invalid("'size' must be WIDTHxHEIGHT, each side from 1 to 4096.")
    return int(match.group(1)), int(match.group(2))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise _invalid("Each message needs 'content', a string or a list of parts.")


def _image_bytes(data: bytes, name: str) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise _invalid(f"'{name}' is not an image we can read.") from exc


async def _parse_chat(request: Request) -> _Call:
    body = await _json_object(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise _invalid("'messages' must be a non-empty list of objects.")
    plain = [{"role": m.get("role"), "content": _content_text(m.get("content"))} for m in messages]
    model = _string(body, "model")
    seed = _integer(body, "seed", 0, -(2**63), 2**63 - 1)
    limit = _integer(body, "max_tokens", 0, 0, 10**6) or _integer(body, "max_completion_tokens", 0, 0, 10**6)

    async def answer() -> Response:
        tale = story(plain, seed)
        words = list(re.finditer(r"\S+", tale))
        finish = "stop"
        if limit and len(words) > limit:
            tale, finish = tale[: words[limit - 1].end()], "length"
        prompt_tokens = sum(len(m["content"].split()) for m in plain)
        completion_tokens = len(tale.split())
        return JSONResponse(
            {
                "id": "chatcmpl-" + hashlib.sha256(tale.encode()).hexdigest()[:16],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": tale}, "finish_reason": finish}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    return _Call(model, " ".join(m["content"] for m in plain), answer)


def _images(pngs: list[bytes], prompt: str) -> JSONResponse:
    data = [{"b64_json": base64.b64encode(png).decode(), "revised_prompt": prompt} for png in pngs]
    return JSONResponse({"created": int(time.time()), "data": data})


async def _parse_generation(request: Request) -> _Call:
    body = await _json_object(request)
    prompt = _string(body, "prompt")
    width, height = _size(body)
    count = _integer(body, "n", 1, 1, 10)
    _format(body, "b64_json")

    async def answer() -> Response:
        pngs = [await asyncio.to_thread(gradient_png, width, height, f"{prompt}#{i}") for i in range(count)]
        return _images(pngs, prompt)

    return _Call(_string(body, "model", "fake-image-1"), prompt, answer)


async def _parse_edit(request: Request) -> _Call:
    async with request.form() as form:
        uploads = {name: form.get(name) for name in ("image", "mask")}
        if not isinstance(uploads["image"], UploadFile):
            raise _invalid("'image' must be an uploaded file.")
        image = await uploads["image"].read()
        mask = await uploads["mask"].read() if isinstance(uploads["mask"], UploadFile) else None
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
    _image_bytes(image, "image")
    if mask is not None:
        _image_bytes(mask, "mask")
    prompt = _string(fields, "prompt")
    _format(fields, "b64_json")

    def edited() -> bytes:
        with Image.open(io.BytesIO(image)) as base:
            return gradient_png(base.width, base.height, prompt, base)

    async def answer() -> Response:
        return _images([await asyncio.to_thread(edited)], prompt)

    return _Call(_string(fields, "model", "fake-image-1"), prompt, answer)


async def _parse_speech(request: Request) -> _Call:
    body = await _json_object(request)
    text = _string(body, "input")
    _string(body, "voice")
    _format(body, "wav")

    async def answer() -> Response:
        return Response(await asyncio.to_thread(tone_wav, text), media_type="audio/wav")

    return _Call(_string(body, "model"), text, answer)


async def _reset(request: Request, transports: dict[_Client, asyncio.Transport]) -> None:
    transport = transports.get((request.client.host, request.client.port)) if request.client else None
    if transport is None:
        raise RuntimeError("no transport recorded for this connection")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger zero: closing sends RST instead of FIN, as a crashed proxy or server would.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    await request.receive()  # http.disconnect, once uvicorn has seen the connection go


async def _client_left_within(request: Request, seconds: float) -> bool:
    """Waits ``seconds`` unless the client hangs up first (then the answer would go nowhere)."""
    try:
        message = await asyncio.wait_for(request.receive(), seconds)
    except TimeoutError:
        return False
    return bool(message["type"] == "http.disconnect")


async def _answer(
    request: Request,
    parse: Callable[[Request], Awaitable[_Call]],
    faults: Faults,
    rolls: dict[str, float],
    window_left_s: float,
    transports: dict[_Client, asyncio.Transport],
) -> Response:
    if faults.api_key and request.headers.get("authorization") != f"Bearer {faults.api_key}":
        message = "Incorrect API key provided."
        raise _Rejected("unauthorized", error(401, message, "invalid_request_error", "invalid_api_key"))
    if window_left_s > 0:
        raise _rate_limited(window_left_s)
    if rolls["rate_429"] < faults.rate_429:
        raise _rate_limited(faults.retry_after_s)
    if rolls["rate_500"] < faults.rate_500:
        message = "The server had an error while processing your request."
        raise _Rejected("server_error", error(500, message, "server_error", None))
    if rolls["rate_503"] < faults.rate_503:
        retry = {"retry-after": _seconds(faults.retry_after_s)}
        raise _Rejected("unavailable", error(503, "The engine is overloaded.", "server_error", None, **retry))
    if rolls["reset"] < faults.reset:
        await _reset(request, transports)
        raise _Rejected("reset", Response())
    slow = faults.slow_s > 0 and rolls["rate_slow"] < faults.rate_slow
    if slow and await _client_left_within(request, faults.slow_s):
        raise _Rejected("client_gone", Response())
    call = await parse(request)
    if faults.models and call.model not in faults.models:
        message = f"The model '{call.model}' does not exist or you do not have access to it."
        raise _Rejected("model_not_found", error(404, message, "invalid_request_error", "model_not_found"))
    if faults.content_policy and faults.content_policy.lower() in call.text.lower():
        message = "Your request was rejected as a result of our safety system."
        code = "content_policy_violation"
        raise _Rejected("content_policy", error(400, message, "invalid_request_error", code))
    if faults.context_limit and len(call.text) > faults.context_limit:
        message = (
            f"This model's maximum context length is {faults.context_limit} characters. "
            f"However, your messages resulted in {len(call.text)} characters."
        )
        code = "context_length_exceeded"
        raise _Rejected("context_length_exceeded", error(400, message, "invalid_request_error", code))
    if rolls["malformed"] < faults.malformed:
        raise _Rejected("malformed", Response(b'{"choices": [{"message": ', media_type="application/json"))
    return await call.answer()


def tiny_mp4(seconds: float, width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A real H.264 MP4 of one colour (PyAV's wheel carries FFmpeg), 12 frames a second."""
    import av  # only the video routes need it

    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=12)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        picture = Image.new("RGB", (width, height), colour)
        for i in range(max(1, round(seconds * 12))):
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


class _Videos:
    """OpenAI's video jobs: ``POST /v1/videos`` queues one, ``GET /v1/videos/{id}`` shows its
    status and progress, ``GET …/content`` hands the MP4 over once completed, ``DELETE`` cancels."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.jobs: dict[str, dict[str, Any]] = {}

    def _view(self, job: dict[str, Any]) -> dict[str, Any]:
        faults = self.state.faults
        if job["status"] in ("queued", "in_progress"):
            done = (time.monotonic() - job["started"]) / max(faults.video_render_s, 1e-6)
            if done >= 1:
                job["status"] = "failed" if faults.video_fail else "completed"
                job["progress"] = 100
                if faults.video_fail:
                    job["error"] = {"code": "video_generation_failed", "message": "the render failed"}
            else:
                job["status"] = "in_progress" if done > 0.05 else "queued"
                job["progress"] = int(done * 100)
        return {k: v for k, v in job.items() if k not in ("started", "mp4")}

    async def create(self, request: Request) -> Response:
        self.state.count("videos")
        async with request.form() as form:
            prompt, model = str(form.get("prompt", "")), str(form.get("model", "sora-2"))
            seconds = float(str(form.get("seconds", "4")))
            width, height = (int(v) for v in str(form.get("size", "640x360")).split("x"))
            reference = form.get("input_reference")
            colour = (200, 120, 40)
            if isinstance(reference, UploadFile):
                still = Image.open(io.BytesIO(await reference.read())).convert("RGB")
                colour = still.resize((1, 1)).getpixel((0, 0))  # type: ignore[assignment]
        if not prompt:
            return error(400, "prompt is required", "invalid_request_error", None)
        job_id = f"video_{len(self.jobs) + 1:04d}"
        self.jobs[job_id] = {
            "id": job_id, "object": "video", "model": model, "status": "queued", "progress": 0,
            "seconds": str(seconds), "size": f"{width}x{height}", "created_at": int(time.time()),
            "started": time.monotonic(), "mp4": (seconds, width, height, colour),
        }  # fmt: skip
        return JSONResponse(self._view(self.jobs[job_id]))

    async def retrieve(self, request: Request) -> Response:
        self.state.count("videos.retrieve")
        job = self.jobs.get(request.path_params["video_id"])
        if job is None:
            return error(404, "no such video", "invalid_request_error", "video_not_found")
        return JSONResponse(self._view(job))

    async def content(self, request: Request) -> Response:
        self.state.count("videos.content")
        job = self.jobs.get(request.path_params["video_id"])
        if job is None:
            return error(404, "no such video", "invalid_request_error", "video_not_found")
        if self._view(job)["status"] != "completed":
            return error(400, "the video is not completed", "invalid_request_error", None)
        seconds, width, height, colour = job["mp4"]
        data = await asyncio.to_thread(tiny_mp4, seconds, width, height, colour)
        return Response(data, media_type="video/mp4")

    async def delete(self, request: Request) -> Response:
        self.state.count("videos.delete")
        job = self.jobs.get(request.path_params["video_id"])
        if job is None:
            return error(404, "no such video", "invalid_request_error", "video_not_found")
        job["status"] = "cancelled"
        return JSONResponse({"id": job["id"], "object": "video.deleted", "deleted": True})


def build_app(state: _State, transports: dict[_Client, asyncio.Transport]) -> Starlette:
    """The ASGI app; ``transports`` is filled by the server's protocol (see the module's docstring)."""

    def endpoint(name: str, parse: Callable[[Request], Awaitable[_Call]]) -> Route:
        async def serve(request: Request) -> Response:
            key = request.headers.get("idempotency-key")
            faults, rolls, window_left_s = state.arrive(name, key)
            outcome = "error"  # a bug here: counted all the same, so in_flight returns to zero
            try:
                await request.body()  # read it all first, so a reset or a slow answer never cuts an upload
                response = await _answer(request, parse, faults, rolls, window_left_s, transports)
                outcome = "ok"
            except _Rejected as rejected:
                outcome, response = rejected.outcome, rejected.response
            except ClientDisconnect:
                outcome, response = "client_gone", Response()  # it left before we read its request
            finally:
                state.finish(name, outcome, key)
            return response

        return Route(f"/v1/{name}", serve, methods=["POST"])

    async def post_faults(request: Request) -> Response:
        try:
            faults = Faults(**json.loads(await request.body()))
        except (ValueError, TypeError) as exc:
            return error(400, str(exc), "invalid_request_error", None)
        state.configure(faults)
        return JSONResponse(dataclasses.asdict(faults))

    async def get_stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    videos = _Videos(state)

    async def models(request: Request) -> Response:
        listed = state.faults.models or ("fake-chat-1", "fake-image-1", "fake-tts-1")
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model"} for m in listed]})

    return Starlette(
        routes=[
            endpoint("chat/completions", _parse_chat),
            endpoint("images/generations", _parse_generation),
            endpoint("images/edits", _parse_edit),
            endpoint("audio/speech", _parse_speech),
            Route("/v1/videos", videos.create, methods=["POST"]),
            Route("/v1/videos/{video_id}", videos.retrieve, methods=["GET"]),
            Route("/v1/videos/{video_id}", videos.delete, methods=["DELETE"]),
            Route("/v1/videos/{video_id}/content", videos.content, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/_faults", post_faults, methods=["POST"]),
            Route("/_stats", get_stats, methods=["GET"]),
        ]
    )


def _recording_protocol(transports: dict[_Client, asyncio.Transport]) -> type[H11Protocol]:
    class RecordingH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if self.client:
                transports[self.client] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client:
                transports.pop(self.client, None)
            super().connection_lost(exc)

    return RecordingH11Protocol


class FakeOpenAI:
    """The fake server on a free port, in a background thread with its own event loop.

    Use ``start()``/``stop()``, ``with FakeOpenAI() as fake:`` or ``async with FakeOpenAI() as fake:``.
    """

    def __init__(self, faults: Faults | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        """0 until started: a free port is taken."""
        self._state = _State(faults or Faults())
        self._transports: dict[_Client, asyncio.Transport] = {}
        self.app = build_app(self._state, self._transports)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as its base URL."""
        return f"{self.url}/v1"

    def set_faults(self, faults: Faults | None = None, /, **fields: Any) -> Faults:
        """Replaces every fault (fields not given go back to their defaults) and reseeds the RNG."""
        chosen = faults if faults is not None else Faults(**fields)
        self._state.configure(chosen)
        return chosen

    def stats(self) -> dict[str, Any]:
        """What ``GET /_stats`` answers."""
        return self._state.stats()

    def start(self, timeout: float = 10.0) -> FakeOpenAI:
        # We bind and listen ourselves, so the port is ours before uvicorn starts (no free-port race).
        # Naming the protocol matters: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and without it every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self._socket, self.port = sock, sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http=_recording_protocol(self._transports),
            loop="asyncio",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fake-openai-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the fake OpenAI server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeOpenAI:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
