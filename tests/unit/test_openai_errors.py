"""The OpenAI-compatible adapter's failure mapping: statuses, wait hints, exceptions, malformed answers.

Pure functions are tested directly; the adapter's own calls run over ``httpx.MockTransport``, which
also shows the request it sends (paths, fields, headers).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import wave
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from atelier_provider_router.adapters.openai_compat import (
    OpenAICompatibleProvider,
    image_type,
    parse_chat_answer,
    parse_image_answer,
    parse_speech_answer,
)
from atelier_provider_router.adapters.openai_errors import (
    MALFORMED,
    classify,
    from_exception,
    parse_duration,
    rate_limit_wait_s,
    retry_after,
)
from atelier_provider_router.app.ports import (
    CallOptions,
    ErrorClass,
    ImageEditRequest,
    ImageRequest,
    ProviderError,
    SpeechRequest,
    TextRequest,
)

NOW = datetime(2030, 5, 17, 12, 0, 0, tzinfo=UTC)


def openai_error(code: str | None, message: str = "nope", kind: str = "invalid_request_error") -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


# --- statuses and bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, openai_error("rate_limit_exceeded", kind="requests"), ErrorClass.RATE_LIMITED),
        (429, b"", ErrorClass.RATE_LIMITED),
        (429, openai_error("insufficient_quota", "You exceeded your current quota"), ErrorClass.AUTH),
        (500, openai_error(None, kind="server_error"), ErrorClass.SERVER_ERROR),
        (502, b"<html>Bad Gateway</html>", ErrorClass.SERVER_ERROR),
        (503, b"", ErrorClass.SERVER_ERROR),
        (504, b"upstream timed out", ErrorClass.SERVER_ERROR),
        (599, b"", ErrorClass.SERVER_ERROR),
        (302, b"", ErrorClass.SERVER_ERROR),
        (401, openai_error("invalid_api_key", "Incorrect API key provided"), ErrorClass.AUTH),
        (403, openai_error("unsupported_country_region_territory"), ErrorClass.AUTH),
        (400, openai_error("content_policy_violation"), ErrorClass.CONTENT_POLICY),
        (400, openai_error("content_filter", "The response was filtered"), ErrorClass.CONTENT_POLICY),
        (
            400,
            openai_error(None, "Your request was rejected by our safety system"),
            ErrorClass.CONTENT_POLICY,
        ),
        (400, openai_error("moderation_blocked", "Rejected by moderation"), ErrorClass.CONTENT_POLICY),
        (422, openai_error(None, "violates our content policy"), ErrorClass.CONTENT_POLICY),
        (400, openai_error("context_length_exceeded"), ErrorClass.CONTEXT_TOO_LONG),
        (
            400,
            b'{"object": "error", "message": "This model\'s maximum context length is 4096 tokens.",'
            b' "type": "BadRequestError", "code": 400}',
            ErrorClass.CONTEXT_TOO_LONG,
        ),
        (400, b'{"error": "prompt exceeds the context window"}', ErrorClass.CONTEXT_TOO_LONG),
        (422, b'{"detail": "maximum context length exceeded"}', ErrorClass.CONTEXT_TOO_LONG),
        (
            400,
            openai_error("invalid_value", "size must be one of 256x256, 1024x1024"),
            ErrorClass.INVALID_REQUEST,
        ),
        (
            422,
            b'{"detail": [{"loc": ["body", "model"], "msg": "field required"}]}',
            ErrorClass.INVALID_REQUEST,
        ),
        (404, openai_error("model_not_found", "The model 'x' does not exist"), ErrorClass.INVALID_REQUEST),
        (404, b'{"error": "model \\"llama9\\" not found, try pulling it first"}', ErrorClass.INVALID_REQUEST),
        (409, b"", ErrorClass.INVALID_REQUEST),
        (413, b"Request Entity Too Large", ErrorClass.INVALID_REQUEST),
        # Policy words only count on 400/422: a 403 that mentions safety is still about credentials.
        (403, openai_error(None, "blocked by safety settings"), ErrorClass.AUTH),
        (408, b"", ErrorClass.TIMEOUT),
    ],
)
def test_statuses_and_bodies_are_classified(status: int, body: bytes, expected: ErrorClass) -> None:
    error = classify(status, {}, body)
    assert error.error_class == expected
    assert error.status == status
    assert error.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (openai_error("x", "Incorrect API key provided"), "Incorrect API key provided"),
        (b'{"error": "model not found"}', "model not found"),
        (b'{"object": "error", "message": "flat shape", "code": 400}', "flat shape"),
        (b'{"detail": "fastapi shape"}', "fastapi shape"),
        (b"<html>\n  <h1>Bad   Gateway</h1>\n</html>", "<html> <h1>Bad Gateway</h1> </html>"),
        (b"\xff\xfe not utf-8", "\ufffd\ufffd not utf-8"),
        ("a str body", "a str body"),
        (b"", "HTTP 502"),
        (b"[1, 2]", "[1, 2]"),
    ],
)
def test_the_message_comes_from_whatever_the_server_said(body: bytes | str, message: str) -> None:
    assert classify(502, {}, body).message == message


def test_a_long_body_is_cut() -> None:
    assert len(classify(500, {}, b"x" * 5000).message) <= 301


# --- how long to wait ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": " 0 "}, 0.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"retry-after": "Fri, 17 May 2030 12:00:45 GMT"}, 45.0),
        ({"retry-after": "Fri, 17 May 2030 12:00:10 -0000"}, 10.0),
        ({"retry-after": format_datetime(NOW - timedelta(minutes=5), usegmt=True)}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], seconds: float | None) -> None:
    lowered = {key.lower(): value for key, value in headers.items()}
    assert retry_after(lowered, NOW) == seconds
    error = classify(429, headers, b"", now=NOW)
    assert (error.error_class, error.retry_after_s) == (ErrorClass.RATE_LIMITED, seconds)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ratelimit-reset-requests": "1s"}, 1.0),
        ({"x-ratelimit-reset-requests": "250ms"}, 0.25),
        ({"x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "1h2m3.5s"}, 3723.5),
        ({"x-ratelimit-reset-requests": "20"}, 20.0),
        # Both reset, none said to be exhausted: wait for the later.
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "30s"}, 30.0),
        # The exhausted one decides.
        (
            {
                "x-ratelimit-reset-requests": "1s",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-tokens": "30s",
                "x-ratelimit-remaining-tokens": "5000",
            },
            1.0,
        ),
        ({"x-ratelimit-reset-requests": "1s", "retry-after": "4"}, 4.0),
        ({"x-ratelimit-reset-requests": "whenever"}, None),
    ],
)
def test_openai_reset_headers_give_the_wait_when_retry_after_is_missing(
    headers: dict[str, str], seconds: float | None
) -> None:
    assert rate_limit_wait_s(headers, NOW) == seconds
    assert classify(429, httpx.Headers(headers), b"", now=NOW).retry_after_s == seconds


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("0.5s", 0.5),
        ("250ms", 0.25),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("6m0s", 360.0),
        ("1H2M", 3720.0),
        ("12", 12.0),
        (str(int(NOW.timestamp()) + 5), 5.0),
        ("", None),
        ("1x", None),
        ("-1s", None),
        ("1s junk", None),
        ("s", None),
    ],
)
def test_durations(value: str, seconds: float | None) -> None:
    assert parse_duration(value, NOW) == seconds


def test_a_503_keeps_its_retry_after_but_ignores_rate_limit_resets() -> None:
    assert classify(503, {"Retry-After": "3"}, b"").retry_after_s == 3.0
    assert classify(500, {"x-ratelimit-reset-requests": "5s"}, b"").retry_after_s is None


def test_httpx_headers_are_read_whatever_their_case() -> None:
    headers = httpx.Headers({"RETRY-AFTER": "2"})
    assert classify(429, headers, b"").retry_after_s == 2.0


@given(
    status=st.integers(100, 999),
    headers=st.dictionaries(
        st.sampled_from(
            ["retry-after", "retry-after-ms", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        ),
        st.text(max_size=40),
    ),
    body=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
)
def test_classify_never_raises(status: int, headers: dict[str, str], body: bytes) -> None:
    error = classify(status, headers, body)
    assert isinstance(error.error_class, ErrorClass)
    assert error.retry_after_s is None or error.retry_after_s >= 0


# --- exceptions -------------------------------------------------------------------------------------

REQUEST = httpx.Request("POST", "http://provider.test/v1/chat/completions")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("connect", request=REQUEST), ErrorClass.TIMEOUT),
        (httpx.ReadTimeout("read", request=REQUEST), ErrorClass.TIMEOUT),
        (httpx.WriteTimeout("write", request=REQUEST), ErrorClass.TIMEOUT),
        (httpx.PoolTimeout("pool", request=REQUEST), ErrorClass.TIMEOUT),
        (TimeoutError(), ErrorClass.TIMEOUT),
        (httpx.ConnectError("refused", request=REQUEST), ErrorClass.CONNECTION),
        (httpx.ReadError("connection reset by peer", request=REQUEST), ErrorClass.CONNECTION),
        (httpx.WriteError("broken pipe", request=REQUEST), ErrorClass.CONNECTION),
        (httpx.CloseError("close", request=REQUEST), ErrorClass.CONNECTION),
        (httpx.RemoteProtocolError("server disconnected", request=REQUEST), ErrorClass.CONNECTION),
        (httpx.ProxyError("proxy said no", request=REQUEST), ErrorClass.CONNECTION),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), ErrorClass.CONNECTION),
        (httpx.InvalidURL("bad url"), ErrorClass.CONNECTION),
        (httpx.DecodingError("bad gzip", request=REQUEST), ErrorClass.SERVER_ERROR),
        (httpx.TooManyRedirects("loop", request=REQUEST), ErrorClass.SERVER_ERROR),
    ],
)
def test_exceptions_are_classified(exc: Exception, expected: ErrorClass) -> None:
    error = from_exception(exc)
    assert error.error_class == expected
    assert error.status is None


def provider_over(client: httpx.AsyncClient, api_key: str = "") -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(
        name="mock", base_url="http://provider.test/v1/", api_key=api_key, client=client
    )


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def call_text(provider: OpenAICompatibleProvider, options: CallOptions | None = None) -> None:
    await provider.generate_text(TextRequest(prompt="a fox", title="Fox"), options or CallOptions(model="m"))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("refused"), ErrorClass.CONNECTION),
        (httpx.ReadError("connection reset by peer"), ErrorClass.CONNECTION),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), ErrorClass.CONNECTION),
        (httpx.ReadTimeout("timed out"), ErrorClass.TIMEOUT),
    ],
)
async def test_the_adapter_raises_only_provider_errors(exc: Exception, expected: ErrorClass) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    async with mock_client(fail) as client:
        with pytest.raises(ProviderError) as raised:
            await call_text(provider_over(client))
    assert raised.value.error_class == expected
    assert raised.value.__cause__ is exc


async def test_an_error_answer_is_classified_with_its_headers() -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "12"}, content=openai_error("rate_limit_exceeded"))

    async with mock_client(limited) as client:
        with pytest.raises(ProviderError) as raised:
            await call_text(provider_over(client))
    assert (raised.value.error_class, raised.value.status, raised.value.retry_after_s) == (
        ErrorClass.RATE_LIMITED,
        429,
        12.0,
    )


@pytest.mark.parametrize("key", ["sk-ünïcode", "sk-line\nbreak"])
def test_a_key_no_header_can_carry_is_refused_at_start_up(key: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        OpenAICompatibleProvider(name="bad", base_url="http://provider.test/v1", api_key=key)


# --- the requests sent ------------------------------------------------------------------------------


def png(width: int = 4, height: int = 3, kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buffer, kind)
    return buffer.getvalue()


def wav(frames: int = 800, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * frames)
    return buffer.getvalue()


class Recorder:
    """A MockTransport handler that keeps every request and answers like OpenAI would."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/chat/completions"):
            message = {"role": "assistant", "content": "# Fox\n\nA tale."}
            usage = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
            return httpx.Response(200, json={"choices": [{"message": message}], "usage": usage})
        if path.endswith("/audio/speech"):
            return httpx.Response(200, content=wav(), headers={"content-type": "audio/wav"})
        return httpx.Response(200, json={"data": [{"b64_json": base64.b64encode(png()).decode()}]})


