"""``atelier-export``: serves the ``export`` work pool."""

from __future__ import annotations

from nats.aio.client import Client

from atelier_contracts.blobstore import Blobs
from atelier_contracts.runtime.worker_main import WorkerSettings, WorkerSetup, main_for
from atelier_export.app.handlers import handlers


def setup(blobs: Blobs, _settings: WorkerSettings, _nc: Client) -> WorkerSetup:
    return WorkerSetup(handlers=handlers(blobs))


def main() -> None:
    main_for("export", "atelier-export", "export", 8084, setup)


if __name__ == "__main__":
    main()
