"""GET /v1/presets: the export presets in force (the presets file, read again when it changes)."""

from __future__ import annotations

from fastapi import APIRouter

from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.schemas import PresetOut, Presets

router = APIRouter(prefix="/v1/presets", tags=["exports"])


@router.get(
    "",
    summary="Export presets",
    description="What a job of kind `export` may name in `input.presets`. Defined in "
    "ATELIER_PRESETS_FILE (TOML or JSON), read again when it changes.",
)
async def list_presets(deps: DepsDep) -> Presets:
    return Presets(
        presets=[
            PresetOut(
                name=name,
                description=p.description,
                format=p.format,
                long_edge=p.long_edge,
                quality=p.quality,
                png_when_transparent=p.png_when_transparent,
                upscale=p.upscale,
            )
            for name, p in sorted(deps.presets.presets().items())
        ]
    )