async def test_requests_follow_openais_wire_format() -> None:
    recorder = Recorder()
    options = CallOptions(model="m-1", idempotency_key="work-1:route")
    async with mock_client(recorder) as client:
        provider = provider_over(client, api_key="sk-test")
        text = await provider.generate_text(TextRequest("a fox", "Fox", seed=3, max_tokens=50), options)
        image = await provider.generate_image(ImageRequest(prompt="a fox", title="Fox", size=256), options)
        edited = await provider.edit_image(
            ImageEditRequest(image=png(), prompt="blue sky", mask=png()), options
        )
        speech = await provider.synthesize_speech(SpeechRequest(text="Hello there"), options)
        await provider.aclose()
        assert not client.is_closed  # a shared client is its owner's to close

    chat, generation, edit, tts = recorder.requests
    assert [r.url.path for r in recorder.requests] == [
        "/v1/chat/completions",
        "/v1/images/generations",
        "/v1/images/edits",
        "/v1/audio/speech",
    ]
    for request in recorder.requests:
        assert request.headers["authorization"] == "Bearer sk-test"
        assert request.headers["idempotency-key"] == "work-1:route"
    sent = json.loads(chat.content)
    assert sent["model"] == "m-1"
    assert (sent["max_tokens"], sent["seed"]) == (50, 3)
    assert sent["messages"][0] == {"role": "system", "content": TextRequest("", "").system}
    assert sent["messages"][1]["role"] == "user"
    assert '"Fox"' in sent["messages"][1]["content"]
    assert "a fox" in sent["messages"][1]["content"]
    assert text.usage.units == {"input_tokens": 11, "output_tokens": 4}
    assert json.loads(generation.content) == {
        "model": "m-1",
        "prompt": "Fox: a fox",
        "size": "256x256",
        "n": 1,
        "response_format": "b64_json",
    }
    assert image.content_type == "image/png"
    assert image.meta == {"width": 4, "height": 3}
    assert edit.headers["content-type"].startswith("multipart/form-data")
    form = edit.content
    for part in (b'name="image"; filename="image.png"', b'name="mask"; filename="mask.png"', b"blue sky"):
        assert part in form
    assert b'name="response_format"\r\n\r\nb64_json' in form
    assert edited.usage.units == {"images": 1}
    assert json.loads(tts.content) == {
        "model": "m-1",
        "input": "Hello there",
        "voice": "alloy",
        "response_format": "wav",
    }
    assert speech.content_type == "audio/wav"
    assert speech.meta == {"duration_s": 0.1}
    assert speech.usage.units == {"characters": 11}


