"""The provider port: one request and one result type per capability, so fields can be added.

An adapter implements the methods for the capabilities it lists and raises :class:`ProviderError`
with an :class:`ErrorClass` for every failure, so the router can decide — retry elsewhere, wait,
or fail fast — without knowing the provider's wire format. The router sets each call's model,
timeout and idempotency key.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from atelier_contracts.common import Usage
from atelier_contracts.studio import Recipe

if TYPE_CHECKING:
    from atelier_provider_router.app.matrix import ProviderConfig


class ErrorClass(enum.StrEnum):
    RATE_LIMITED = "rate_limited"
    """429: try another provider; this one cools down (Retry-After when given)."""
    SERVER_ERROR = "server_error"
    """5xx or a malformed answer: try another provider."""
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    """Refused, reset or unreachable."""
    CONTENT_POLICY = "content_policy"
    """The provider refuses the content: no failover, ``prompt_invalid``."""
    INVALID_REQUEST = "invalid_request"
    """A 400 about the input: no failover, ``prompt_invalid``."""
    CONTEXT_TOO_LONG = "context_too_long"
    """The input is too long for this model: another model may take it."""
    AUTH = "auth"
    """401/403: this provider is taken out until its credentials change."""


@dataclass
class ProviderError(Exception):
    """A failed provider call, classified (not frozen: Python sets attributes on raised exceptions)."""

    error_class: ErrorClass
    message: str
    status: int | None = None
    retry_after_s: float | None = None

    def __str__(self) -> str:
        status = f" {self.status}" if self.status else ""
        return f"{self.error_class}{status}: {self.message}"


@dataclass(frozen=True)
class CallOptions:
    """What the router decides for one call."""

    model: str
    timeout_s: float = 60.0
    idempotency_key: str = ""
    """Sent where the provider's API accepts one, so a retry after a lost reply is not billed twice."""


SHOTS_ASK = (  # what a chat model is asked for a shot list, before the script
    'Break this script into shots. Answer JSON: {"shots": [{"description": what the shot shows, '
    '"duration_s": seconds (0.5-30), "line": the dialogue or narration spoken over it, or "", '
    '"move": one of zoom_in, zoom_out, pan_left, pan_right, pan_up, pan_down, static}]}, one shot '
    "per beat of the script, in order.\n\nScript:\n"
)


@dataclass(frozen=True)
class TextRequest:
    prompt: str
    title: str
    seed: int = 0
    system: str = "You write warm, vivid children's stories in Markdown, starting with '# ' and the title."
    max_tokens: int = 1200
    items: int = 0
    """Above 0: a list of this many items, one per line, instead of prose."""
    shots: bool = False
    """A shot list of the prompt (a script) as JSON, instead of prose (``SHOTS_ASK`` says how)."""


@dataclass(frozen=True)
class TextResult:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    title: str
    seed: int = 0
    size: int = 1024
    look: str = "plain"
    """The offline painter's finish (a style's: cel, soft, sketch, ink); remote models read the prompt."""


@dataclass(frozen=True)
class ImageEditRequest:
    """Edit an image (e.g. replace its background) as the prompt says; ``mask`` is optional PNG."""

    image: bytes
    prompt: str
    mask: bytes | None = None
    size: int = 1024
    recipe: Recipe | None = None
    """A studio edit's whole look (``atelier_contracts.studio``): the offline editor renders it;
    a remote model is asked by the prompt, with the mask."""


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    seed: int = 0
    voice: str = "default"


@dataclass(frozen=True)
class VideoRequest:
    """A clip from a still: the camera's move over it, for ``duration_s`` at ``fps``.

    A remote video API's call may run for minutes (submitted, polled, cancelled when the work is):
    the route's ``timeout_s`` bounds it, and the work pool keeps the work item in progress."""

    image: bytes
    prompt: str = ""
    duration_s: float = 4.0
    fps: int = 24
    width: int = 640
    height: int = 360
    move: str = "zoom_in"
    seed: int = 0


@dataclass(frozen=True)
class MediaResult:
    """Bytes a provider made (an image, a sound) and their content type."""

    data: bytes
    content_type: str
    model: str
    meta: dict[str, object] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)


class Provider(Protocol):
    name: str
    capabilities: frozenset[str]

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult: ...

    async def generate_image(self, request: ImageRequest, options: CallOptions) -> MediaResult: ...

    async def edit_image(self, request: ImageEditRequest, options: CallOptions) -> MediaResult: ...

    async def synthesize_speech(self, request: SpeechRequest, options: CallOptions) -> MediaResult: ...

    async def image_to_video(self, request: VideoRequest, options: CallOptions) -> MediaResult: ...


@dataclass(frozen=True)
class Adapter:
    """A kind of provider: what it can do and how to make one from its ``[providers.<name>]``
    entry. Each adapter module exposes one as ``ADAPTER``; see :mod:`atelier_provider_router.plugins`."""

    capabilities: frozenset[str]
    build: Callable[[str, ProviderConfig], Provider]
    """``(name, config) -> provider``."""
    check: Callable[[ProviderConfig], list[str]] = lambda config: []
    """What is wrong with a ``[providers.<name>]`` entry, checked when the matrix is loaded."""
