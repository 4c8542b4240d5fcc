"""The five services as processes around one nats-server, for ``make up`` and end-to-end tests."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from atelier_contracts.runtime.localenv import LOCAL_ENV_FILE
from atelier_devstack.natsserver import NatsServer, free_port, start_nats

# name -> (console script, argv, env var holding its HTTP port)
SERVICES: dict[str, tuple[list[str], str]] = {
    "orchestrator": (["atelier-orchestrator", "run"], "ATELIER_ORCHESTRATOR_OPS_PORT"),
    "provider-router": (["atelier-provider-router"], "ATELIER_PROVIDER_ROUTER_OPS_PORT"),
    "media": (["atelier-media"], "ATELIER_MEDIA_OPS_PORT"),
    "export": (["atelier-export"], "ATELIER_EXPORT_OPS_PORT"),
    "gateway": (["atelier-gateway"], "ATELIER_HTTP_PORT"),
}
START_ORDER = ["orchestrator", "provider-router", "media", "export", "gateway"]


def _bin(script: str) -> str:
    return str(Path(sys.executable).parent / script)


@dataclass
class Stack:
    """All of Atelier on one machine, its state under ``state_dir``."""

    state_dir: Path
    ports: dict[str, int]
    nats_port: int
    """0 until started: the server chooses a free one."""
    extra_env: dict[str, str] = field(default_factory=dict)
    nats: NatsServer | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def with_free_ports(cls, state_dir: Path, **extra_env: str) -> Stack:
        return cls(state_dir, {name: free_port() for name in SERVICES}, 0, dict(extra_env))

    @property
    def database_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.state_dir / 'atelier.db'}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def url_of(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @staticmethod
    def service_of(instance: str) -> str:
        """``orchestrator#2`` is the second replica of ``orchestrator``."""
        return instance.split("#", 1)[0]

    def add_replica(self, service: str, timeout: float = 60.0) -> str:
        """Start one more process of ``service`` (sharing its durable consumers); its name."""
        n = 2
        while f"{service}#{n}" in self.ports:
            n += 1
        instance = f"{service}#{n}"
        self.ports[instance] = free_port()
        self.start_service(instance)
        self.wait_healthy(instance, timeout)
        return instance

    def env(self) -> dict[str, str]:
        secret_file = self.state_dir / "url-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_hex(32))
        env = {
            **os.environ,
            "ATELIER_NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
            "ATELIER_DATABASE_URL": self.database_url,
            "ATELIER_BLOB_DIR": str(self.state_dir / "blobs"),
            "ATELIER_URL_SECRET": secret_file.read_text().strip(),
            "ATELIER_ALLOW_SIMULATE": "1",  # fault injection, to watch retries (compose.yaml: off)
            "PYTHONUNBUFFERED": "1",
        }
        env.update({port_env: str(self.ports[name]) for name, (_, port_env) in SERVICES.items()})
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        self.nats = start_nats(self.state_dir / "nats", self.nats_port, self.state_dir / "logs" / "nats.log")
        self.nats_port = self.nats.port  # 0: the one it chose
        self.write_local_env()
        self.migrate()
        for name in START_ORDER:
            self.start_service(name)
        for name in START_ORDER:
            self.wait_healthy(name, timeout)

    def write_local_env(self) -> None:
        """Where this stack's NATS and database are, for commands run beside it without an
        environment (``atelier-orchestrator rebuild`` from the checkout: ``runtime/localenv.py``)."""
        lines = [
            f"ATELIER_NATS_URL=nats://127.0.0.1:{self.nats_port}",
            f"ATELIER_DATABASE_URL={self.database_url}",
            f"ATELIER_BLOB_DIR={self.state_dir / 'blobs'}",
        ]
        (self.state_dir / LOCAL_ENV_FILE).write_text("\n".join(lines) + "\n")

    def supervise(self) -> list[str]:
        """Start again whatever died, nats-server first (on its port, with its store); the names
        of what was restarted."""
        restarted = []
        if self.nats is not None and (self.nats.proc is None or self.nats.proc.poll() is not None):
            self.nats.start()
            restarted.append("nats-server")
        for name in START_ORDER:
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                self.start_service(name)
                restarted.append(name)
        return restarted

    def migrate(self) -> None:
        subprocess.run([_bin("atelier-orchestrator"), "migrate"], env=self.env(), check=True)

    def start_service(self, name: str) -> subprocess.Popen[bytes]:
        argv, port_env = SERVICES[self.service_of(name)]
        with (self.state_dir / "logs" / f"{name.replace('#', '-')}.log").open("ab") as log:
            proc = subprocess.Popen(
                [_bin(argv[0]), *argv[1:]],
                env={**self.env(), port_env: str(self.ports[name])},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def wait_healthy(self, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.url_of(name)}/ready"
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.state_dir}/logs/{name}.log"
                )
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready after {timeout}s; see {self.state_dir}/logs/{name}.log")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(30)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        self.start_service(name)
        self.wait_healthy(name, timeout)

    def stop(self, timeout: float = 15.0) -> None:
        order = {name: i for i, name in enumerate(START_ORDER)}
        for name in sorted(self.procs, key=lambda n: -order[self.service_of(n)]):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()
        if self.nats:
            self.nats.stop()