async def test_no_key_and_no_idempotency_key_send_no_headers() -> None:
    recorder = Recorder()
    async with mock_client(recorder) as client:
        await call_text(provider_over(client))
    assert "authorization" not in recorder.requests[0].headers
    assert "idempotency-key" not in recorder.requests[0].headers


# --- malformed answers ------------------------------------------------------------------------------


def chat(message: object, **extra: object) -> bytes:
    return json.dumps({"choices": [{"message": message, **extra}]}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": [{"message": ',
        b"\xff\xfe",
        b"[]",
        b"{}",
        b'{"choices": []}',
        b'{"choices": {"0": 1}}',
        b'{"choices": ["text"]}',
        chat("just a string"),
        chat({"role": "assistant"}),
        chat({"content": None}),
        chat({"content": "   "}),
        chat({"content": 42}),
    ],
)
def test_malformed_chat_answers(body: bytes) -> None:
    with pytest.raises(ProviderError) as raised:
        parse_chat_answer(body, "m")
    assert raised.value.error_class == ErrorClass.SERVER_ERROR
    assert raised.value.message.startswith(MALFORMED)


@pytest.mark.parametrize(
    "body",
    [
        chat({"content": "partial"}, finish_reason="content_filter"),
        chat({"content": None, "refusal": "I can't help with that."}),
    ],
)
def test_a_filtered_or_refused_chat_is_a_content_policy_error(body: bytes) -> None:
    with pytest.raises(ProviderError) as raised:
        parse_chat_answer(body, "m")
    assert raised.value.error_class == ErrorClass.CONTENT_POLICY


