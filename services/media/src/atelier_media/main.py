"""``atelier-media``: serves the ``media`` work pool."""

from __future__ import annotations

from nats.aio.client import Client

from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.runtime.worker_main import WorkerSettings, WorkerSetup, main_for
from atelier_media.app.handlers import handlers


def setup(blobs: FileBlobStore, _settings: WorkerSettings, _nc: Client) -> WorkerSetup:
    return WorkerSetup(handlers=handlers(blobs))


def main() -> None:
    main_for("media", "atelier-media", "media", 8083, setup)


if __name__ == "__main__":
    main()
