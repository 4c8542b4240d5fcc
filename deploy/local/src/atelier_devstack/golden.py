"""``atelier eval golden``: the studio's golden set through a running platform, as a CSV.

Each case is a procedural product photo (``products``) with its standard chip and refinements.
A case uploads the photo and a logo, starts a studio session, asks for an edit with four
candidates, lets a deterministic judge pick one, adopts it, refines it, and measures on the final
image how well the session's look held: the key light's colour temperature and direction read
back from the pixels against the look, and how far the logo moved from the round that placed it.

The summary line gives the P95 first-image latency (the edit request to its first candidate's
success), the failure rate, the fallback success rate (of the candidates whose first provider
failed, the share another provider delivered) and the top-1 adoption rate (how often the judge
picks the first candidate shown).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import msgspec
from PIL import Image, ImageFilter, ImageStat

from atelier_contracts.studio import Recipe
from atelier_devstack import products
from atelier_provider_router import studio_image  # the studio's own reading of a result

OFFLINE_MODEL = "offline-studio-1"


@dataclass(frozen=True)
class Case:
    product: str
    chip: str
    refines: tuple[str, ...]
    prompt: str = ""


_CHIPS = ("white-soft-shadow", "wood-table", "soft-natural-light", "marble-luxe")
_REFINES = (
    ("warmer light", "logo a little lower"),
    ("light from the right", "more saturated"),  # no edit candidate is lit from the right
    ("cooler light", "logo a little higher"),
    ("softer shadow", "warmer light"),
)
CASES: tuple[Case, ...] = tuple(
    Case(product=name, chip=_CHIPS[i % len(_CHIPS)], refines=_REFINES[i % len(_REFINES)])
    for i, name in enumerate(sorted(products.PRODUCTS))
)
"""Every product of the set, each with a chip and two refinements (the "standard prompts")."""


@dataclass
class Row:
    case: str
    chip: str
    ok: bool = False
    error: str = ""
    first_image_s: float = 0.0
    edit_s: float = 0.0
    total_s: float = 0.0
    candidates: int = 0
    fell_back: int = 0
    """Candidates whose first provider failed and another made them."""
    failed_steps: int = 0
    judge_pick: int = 0
    """1-based: the candidate the judge adopted."""
    kelvin_error: float | None = None
    direction_error_deg: float | None = None
    logo_drift_px: float | None = None
    final_model: str = ""


def judge(images: Sequence[Image.Image]) -> int:
    """The candidate a deterministic judge adopts (0-based): the best exposed and crispest, by
    its pixels alone (mean brightness near 55 %, then edge energy)."""

    def score(img: Image.Image) -> float:
        small = img.convert("L").resize((256, 256))
        exposure = 1.0 - abs(ImageStat.Stat(small).mean[0] / 255 - 0.55)
        edges = ImageStat.Stat(small.filter(ImageFilter.FIND_EDGES)).mean[0] / 255
        return round(exposure, 3) * 10 + edges

    scores = [score(i) for i in images]
    return scores.index(max(scores))


class Studio:
    """The few calls of the studio API the golden run makes."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def upload(self, name: str, data: bytes) -> dict[str, Any]:
        r = self.client.post("/v1/uploads", files={"file": (name, data, "image/png")})
        r.raise_for_status()
        return dict(r.json())

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.client.post(path, json=body)
        if r.status_code >= 400:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
        return dict(r.json())

    def view(self, session_id: str) -> dict[str, Any]:
        return dict(self.client.get(f"/v1/studio/sessions/{session_id}").json())

    def image(self, url: str) -> Image.Image:
        r = self.client.get(url)
        r.raise_for_status()
        return Image.open(io.BytesIO(r.content)).convert("RGB")

    def wait_round(
        self, session_id: str, number: int, within: float, started: float
    ) -> tuple[dict[str, Any], float]:
        """The session once round ``number`` ended, and when its first candidate step succeeded."""
        deadline = time.monotonic() + within
        first = 0.0
        job_id = ""
        while time.monotonic() < deadline:
            view = self.view(session_id)
            rounds = view["rounds"]
            if len(rounds) >= number:
                job_id = rounds[number - 1]["job_id"]
                if not first:
                    job = self.client.get(f"/v1/jobs/{job_id}")
                    steps = job.json().get("steps", []) if job.status_code == 200 else []
                    if any(s["status"] == "succeeded" and s["name"].startswith("candidate-") for s in steps):
                        first = time.monotonic() - started
                if rounds[number - 1]["status"] != "running":
                    return view, first or time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"round {number} of {session_id} ({job_id}) did not end in {within:.0f} s")


