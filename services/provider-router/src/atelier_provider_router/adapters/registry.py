"""Builds the provider adapters a capability matrix names."""

from __future__ import annotations

import os

from atelier_provider_router.adapters.offline.provider import OfflineProvider
from atelier_provider_router.app.matrix import Matrix
from atelier_provider_router.app.ports import Provider


def build_providers(matrix: Matrix) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for name, config in matrix.providers.items():
        if config.adapter == "offline":
            providers[name] = OfflineProvider()
        else:
            from atelier_provider_router.adapters.openai_compat import OpenAICompatibleProvider

            key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
            providers[name] = OpenAICompatibleProvider(name=name, base_url=config.base_url, api_key=key)
    return providers
