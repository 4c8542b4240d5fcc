"""Adding a provider is one module and one config entry: this module is such a provider."""

from __future__ import annotations

import pytest

from atelier_contracts.work import WorkItem
from atelier_provider_router.adapters.registry import build_providers
from atelier_provider_router.app.matrix import MatrixError, ProviderConfig, parse
from atelier_provider_router.app.ports import Adapter, CallOptions, TextRequest, TextResult
from atelier_provider_router.app.router import Router


class Echo:
    """A provider that answers with its prompt, in the voice its config's options give it."""

    capabilities = frozenset({"text.generate"})

    def __init__(self, name: str, config: ProviderConfig) -> None:
        self.name = name
        self.voice = str(config.options.get("voice", "plain"))

    async def generate_text(self, request: TextRequest, options: CallOptions) -> TextResult:
        return TextResult(text=f"{self.voice}: {request.prompt}", model=options.model)


def _check(config: ProviderConfig) -> list[str]:
    return [] if config.options.get("voice") != "shout" else ["options.voice 'shout' is too loud"]


ADAPTER = Adapter(capabilities=Echo.capabilities, build=Echo, check=_check)

MATRIX = """
[providers.echo]
adapter = "tests.unit.test_adapter_plugins:ADAPTER"
options = {{ voice = "{voice}" }}
[[capabilities."{capability}"]]
provider = "echo"
model = "echo-1"
"""
WARM = MATRIX.format(voice="warm", capability="text.generate")


async def test_a_provider_module_named_in_the_matrix_is_loaded_built_and_routed_to() -> None:
    matrix = parse(MATRIX.format(voice="warm", capability="text.generate"))
    router = Router(matrix, build_providers(matrix))
    work = WorkItem(work_id="j.s.1", job_id="j", tenant="t", step="s", attempt=1, capability="text.generate")
    request = TextRequest(prompt="hello", title="t")
    routed = await router.call("text.generate", work, lambda p, o: p.generate_text(request, o))
    assert routed.result.text == "warm: hello"
    assert routed.route.key == "echo/echo-1"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (MATRIX.format(voice="shout", capability="text.generate"), "options.voice 'shout' is too loud"),
        (MATRIX.format(voice="warm", capability="tts"), "adapter cannot do tts"),
        (
            WARM.replace("tests.unit.test_adapter_plugins:ADAPTER", "telepathy"),
            "unknown adapter 'telepathy'",
        ),
        (WARM.replace(":ADAPTER", ":Echo"), "is not an Adapter"),
        (WARM.replace("tests.unit.test_adapter_plugins", "tests.unit.nowhere"), "cannot load"),
    ],
)
def test_what_is_wrong_with_an_adapter_entry_is_said_at_load_time(text: str, reason: str) -> None:
    with pytest.raises(MatrixError, match=reason):
        parse(text, "p.toml")


def test_the_built_in_openai_adapter_checks_its_entry() -> None:
    with pytest.raises(MatrixError, match="an openai adapter needs base_url"):
        parse('[providers.x]\nadapter = "openai"\n', "p.toml")
