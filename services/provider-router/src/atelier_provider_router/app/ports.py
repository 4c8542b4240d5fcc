"""The provider port: one request and one result type per capability, so fields can be added.

An adapter implements the methods for the capabilities it lists; the router picks adapters
per capability. Every call has a timeout set by the router.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from atelier_contracts.common import Usage


@dataclass(frozen=True)
class TextRequest:
    prompt: str
    title: str
    seed: int = 0


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


@dataclass(frozen=True)
class SpeechRequest:
    text: str
    seed: int = 0
    voice: str = "default"


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

    async def generate_text(self, request: TextRequest) -> TextResult: ...

    async def generate_image(self, request: ImageRequest) -> MediaResult: ...

    async def synthesize_speech(self, request: SpeechRequest) -> MediaResult: ...
