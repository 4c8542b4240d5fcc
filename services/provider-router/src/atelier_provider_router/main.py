"""``atelier-provider-router``: serves the ``ai`` work pool."""

from __future__ import annotations

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.runtime.worker_main import WorkerSettings, main_for
from atelier_contracts.runtime.workpool import WorkHandler
from atelier_provider_router.adapters.offline.provider import OfflineProvider
from atelier_provider_router.app.capabilities import handlers


def build_handlers(blobs: FileBlobStore, _settings: WorkerSettings) -> dict[str, WorkHandler]:
    return handlers(OfflineProvider(), blobs)


def main() -> None:
    main_for("provider-router", "atelier-provider-router", "ai", 8082, build_handlers)


if __name__ == "__main__":
    main()
