"""Blob stores beside each other: the filesystem store and the JetStream object store (nats-py).

python -m bench.blobstore  # BENCH_BLOB_N (default 20) objects per size,
                           # BENCH_BLOB_SIZES_KIB (default 256,4096,65536) their sizes

Puts and gets of 256 KiB, 4 MiB and 64 MiB of random bytes through nats-py's object store on a
nats-server from the wheel, beside ``FileBlobStore`` puts on the same disk. What decided which
shared store the platform takes (``docs/media.md``, "A blob store every machine can reach").
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

import nats
from nats.js.api import ObjectStoreConfig, StorageType

from atelier_contracts.blobstore import FileBlobStore
from atelier_devstack.natsserver import start_nats

N = int(os.environ.get("BENCH_BLOB_N", "20"))
SIZES = tuple(int(k) << 10 for k in os.environ.get("BENCH_BLOB_SIZES_KIB", "256,4096,65536").split(","))


async def measure(url: str, scratch: Path) -> None:
    nc = await nats.connect(url)
    try:
        store = await nc.jetstream().create_object_store(
            "BENCH_BLOBS", config=ObjectStoreConfig(storage=StorageType.FILE)
        )
        files = FileBlobStore(scratch / "blobs")
        for size in SIZES:
            n = max(2, min(N, (256 << 20) // size))
            data = os.urandom(size)
            started = time.perf_counter()
            for i in range(n):
                await store.put(f"o{size}-{i}", data)
            put = n * size / (time.perf_counter() - started) / 1e6
            started = time.perf_counter()
            for i in range(n):
                await store.get(f"o{size}-{i}")
            get = n * size / (time.perf_counter() - started) / 1e6
            started = time.perf_counter()
            for i in range(n):
                files.put_bytes(data + i.to_bytes(4, "big"), "application/octet-stream")
            file_put = n * size / (time.perf_counter() - started) / 1e6
            started = time.perf_counter()
            for key, _ in list(files.stored())[-n:]:
                files.read_bytes(key)
            file_get = n * size / (time.perf_counter() - started) / 1e6
            print(
                f"{size >> 10:,} KiB x {n}: object store put {put:,.0f} MB/s, get {get:,.0f} MB/s; "
                f"filesystem put {file_put:,.0f} MB/s, get {file_get:,.0f} MB/s"
            )
    finally:
        await nc.close()


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="atelier-bench-blobs-") as tmp:
        server = start_nats(Path(tmp) / "nats")
        try:
            asyncio.run(measure(server.url, Path(tmp)))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
