"""A large package streamed over HTTP: MB/s and the gateway's peak memory, beside a raw file copy.

python -m bench.package    # or: make bench. BENCH_PACKAGE_MB (default 2048) total size,
                           # BENCH_PACKAGE_FILES (default 8) files it is split into

It starts the platform in a temp directory, records a job whose steps made that many files (as
the projector records a finished job), and downloads ``GET /v1/jobs/{id}/package`` over a raw
socket, reading and discarding. The floor beside it: reading the same files from disk in this
process (page cache warm), the most any server could send them.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import sqlalchemy as sa

from atelier_contracts import ids
from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.common import Artifact
from atelier_contracts.readmodel import jobs, make_engine
from atelier_contracts.snapshot import JobView, StepView
from atelier_devstack.stack import Stack

TOTAL_MB = int(os.environ.get("BENCH_PACKAGE_MB", "2048"))
FILES = int(os.environ.get("BENCH_PACKAGE_FILES", "8"))
CHUNK = 1 << 20


def make_files(blobs: FileBlobStore, scratch: Path) -> list[Artifact]:
    """``FILES`` files of incompressible bytes (as video is), ``TOTAL_MB`` together."""
    each = TOTAL_MB * (1 << 20) // FILES
    made = []
    for i in range(FILES):
        path = scratch / f"clip{i}.bin"
        with path.open("wb") as f:
            seed = os.urandom(CHUNK)
            for block in range(each // CHUNK):
                f.write(seed[block % 251 :] + seed[: block % 251])  # distinct blocks, cheaply
        made.append(Artifact(name="clip", kind="video", blob=blobs.put_file(path, "video/mp4")))
        path.unlink()
    return made


async def record(database_url: str, artifacts: list[Artifact]) -> str:
    now = datetime.now(UTC)
    steps = {
        f"shot_{i:03d}": StepView(name=f"shot_{i:03d}", capability="x", status="succeeded", outputs=[a])
        for i, a in enumerate(artifacts)
    }
    job = JobView(
        id=ids.new_job_id(), tenant="default", kind="task", title="big", input={"prompt": "p"},
        status="succeeded", steps=steps, created_at=now, updated_at=now,
    )  # fmt: skip
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            row = {
                "id": job.id, "tenant": job.tenant, "kind": job.kind, "title": job.title,
                "status": job.status, "priority": 0, "tags": [], "created_at": now, "updated_at": now,
                "last_seq": 1, "snapshot": msgspec.json.encode(job).decode(),
            }  # fmt: skip
            await conn.execute(sa.insert(jobs).values(**row))
    finally:
        await engine.dispose()
    return job.id


def download(port: int, path: str) -> tuple[int, float]:
    """Bytes of the body and seconds from the request to its last byte."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        started = time.perf_counter()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        header, body = head.split(b"\r\n\r\n", 1)
        if not header.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(header.decode(errors="replace"))
        received = len(body)
        buf = bytearray(CHUNK)
        while n := s.recv_into(buf):
            received += n
        return received, time.perf_counter() - started


def read_all(paths: list[Path]) -> float:
    started = time.perf_counter()
    for p in paths:
        with p.open("rb") as f:
            while f.read(CHUNK):
                pass
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    tmp = Path(tempfile.mkdtemp(prefix="atelier-bench-package-"))
    stack = Stack.with_free_ports(tmp / "state", ATELIER_LOG_LEVEL="WARNING")
    try:
        stack.start()
        blobs = FileBlobStore(stack.state_dir / "blobs")
        artifacts = make_files(blobs, tmp)
        job_id = asyncio.run(record(stack.database_url, artifacts))
        paths = [blobs.path_of(a.blob.key) for a in artifacts]
        floor = read_all(paths)
        gateway = stack.procs["gateway"].pid
        before = peak_rss_mb(gateway)
        size, took = download(stack.ports["gateway"], f"/v1/jobs/{job_id}/package")
        mb = size / (1 << 20)
        print(f"package: {FILES} files, {mb:,.0f} MB")
        print(f"reading the files from disk in one process: {mb / floor:,.0f} MB/s  1.00")
        print(
            f"GET /v1/jobs/{{id}}/package: {mb / took:,.0f} MB/s  {floor / took:.2f}x the read; "
            f"gateway peak RSS {peak_rss_mb(gateway):.0f} MB (before the download {before:.0f} MB)"
        )
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
