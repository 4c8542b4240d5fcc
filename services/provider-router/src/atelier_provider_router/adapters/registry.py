"""Builds the provider adapters a capability matrix names."""

from __future__ import annotations

from atelier_provider_router.app.matrix import Matrix
from atelier_provider_router.app.ports import Provider
from atelier_provider_router.plugins import adapter


def build_providers(matrix: Matrix) -> dict[str, Provider]:
    return {name: adapter(config.adapter).build(name, config) for name, config in matrix.providers.items()}
