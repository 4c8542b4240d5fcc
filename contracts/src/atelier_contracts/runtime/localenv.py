"""The settings ``make up`` leaves for commands run beside its stack.

``atelier-up`` writes ``<state dir>/stack.env`` (``ATELIER_NATS_URL``, ``ATELIER_DATABASE_URL``,
``ATELIER_BLOB_DIR``). A command run from the checkout with none of them set (``atelier-orchestrator
rebuild``, ``migrate``) reads its defaults from there; a variable that is set always wins, and where
there is no such file (a deployment) nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

LOCAL_ENV_FILE = "stack.env"


def with_local_stack(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` over the defaults of the local stack, if there is one."""
    path = Path(env.get("ATELIER_STATE_DIR", ".state")) / LOCAL_ENV_FILE
    try:
        text = path.read_text()
    except OSError:
        return dict(env)
    defaults = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("ATELIER_") and not line.startswith("#"):
            defaults[name.strip()] = value.strip()
    return {**defaults, **env}
