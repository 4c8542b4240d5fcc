"""``atelier-media``: serves the ``media`` work pool."""

from __future__ import annotations

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.runtime.worker_main import WorkerSettings, main_for
from atelier_contracts.runtime.workpool import WorkHandler
from atelier_media.app.handlers import handlers


def build_handlers(blobs: FileBlobStore, _settings: WorkerSettings) -> dict[str, WorkHandler]:
    return handlers(blobs)


def main() -> None:
    main_for("media", "atelier-media", "media", 8083, build_handlers)


if __name__ == "__main__":
    main()
