"""``GET /v1/styles``: the style presets an episode (or a project) may name."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter

from atelier_contracts.styles import STYLES
from atelier_gateway.entrypoints.problems import problem_responses

router = APIRouter(prefix="/v1/styles", tags=["projects"])


@router.get(
    "",
    summary="Style presets: how each shapes prompts and the offline look",
    responses=problem_responses(500),
)
async def styles() -> dict[str, Any]:
    return {"styles": {name: msgspec.to_builtins(s) for name, s in sorted(STYLES.current().items())}}
