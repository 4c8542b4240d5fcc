"""The OpenAI-compatible adapter against the fake OpenAI server: real HTTP, real sockets, real faults."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import av
import httpx
import pytest
from PIL import Image

from atelier_devstack import fake_openai_cli
from atelier_devstack.fake_openai import SECONDS_PER_CHARACTER, FakeOpenAI
from atelier_devstack.natsserver import free_port
from atelier_provider_router.adapters.openai_compat import OpenAICompatibleProvider
from atelier_provider_router.adapters.openai_errors import MALFORMED
from atelier_provider_router.app.ports import (
    CallOptions,
    ErrorClass,
    ImageEditRequest,
    ImageRequest,
    ProviderError,
    SpeechRequest,
    TextRequest,
    VideoRequest,
)
from tests.support import eventually

pytestmark = pytest.mark.integration

OPTIONS = CallOptions(model="fake-1", timeout_s=10.0)
STORY = TextRequest(prompt="a fox who learns to whistle", title="The Whistling Fox", seed=1)


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAICompatibleProvider]:
    adapter = OpenAICompatibleProvider(name="fake", base_url=fake.base_url)
    yield adapter
    await adapter.aclose()


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "orange").save(buffer, "PNG")
    return buffer.getvalue()


async def call(provider: OpenAICompatibleProvider, capability: str, options: CallOptions = OPTIONS) -> object:
    """One call of ``capability`` with a harmless request."""
    if capability == "text.generate":
        return await provider.generate_text(STORY, options)
    if capability == "image.generate":
        return await provider.generate_image(ImageRequest(prompt="a fox", title="Fox", size=32), options)
    if capability == "image.edit":
        return await provider.edit_image(ImageEditRequest(image=png(8, 8), prompt="snow", size=8), options)
    return await provider.synthesize_speech(SpeechRequest(text="Once upon a time."), options)


async def failure(
    provider: OpenAICompatibleProvider, capability: str, options: CallOptions = OPTIONS
) -> ProviderError:
    with pytest.raises(ProviderError) as raised:
        await call(provider, capability, options)
    return raised.value


CAPABILITIES = ["text.generate", "image.generate", "image.edit", "tts"]


# --- happy paths ------------------------------------------------------------------------------------


async def test_a_story_with_its_token_counts(provider: OpenAICompatibleProvider) -> None:
    result = await provider.generate_text(STORY, OPTIONS)
    assert result.text.startswith("# The Whistling Fox\n")
    assert "a fox who learns to whistle" in result.text
    assert result.model == "fake-1"
    sent_words = len(STORY.system.split()) + len(
        f'Write a story titled "{STORY.title}" about: {STORY.prompt}'.split()
    )
    assert result.usage.units == {"input_tokens": sent_words, "output_tokens": len(result.text.split())}
    assert await provider.generate_text(STORY, OPTIONS) == result  # deterministic


async def test_max_tokens_cuts_the_story(provider: OpenAICompatibleProvider) -> None:
    short = TextRequest(prompt=STORY.prompt, title=STORY.title, max_tokens=5)
    result = await provider.generate_text(short, OPTIONS)
    assert result.usage.units["output_tokens"] == 5
    assert len(result.text.split()) == 5


async def test_an_image_of_the_asked_size(provider: OpenAICompatibleProvider) -> None:
    result = await provider.generate_image(ImageRequest(prompt="a fox", title="Fox", size=48), OPTIONS)
    with Image.open(io.BytesIO(result.data)) as image:
        assert (image.format, image.size) == ("PNG", (48, 48))
        image.load()
    assert result.content_type == "image/png"
    assert result.meta == {"width": 48, "height": 48}
    assert result.usage.units == {"images": 1}


async def test_an_edit_keeps_the_inputs_size(provider: OpenAICompatibleProvider) -> None:
    request = ImageEditRequest(image=png(40, 30), prompt="add snow", mask=png(40, 30), size=64)
    result = await provider.edit_image(request, OPTIONS)
    with Image.open(io.BytesIO(result.data)) as image:
        assert (image.format, image.size) == ("PNG", (40, 30))
    assert result.usage.units == {"images": 1}


async def test_speech_lasts_as_long_as_its_text(provider: OpenAICompatibleProvider) -> None:
    text = "The fox whistled all the way home."
    result = await provider.synthesize_speech(SpeechRequest(text=text), OPTIONS)
    with wave.open(io.BytesIO(result.data)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert seconds == pytest.approx(len(text) * SECONDS_PER_CHARACTER)
    assert result.content_type == "audio/wav"
    assert result.meta == {"duration_s": round(seconds, 3)}
    assert result.usage.units == {"characters": len(text)}


# --- headers ----------------------------------------------------------------------------------------


async def test_the_idempotency_key_reaches_the_server_and_a_retry_reuses_it(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    options = CallOptions(model="fake-1", idempotency_key="work-7:fake/fake-1")
    fake.set_faults(rate_500=1.0)
    assert (await failure(provider, "text.generate", options)).error_class == ErrorClass.SERVER_ERROR
    fake.set_faults()
    await provider.generate_text(STORY, options)
    stats = fake.stats()
    assert stats["idempotency_keys"] == ["work-7:fake/fake-1", "work-7:fake/fake-1"]
    assert stats["by_endpoint"]["chat/completions"] == {"server_error": 1, "ok": 1}
    assert stats["billed"] == {"work-7:fake/fake-1": 1}  # only the answered request is charged
    assert stats["in_flight"] == 0


async def test_a_slow_answer_the_client_gave_up_on_is_not_billed(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(slow_s=30)
    options = CallOptions(model="fake-1", timeout_s=0.2, idempotency_key="work-8:fake/fake-1")
    assert (await failure(provider, "text.generate", options)).error_class == ErrorClass.TIMEOUT

    async def answered() -> bool:  # the server notices the hang-up a moment after the client left
        return bool(fake.stats()["in_flight"] == 0)

    await eventually(answered, within=5)
    stats = fake.stats()
    assert (stats["outcomes"], stats["billed"]) == ({"client_gone": 1}, {})
    fake.set_faults()
    await provider.generate_text(STORY, options)
    assert fake.stats()["billed"] == {"work-8:fake/fake-1": 1}


async def test_no_idempotency_key_is_sent_when_the_router_gives_none(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    await provider.generate_text(STORY, OPTIONS)
    assert fake.stats()["idempotency_keys"] == []


@pytest.mark.parametrize(("key", "accepted"), [("sk-right", True), ("sk-wrong", False), ("", False)])
async def test_the_api_key_is_sent_as_a_bearer_token(fake: FakeOpenAI, key: str, accepted: bool) -> None:
    fake.set_faults(api_key="sk-right")
    adapter = OpenAICompatibleProvider(name="fake", base_url=fake.base_url, api_key=key)
    try:
        for capability in CAPABILITIES:
            if accepted:
                await call(adapter, capability)
            else:
                error = await failure(adapter, capability)
                assert (error.error_class, error.status) == (ErrorClass.AUTH, 401)
    finally:
        await adapter.aclose()
    assert fake.stats()["outcomes"] == {"ok" if accepted else "unauthorized": len(CAPABILITIES)}


# --- faults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_429_carries_the_retry_after(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider, capability: str
) -> None:
    fake.set_faults(rate_429=1.0, retry_after_s=2.5)
    error = await failure(provider, capability)
    assert (error.error_class, error.status, error.retry_after_s) == (ErrorClass.RATE_LIMITED, 429, 2.5)


async def test_a_429_window_refuses_everything_until_it_ends(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(window_429_s=30)
    for capability in CAPABILITIES:
        error = await failure(provider, capability)
        assert error.error_class == ErrorClass.RATE_LIMITED
        assert error.retry_after_s is not None
        assert 25 < error.retry_after_s <= 30
    assert fake.stats()["outcomes"] == {"rate_limited": 4}


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_500_is_a_server_error(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider, capability: str
) -> None:
    fake.set_faults(rate_500=1.0)
    error = await failure(provider, capability)
    assert (error.error_class, error.status, error.retry_after_s) == (ErrorClass.SERVER_ERROR, 500, None)


async def test_503_is_a_server_error_that_keeps_its_retry_after(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(rate_503=1.0, retry_after_s=4)
    error = await failure(provider, "text.generate")
    assert (error.error_class, error.status, error.retry_after_s) == (ErrorClass.SERVER_ERROR, 503, 4.0)


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_a_slow_answer_is_a_timeout(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider, capability: str
) -> None:
    fake.set_faults(slow_s=30)
    error = await failure(provider, capability, CallOptions(model="fake-1", timeout_s=0.2))
    assert error.error_class == ErrorClass.TIMEOUT


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_a_malformed_answer_is_a_server_error(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider, capability: str
) -> None:
    fake.set_faults(malformed=1.0)
    error = await failure(provider, capability)
    assert error.error_class == ErrorClass.SERVER_ERROR
    assert error.message.startswith(MALFORMED)


@pytest.mark.parametrize("capability", CAPABILITIES)
async def test_a_reset_connection_is_a_connection_error(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider, capability: str
) -> None:
    fake.set_faults(reset=1.0)
    error = await failure(provider, capability)
    assert error.error_class == ErrorClass.CONNECTION

    async def counted() -> bool:  # the server thread may record the reset after the client saw it
        return bool(fake.stats()["outcomes"] == {"reset": 1})

    await eventually(counted, within=5)
    fake.set_faults()
    await call(provider, capability)  # the pool recovers: the next call opens a fresh connection


async def test_nobody_listening_is_a_connection_error() -> None:
    adapter = OpenAICompatibleProvider(name="gone", base_url=f"http://127.0.0.1:{free_port()}/v1")
    try:
        assert (await failure(adapter, "text.generate")).error_class == ErrorClass.CONNECTION
    finally:
        await adapter.aclose()


@pytest.mark.parametrize(
    "call_with_trigger",
    [
        lambda p: p.generate_text(TextRequest(prompt="a FORBIDDEN spell", title="Spells"), OPTIONS),
        lambda p: p.generate_image(ImageRequest(prompt="a forbidden door", title="Door", size=16), OPTIONS),
        lambda p: p.edit_image(ImageEditRequest(image=png(4, 4), prompt="make it forbidden"), OPTIONS),
        lambda p: p.synthesize_speech(SpeechRequest(text="Say the forbidden word."), OPTIONS),
    ],
)
async def test_a_trigger_word_is_refused_by_content_policy(
    provider: OpenAICompatibleProvider,
    call_with_trigger: Callable[[OpenAICompatibleProvider], Awaitable[object]],
) -> None:
    with pytest.raises(ProviderError) as raised:
        await call_with_trigger(provider)
    assert (raised.value.error_class, raised.value.status) == (ErrorClass.CONTENT_POLICY, 400)


async def test_a_custom_trigger_word(fake: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    fake.set_faults(content_policy="whistle")
    assert (await failure(provider, "text.generate")).error_class == ErrorClass.CONTENT_POLICY


async def test_a_prompt_past_the_context_limit_is_too_long(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(context_limit=400)
    await provider.generate_text(STORY, OPTIONS)
    long = TextRequest(prompt="and then " * 50, title="On and On")
    with pytest.raises(ProviderError) as raised:
        await provider.generate_text(long, OPTIONS)
    assert (raised.value.error_class, raised.value.status) == (ErrorClass.CONTEXT_TOO_LONG, 400)


async def test_an_unknown_model_is_an_invalid_request(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(models=("fake-1",))
    await provider.generate_text(STORY, OPTIONS)
    error = await failure(provider, "text.generate", CallOptions(model="no-such-model"))
    assert (error.error_class, error.status) == (ErrorClass.INVALID_REQUEST, 404)


async def test_one_seed_gives_one_fault_sequence(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    async def run() -> list[str]:
        fake.set_faults(seed=7, rate_429=0.3, rate_500=0.3, malformed=0.2)
        outcomes = []
        for _ in range(12):
            try:
                await provider.generate_text(STORY, OPTIONS)
                outcomes.append("ok")
            except ProviderError as error:
                outcomes.append(str(error.error_class))
        return outcomes

    first = await run()
    assert await run() == first
    assert len(set(first)) > 1


# --- the admin endpoints ----------------------------------------------------------------------------


async def test_faults_and_stats_over_http(fake: FakeOpenAI, provider: OpenAICompatibleProvider) -> None:
    async with httpx.AsyncClient(base_url=fake.url) as admin:
        answer = await admin.post("/_faults", json={"rate_503": 1.0, "retry_after_s": 3})
        assert answer.status_code == 200
        assert answer.json()["rate_503"] == 1.0
        error = await failure(provider, "tts")
        assert (error.status, error.retry_after_s) == (503, 3.0)
        assert (await admin.post("/_faults", json={})).status_code == 200
        await call(provider, "tts")
        stats = (await admin.get("/_stats")).json()
        assert stats["requests"] == {"audio/speech": 2}
        assert stats["outcomes"] == {"unavailable": 1, "ok": 1}
        for bad in ({"rate_500": 2}, {"no_such_fault": 1}, [1, 2]):
            assert (await admin.post("/_faults", json=bad)).status_code == 400


async def test_the_wire_format_is_openais(fake: FakeOpenAI) -> None:
    """The fake answers a plain client as OpenAI would, errors included."""
    async with httpx.AsyncClient(base_url=fake.base_url) as client:
        answer = await client.post(
            "/images/generations",
            json={"model": "m", "prompt": "a fox", "size": "3x2", "response_format": "b64_json"},
        )
        with Image.open(io.BytesIO(base64.b64decode(answer.json()["data"][0]["b64_json"]))) as image:
            assert image.size == (3, 2)
        refused = await client.post("/chat/completions", json={"model": "m", "messages": "not a list"})
        assert refused.status_code == 400
        assert set(refused.json()["error"]) >= {"message", "type", "code"}
        models = await client.get("/models")
        assert models.json()["object"] == "list"


def test_the_fake_server_runs_as_a_command_on_the_port_and_with_the_faults_asked_for() -> None:
    with fake_openai_cli.child_process("--rate-429", "1") as (url, server):  # it prints the URL
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(f"{url}/chat/completions", json=body, timeout=10)
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "1"
    assert server.returncode == 0, "Ctrl-C stops it cleanly"


def test_the_fake_server_command_refuses_impossible_faults() -> None:
    command = [sys.executable, "-m", "atelier_devstack.fake_openai_cli", "--rate-429", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "rate_429 must be between 0 and 1" in done.stderr


# --- video jobs (OpenAI's /v1/videos): submit, poll, fetch, cancel ----------------------------

CLIP = VideoRequest(image=b"", prompt="a lighthouse at dusk", duration_s=2.0, width=320, height=180)


async def test_a_video_job_is_submitted_polled_and_fetched(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(video_render_s=1.2)
    result = await provider.image_to_video(dataclasses.replace(CLIP, image=png(64, 64)), OPTIONS)
    assert result.content_type == "video/mp4"
    with av.open(io.BytesIO(result.data)) as clip:
        [stream] = clip.streams.video
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 320, 180)
        assert float(clip.duration or 0) / 1e6 == pytest.approx(2.0, abs=0.1)
    requests = fake.stats()["requests"]
    assert requests["videos"] == 1
    assert requests["videos.retrieve"] >= 2, "polled while it rendered"
    assert requests["videos.content"] == 1
    assert "videos.delete" not in requests
    assert result.usage.units == {"video_seconds": 2.0}


async def test_a_failed_video_job_is_a_server_error(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(video_render_s=0.1, video_fail=True)
    with pytest.raises(ProviderError) as failed:
        await provider.image_to_video(dataclasses.replace(CLIP, image=png(64, 64)), OPTIONS)
    assert failed.value.error_class == ErrorClass.SERVER_ERROR
    assert "render failed" in failed.value.message
    assert "videos.delete" not in fake.stats()["requests"], "nothing left to cancel"


async def test_a_video_call_given_up_on_cancels_the_remote_job(
    fake: FakeOpenAI, provider: OpenAICompatibleProvider
) -> None:
    fake.set_faults(video_render_s=60.0)
    call = asyncio.create_task(provider.image_to_video(dataclasses.replace(CLIP, image=png(64, 64)), OPTIONS))

    async def polling() -> bool:
        return fake.stats()["requests"].get("videos.retrieve", 0) >= 1

    await eventually(polling, within=10)
    call.cancel()  # the job was cancelled, or the router's timeout passed
    with pytest.raises(asyncio.CancelledError):
        await call
    assert fake.stats()["requests"]["videos.delete"] == 1