@pytest.mark.parametrize(
    ("usage", "units"),
    [
        (None, {}),
        ({"prompt_tokens": 3}, {"input_tokens": 3}),
        ({"prompt_tokens": True, "completion_tokens": "9"}, {}),
        ("lots", {}),
    ],
)
def test_chat_usage_is_read_leniently(usage: object, units: dict[str, float]) -> None:
    body = json.dumps({"choices": [{"message": {"content": "# T"}}], "usage": usage}).encode()
    assert parse_chat_answer(body, "m").usage.units == units


def images(b64: object) -> bytes:
    return json.dumps({"data": [{"b64_json": b64}]}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"data": []}',
        b'{"data": [{"url": "https://example.com/a.png"}]}',
        images(None),
        images("%%% not base64 %%%"),
        images(base64.b64encode(b"hello, not an image").decode()),
        images(base64.b64encode(b"\x89PNG\r\n\x1a\n truncated").decode()),
        images(base64.b64encode(b"GIF89a").decode()),
    ],
)
def test_malformed_image_answers(body: bytes) -> None:
    with pytest.raises(ProviderError) as raised:
        parse_image_answer(body, "m")
    assert raised.value.error_class == ErrorClass.SERVER_ERROR
    assert raised.value.message.startswith(MALFORMED)


