"""Provider adapters are plugins: adding a provider is one module and one config entry.

A module exposes ``ADAPTER = Adapter(capabilities=..., build=...)`` (see ``app.ports.Adapter``).
A matrix's ``[providers.<name>] adapter = "..."`` names it in one of three ways:

- a built-in name: ``offline``, ``openai``;
- a name an installed package registers in the entry-point group ``atelier.provider_adapters``
  (``[project.entry-points."atelier.provider_adapters"] acme = "acme_atelier.provider:ADAPTER"``);
- an import path, ``package.module:ADAPTER``, for a module on the path and nothing else.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

from atelier_provider_router.app.ports import Adapter

GROUP = "atelier.provider_adapters"
BUILTIN = {
    "offline": "atelier_provider_router.adapters.offline.provider:ADAPTER",
    "openai": "atelier_provider_router.adapters.openai_compat:ADAPTER",
}


class UnknownAdapter(LookupError):
    pass


@functools.cache
def registered() -> dict[str, str]:
    """Adapter names → ``module:attribute``: the built-ins and those of installed packages."""
    found = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    return {**found, **BUILTIN}  # a package cannot shadow a built-in name


@functools.cache
def adapter(name: str) -> Adapter:
    target = registered().get(name, name)
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise UnknownAdapter(
            f"unknown adapter {name!r} (known: {', '.join(sorted(registered()))}; or module:ADAPTER)"
        )
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UnknownAdapter(f"adapter {name!r}: cannot load {target}: {exc}") from exc
    if not isinstance(found, Adapter):
        raise UnknownAdapter(f"adapter {name!r}: {target} is not an Adapter")
    return found
