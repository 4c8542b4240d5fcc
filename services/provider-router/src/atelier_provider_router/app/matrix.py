"""The capability matrix: which providers and models serve each capability, in what order,
at what price and within what limits. Loaded from TOML, validated with clear messages.

```toml
strategy = "prefer_quality"            # config order; or "prefer_latency" (observed, EWMA)

[providers.openai]
adapter = "openai"                     # or "offline"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"

[[capabilities."text.generate"]]
provider = "openai"
model = "gpt-4o-mini"
timeout_s = 30
price = { input_token = 0.00000015, output_token = 0.0000006 }
```
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from atelier_contracts.common import Usage
from atelier_contracts.subjects import CAPABILITY_POOLS

if TYPE_CHECKING:
    from atelier_provider_router.app.ports import Adapter

# Usage units (what adapters report) → the price field that bills them.
PRICED_UNITS = {
    "input_tokens": "input_token",
    "output_tokens": "output_token",
    "images": "image",
    "megapixels": "megapixel",
    "audio_seconds": "audio_second",
    "characters": "character",
    "video_seconds": "video_second",
}


class MatrixError(ValueError):
    """The configuration is not usable; the message says where and why."""


class Price(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """US dollars per unit."""

    input_token: float = 0.0
    output_token: float = 0.0
    image: float = 0.0
    megapixel: float = 0.0
    audio_second: float = 0.0
    character: float = 0.0
    video_second: float = 0.0

    def cost(self, units: dict[str, float]) -> float:
        total = sum(float(getattr(self, PRICED_UNITS[u])) * n for u, n in units.items() if u in PRICED_UNITS)
        return round(total, 8)


class Route(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One provider and model for a capability, with its price and limits."""

    provider: str
    model: str
    timeout_s: float = 60.0
    price: Price = Price()
    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.model}"

    def priced(self, usage: Usage) -> Usage:
        return Usage(units=usage.units, cost_usd=self.price.cost(usage.units))


class ProviderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    adapter: str
    """A built-in (``offline``, ``openai``), a registered plugin, or ``module:ADAPTER``."""
    base_url: str = ""
    api_key_env: str = ""
    cooldown_s: float = 30.0
    """How long a tripped provider rests when the provider gave no Retry-After."""
    failure_rate: float = 0.5
    """Trip when this share of the recent calls failed..."""
    min_calls: int = 5
    """...and at least this many calls were made."""
    window: int = 20
    """How many recent calls the failure rate is taken over."""
    options: dict[str, Any] = {}
    """Whatever else an adapter needs (deployment names, regions, ...); the adapter checks it."""


class Matrix(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    strategy: Literal["prefer_quality", "prefer_latency"] = "prefer_quality"
    providers: dict[str, ProviderConfig] = {}
    capabilities: dict[str, list[Route]] = {}

    def routes(self, capability: str) -> list[Route]:
        return list(self.capabilities.get(capability, []))


def _adapter(name: str) -> Adapter:
    """An adapter by its configured name (``LookupError`` for an unknown one)."""
    # Imported here: the registry lives outside app/ and loads the adapters' modules.
    from atelier_provider_router.plugins import adapter

    return adapter(name)


def parse(text: str, source: str = "<config>") -> Matrix:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(f"{source}: not valid TOML: {exc}") from exc
    try:
        matrix = msgspec.convert(raw, Matrix)
    except msgspec.ValidationError as exc:
        raise MatrixError(f"{source}: {exc}") from exc
    validate(matrix, source)
    return matrix


def validate(matrix: Matrix, source: str) -> None:
    problems: list[str] = []
    can: dict[str, frozenset[str]] = {}
    for name, provider in matrix.providers.items():
        try:
            found = _adapter(provider.adapter)
        except LookupError as exc:
            problems.append(f"provider {name!r}: {exc}")
        else:
            can[name] = found.capabilities
            problems += [f"provider {name!r}: {problem}" for problem in found.check(provider)]
        if provider.api_key_env and not os.environ.get(provider.api_key_env):
            problems.append(f"provider {name!r}: environment variable {provider.api_key_env} is not set")
        if not 0 < provider.failure_rate <= 1:
            problems.append(f"provider {name!r}: failure_rate must be in (0, 1]")
    for capability, routes in matrix.capabilities.items():
        if CAPABILITY_POOLS.get(capability) != "ai":
            problems.append(f"capability {capability!r} is not one the provider router serves")
        if not routes:
            problems.append(f"capability {capability!r} has no providers")
        for i, route in enumerate(routes):
            where = f"capabilities.{capability!r}[{i}] ({route.key})"
            serving = matrix.providers.get(route.provider)
            if serving is None:
                problems.append(f"{where}: unknown provider {route.provider!r}")
            elif route.provider in can and capability not in can[route.provider]:
                problems.append(f"{where}: the {serving.adapter} adapter cannot do {capability}")
            if route.timeout_s <= 0:
                problems.append(f"{where}: timeout_s must be positive")
            for limit in ("rpm", "tpm", "concurrency"):
                value = getattr(route, limit)
                if value is not None and value <= 0:
                    problems.append(f"{where}: {limit} must be positive")
    if problems:
        raise MatrixError(f"{source}: " + "; ".join(problems))


DEFAULT_FILE = Path(__file__).resolve().parent.parent / "providers.default.toml"


def load(path: Path | None) -> Matrix:
    path = path or DEFAULT_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise MatrixError(f"{path}: cannot read: {exc}") from exc
    return parse(text, str(path))