@pytest.mark.parametrize(
    ("kind", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_image_types_come_from_the_bytes(kind: str, content_type: str) -> None:
    data = png(5, 7, kind)
    assert image_type(data) == content_type
    result = parse_image_answer(images(base64.b64encode(data).decode()), "m")
    assert (result.content_type, result.meta, result.usage.units) == (
        content_type,
        {"width": 5, "height": 7},
        {"images": 1},
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "audio/wav"),
        (b'{"error": "oops"}', "application/json"),
        (wav()[:30], "audio/wav"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "audio/wav"),
    ],
)
def test_malformed_speech_answers(body: bytes, content_type: str) -> None:
    with pytest.raises(ProviderError) as raised:
        parse_speech_answer(body, content_type, "m")
    assert raised.value.error_class == ErrorClass.SERVER_ERROR


def test_speech_in_another_audio_format_is_kept_with_its_type() -> None:
    result = parse_speech_answer(b"ID3\x03fake mp3", "audio/mpeg; charset=binary", "m")
    assert result.content_type == "audio/mpeg"


_JSON_KEYS = ["choices", "message", "content", "finish_reason", "refusal", "usage", "prompt_tokens", "data"]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from([*_JSON_KEYS, "b64_json"]), inner)
    ),
    max_leaves=20,
)


@given(body=st.binary(max_size=300) | _JSON.map(lambda value: json.dumps(value).encode()))
def test_parsers_raise_nothing_but_provider_errors(body: bytes) -> None:
    for parse in (
        lambda: parse_chat_answer(body, "m"),
        lambda: parse_image_answer(body, "m"),
        lambda: parse_speech_answer(body, "audio/x-unknown", "m"),
    ):
        with contextlib.suppress(ProviderError):
            parse()
