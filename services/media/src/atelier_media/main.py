"""``atelier-media``: serves the ``media`` work pool and answers upload ingests."""

from __future__ import annotations

from nats.aio.client import Client

from atelier_contracts.blobstore import Blobs
from atelier_contracts.presets import PresetRegistry
from atelier_contracts.runtime.worker_main import WorkerSettings, WorkerSetup, main_for
from atelier_media.adapters.variants import KvVariantCache
from atelier_media.app.handlers import handlers
from atelier_media.app.ingest import IngestResponder
from atelier_media.domain.sanitize import Limits


def setup(blobs: Blobs, _settings: WorkerSettings, nc: Client) -> WorkerSetup:
    ingest = IngestResponder(nc, blobs, Limits.from_env())
    return WorkerSetup(
        handlers=handlers(blobs, PresetRegistry.from_env(), KvVariantCache(nc.jetstream())),
        background=[ingest.run],
    )


def main() -> None:
    main_for("media", "atelier-media", "media", 8083, setup)


if __name__ == "__main__":
    main()