def run_case(studio: Studio, case: Case, size: int, candidates: int, within: float) -> Row:
    row = Row(case=case.product, chip=case.chip)
    began = time.monotonic()
    try:
        photo = studio.upload(f"{case.product}.png", products.photo(case.product, size))
        logo = studio.upload("logo.png", products.logo())
        session = studio.post(
            "/v1/studio/sessions",
            {"title": f"golden {case.product}", "upload": photo["id"], "logo": logo["id"]},
        )
        sid = session["id"]
        asked = time.monotonic()
        studio.post(
            f"/v1/studio/sessions/{sid}/edit",
            {"chip": case.chip, "prompt": case.prompt, "candidates": candidates},
        )
        view, row.first_image_s = studio.wait_round(sid, 1, within, asked)
        row.edit_s = time.monotonic() - asked
        _count(studio, view, 1, row)
        made = view["rounds"][0]
        if made["status"] != "succeeded":
            raise RuntimeError(f"the edit {made['status']}: {made['error']}")
        pick = judge([studio.image(c["url"]) for c in made["candidates"]])
        row.judge_pick = pick + 1
        view = studio.post(
            f"/v1/studio/sessions/{sid}/adopt", {"asset_id": made["candidates"][pick]["asset_id"]}
        )
        placed: tuple[int, int, int, int] | None = None
        for number, words in enumerate(case.refines, start=2):
            studio.post(f"/v1/studio/sessions/{sid}/refine", {"prompt": words, "candidates": 2})
            view, _ = studio.wait_round(sid, number, within, time.monotonic())
            _count(studio, view, number, row)
            made = view["rounds"][number - 1]
            if made["status"] != "succeeded":
                raise RuntimeError(f"refine {words!r} {made['status']}: {made['error']}")
            view = studio.post(
                f"/v1/studio/sessions/{sid}/adopt", {"asset_id": made["candidates"][0]["asset_id"]}
            )
            if words.startswith("logo") or placed is None:
                placed = _logo_at(studio.image(view["adopted"]["url"]))
        _consistency(studio, view, photo, placed, row)
        row.ok = True
    except (RuntimeError, TimeoutError, httpx.HTTPError, ValueError) as exc:
        row.error = f"{type(exc).__name__}: {exc}"[:300]
    row.total_s = time.monotonic() - began
    return row


def _count(studio: Studio, view: dict[str, Any], number: int, row: Row) -> None:
    made = view["rounds"][number - 1]
    row.candidates += len(made["candidates"])
    row.fell_back += sum(1 for c in made["candidates"] if c["note"])
    job = studio.client.get(f"/v1/jobs/{made['job_id']}").json()
    row.failed_steps += sum(1 for s in job.get("steps", []) if s["status"] == "failed")


def _logo_at(img: Image.Image) -> tuple[int, int, int, int] | None:
    return studio_image.find_logo(img, products.LOGO_COLOUR)


def _consistency(
    studio: Studio,
    view: dict[str, Any],
    photo: dict[str, Any],
    placed: tuple[int, int, int, int] | None,
    row: Row,
) -> None:
    """The final image's light and logo against the look; offline candidates only (a remote
    model's pixels are its own, and the light is not ours to read back)."""
    adopted = view["adopted"]
    row.final_model = adopted["model_used"]
    final = studio.image(adopted["url"])
    logo_now = studio_image.find_logo(final, products.LOGO_COLOUR)
    if placed is not None and logo_now is not None:
        row.logo_drift_px = max(abs(a - b) for a, b in zip(placed, logo_now, strict=True))
    if adopted["model_used"] != OFFLINE_MODEL:
        return
    original = studio.image(photo["links"]["original"])
    recipe = msgspec.convert(adopted["recipe"], Recipe)
    reference, product = studio_image.render(
        original, studio_image.segment(original), studio_image.neutral(recipe)
    )
    measured = studio_image.measure_light(final, reference, product)
    look = view["look"]["lighting"]
    row.kelvin_error = round(abs(measured["kelvin"] - look["kelvin"]), 1)
    turn = (measured["direction_deg"] - look["direction_deg"] + 180) % 360 - 180
    row.direction_error_deg = round(abs(turn), 2)


@dataclass(frozen=True)
class Summary:
    cases: int
    p95_first_image_s: float
    failure_rate: float
    fallback_success_rate: float
    top1_adoption_rate: float
    max_kelvin_error: float
    max_direction_error_deg: float
    max_logo_drift_px: float

    def line(self) -> str:
        return (
            f"golden: {self.cases} cases, P95 first image {self.p95_first_image_s:.2f} s, "
            f"failures {self.failure_rate:.1%}, fallback success {self.fallback_success_rate:.1%}, "
            f"top-1 adoption {self.top1_adoption_rate:.1%}, light within {self.max_kelvin_error:.0f} K / "
            f"{self.max_direction_error_deg:.1f}°, logo drift {self.max_logo_drift_px:.0f} px"
        )


def summarise(rows: Sequence[Row]) -> Summary:
    firsts = sorted(r.first_image_s for r in rows if r.first_image_s)
    p95 = firsts[min(len(firsts) - 1, math.ceil(0.95 * len(firsts)) - 1)] if firsts else 0.0
    fell_back = sum(r.fell_back for r in rows)
    lost = sum(r.failed_steps for r in rows)
    return Summary(
        cases=len(rows),
        p95_first_image_s=p95,
        failure_rate=sum(1 for r in rows if not r.ok) / max(len(rows), 1),
        fallback_success_rate=fell_back / (fell_back + lost) if fell_back + lost else 1.0,
        top1_adoption_rate=sum(1 for r in rows if r.judge_pick == 1) / max(len(rows), 1),
        max_kelvin_error=max((r.kelvin_error for r in rows if r.kelvin_error is not None), default=0.0),
        max_direction_error_deg=max(
            (r.direction_error_deg for r in rows if r.direction_error_deg is not None), default=0.0
        ),
        max_logo_drift_px=max((r.logo_drift_px for r in rows if r.logo_drift_px is not None), default=0.0),
    )


def write_csv(rows: Sequence[Row], out: Path) -> None:
    names = [f.name for f in fields(Row)]
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))


def run(
    base_url: str,
    cases: Sequence[Case] = CASES,
    out: Path | None = None,
    size: int = 800,
    candidates: int = 4,
    within: float = 120.0,
) -> tuple[list[Row], Summary]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        studio = Studio(client)
        rows = [run_case(studio, case, size, candidates, within) for case in cases]
    if out is not None:
        write_csv(rows, out)
    return rows, summarise(rows)
