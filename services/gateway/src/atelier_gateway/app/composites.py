"""An episode's composite as a resource of its own: a timeline a user edits and exports again.

It is made from the episode's render: every shot's still, speech, line and move (its *source*),
and the clip the render filmed (its first *take*). The timeline is a list of cuts — which shot,
how long, which take — in order. Editing it reorders, trims or extends a shot, drops one, or
swaps a shot's take for an earlier one; exporting submits a ``cut`` job
(``atelier_contracts.kinds.cut``) that reuses every take that still fits (cut to length) and
films anew only the shots extended past their take: only what changed is re-rendered.

Its status is derived, never stored: ``exporting`` while its last export runs; ``done`` when
that export succeeded with the timeline as it is now; ``failed`` when it failed so; ``editing``
once the timeline differs from the last export's. Its takes are derived too: the render's clips
and every clip an export filmed, in the order they were made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, get_args

from atelier_contracts import ids
from atelier_contracts.capabilities import frames_of
from atelier_contracts.kinds import KINDS
from atelier_contracts.kinds.episode import clip_step, image_step, shots, voice_step
from atelier_contracts.snapshot import JobStatus, JobView, StepStatus
from atelier_gateway.app.errors import ShotNotFound, TakeNotFound, once_each

Status = Literal["editing", "exporting", "done", "failed"]


@dataclass(frozen=True)
class Source:
    """What the render made of one shot: the still a new take is filmed from, and the rest."""

    shot: int
    still: str
    voice: str | None
    line: str
    move: str
    prompt: str
    duration_s: float
    size: int
    look: str
    """The still's size and look as the render drew it (what the project's batch draws again)."""


@dataclass(frozen=True)
class Cut:
    """A shot on the timeline: how long it lasts and the take it uses (a clip's asset id; one
    that is not among the shot's takes, or shorter than the cut, is filmed anew on export)."""

    shot: int
    duration_s: float
    take: str


@dataclass(frozen=True)
class Export:
    job_id: str
    timeline: tuple[Cut, ...]


@dataclass(frozen=True)
class Composite:
    episode_id: str
    project_id: str
    render_job: str
    sources: tuple[Source, ...]
    timeline: tuple[Cut, ...]
    exports: tuple[Export, ...]
    """The render first (its timeline is the one the composite starts from), then every export."""
    fps: int
    width: int
    height: int
    created_at: datetime
    updated_at: datetime
    version: int = 1
    """Every change writes the next; a write that finds another version is refused
    (``composite_changed``), so no edit or export is lost to a concurrent one."""

    def source(self, shot: int) -> Source:
        found = next((s for s in self.sources if s.shot == shot), None)
        if found is None:
            raise ShotNotFound(f"The episode has no shot {shot} (it has {len(self.sources)}).")
        return found


@dataclass(frozen=True)
class Take:
    shot: int
    number: int
    """1 is the render's; each export that filmed the shot again adds one."""
    asset: str
    duration_s: float
    job_id: str


class Composites(Protocol):
    async def put(self, tenant: str, composite: Composite, expected: int | None) -> bool:
        """Store it if the stored one is at version ``expected`` (None: there is none yet);
        False when another write came first."""
        ...

    async def get(self, tenant: str, episode_id: str) -> Composite | None: ...


def from_render(
    episode_id: str, project_id: str, render: JobView, listed: Mapping[str, Any], now: datetime
) -> Composite:
    """The composite of a succeeded episode render, from its job and its shot list (the file its
    ``shotlist`` step made): the render's own plan tells every shot's prompt, move and line."""
    kind = KINDS["episode"]
    episode = kind.parse(render.input)
    plan = shots(episode, listed)
    planned = {s.name: s for s in plan.steps}
    sources, timeline = [], []
    for i in range(1, plan.width + 1):
        film, drawn = planned[clip_step(i)].params, planned[image_step(i)].params
        voice = voice_step(i) if voice_step(i) in planned else None
        line = str(planned[voice].params["text"]) if voice else ""
        sources.append(
            Source(
                shot=i,
                still=ids.asset_id(render.id, image_step(i), "image"),
                voice=ids.asset_id(render.id, voice, "audio") if voice else None,
                line=line,
                move=str(film["move"]),
                prompt=str(film["prompt"]),
                duration_s=float(film["duration_s"]),
                size=int(drawn["size"]),
                look=str(drawn["look"]),
            )
        )
        timeline.append(
            Cut(
                shot=i,
                duration_s=float(film["duration_s"]),
                take=ids.asset_id(render.id, clip_step(i), "clip"),
            )
        )
    return Composite(
        episode_id=episode_id,
        project_id=project_id,
        render_job=render.id,
        sources=tuple(sources),
        timeline=tuple(timeline),
        exports=(Export(job_id=render.id, timeline=tuple(timeline)),),
        fps=episode.fps,
        width=episode.width,
        height=episode.height,
        created_at=now,
        updated_at=now,
    )


def takes(composite: Composite, jobs: Mapping[str, JobView]) -> list[Take]:
    """Every clip made of every shot, numbered per shot in the order the jobs made them: the
    render's, then what each succeeded (or partly done) export filmed."""
    out: list[Take] = []
    numbers: dict[int, int] = {}
    for export in composite.exports:
        job = jobs.get(export.job_id)
        if job is None:
            continue
        for source in composite.sources:
            step = job.steps.get(clip_step(source.shot))
            if step is None or step.status != StepStatus.SUCCEEDED:
                continue
            clip = next((a for a in step.outputs if a.kind == "video"), None)
            if clip is None:
                continue
            numbers[source.shot] = numbers.get(source.shot, 0) + 1
            duration = float(clip.meta.get("duration_s", 0) or _planned_duration(export, source))
            asset = ids.asset_id(job.id, step.name, clip.name)
            out.append(Take(source.shot, numbers[source.shot], asset, duration, job.id))
    return out


def _planned_duration(export: Export, source: Source) -> float:
    cut = next((c for c in export.timeline if c.shot == source.shot), None)
    return cut.duration_s if cut else source.duration_s


def status(composite: Composite, jobs: Mapping[str, JobView]) -> Status:
    """Where the composite stands, from its last export's job (missing from ``jobs``: deleted, as
    a job is only ever read after it was stored)."""
    latest = composite.exports[-1]
    last = jobs.get(latest.job_id)
    if last is not None and last.status not in JobStatus.TERMINAL:
        return "exporting"
    if composite.timeline != latest.timeline:
        return "editing"
    return "done" if last is not None and last.status == JobStatus.SUCCEEDED else "failed"


@dataclass(frozen=True)
class CutEdit:
    """One entry of an edited timeline: a field left None stays as the shot has it now."""

    shot: int
    duration_s: float | None = None
    take: int | None = None


def edited(composite: Composite, edits: Sequence[CutEdit], known: list[Take], now: datetime) -> Composite:
    """The composite with the timeline ``edits`` give, in their order (a shot left out is
    dropped; a dropped shot put back takes its newest take; a take swapped in keeps its own
    length unless a duration is given too)."""
    once_each([e.shot for e in edits], ("body", "timeline"), "A shot is on the timeline once.")
    current = {c.shot: c for c in composite.timeline}
    timeline = []
    for edit in edits:
        source = composite.source(edit.shot)
        mine = [t for t in known if t.shot == edit.shot]
        before = current.get(edit.shot)
        duration = before.duration_s if before else source.duration_s
        if edit.take is not None:
            chosen = next((t for t in mine if t.number == edit.take), None)
            if chosen is None:
                have = ", ".join(str(t.number) for t in mine) or "none yet"
                raise TakeNotFound(f"Shot {edit.shot} has no take {edit.take} (its takes: {have}).")
            take, duration = chosen.asset, chosen.duration_s  # a take swapped in lasts as it does
        elif before is not None:
            take = before.take
        else:
            take = mine[-1].asset if mine else ""
        if edit.duration_s is not None:
            duration = edit.duration_s
        timeline.append(Cut(shot=edit.shot, duration_s=duration, take=take))
    return dataclasses.replace(
        composite, timeline=tuple(timeline), updated_at=now, version=composite.version + 1
    )


def fitting(cut: Cut, known: list[Take], fps: int) -> Take | None:
    """The take a cut uses as it is (cut to length), or None: it is filmed anew. Compared in
    frames, as the composite lays them (a take one frame short of the cut does not fit)."""
    take = next((t for t in known if t.asset == cut.take), None)
    fits = take is not None and frames_of(take.duration_s, fps) >= frames_of(cut.duration_s, fps)
    return take if fits else None


def cut_input(composite: Composite, known: list[Take], seed: int) -> dict[str, Any]:
    """The ``cut`` job that exports the timeline: fitting takes reused, the rest filmed."""
    shots_in = []
    for cut in composite.timeline:
        source = composite.source(cut.shot)
        take = fitting(cut, known, composite.fps)
        entry: dict[str, Any] = {
            "shot": cut.shot,
            "still": source.still,
            "duration_s": cut.duration_s,
            "move": source.move,
            "line": source.line,
            "prompt": source.prompt,
        }
        if take is not None:
            entry["take"] = take.asset
        if source.voice:
            entry["voice"] = source.voice
        shots_in.append(entry)
    return {
        "episode": composite.episode_id,
        "shots": shots_in,
        "fps": composite.fps,
        "width": composite.width,
        "height": composite.height,
        "project": composite.project_id,
        "seed": seed,
    }


def exported(composite: Composite, job_id: str, known: list[Take], now: datetime) -> Composite:
    """The composite once ``job_id`` exports it: a cut filmed anew uses the take that job films
    (so exporting again without a change films nothing; if the job fails, it is filmed again)."""
    timeline = tuple(
        cut
        if fitting(cut, known, composite.fps)
        else dataclasses.replace(cut, take=ids.asset_id(job_id, clip_step(cut.shot), "clip"))
        for cut in composite.timeline
    )
    export = Export(job_id=job_id, timeline=timeline)
    return dataclasses.replace(
        composite,
        timeline=timeline,
        exports=(*composite.exports, export),
        updated_at=now,
        version=composite.version + 1,
    )


PackageKind = Literal["images", "clips", "audio", "subtitles", "episode"]
"""What an episode's package may hold: the shot images, the clips the timeline uses, the speech,
the subtitles (SubRip) and the episode (its MP4 and poster frame)."""
PACKAGE_KINDS: tuple[PackageKind, ...] = get_args(PackageKind)


def package_files(
    composite: Composite, known: list[Take], shown: JobView | None, kinds: Sequence[str]
) -> list[dict[str, str]]:
    """The ``package`` job's files: the episode as ``shown`` (the newest export that succeeded)
    made it — per shot of that export's timeline, in its order, what ``kinds`` ask for, then the
    episode's own files — so a timeline edited since is not packed half-made."""
    files: list[dict[str, str]] = []
    exported = next((e.timeline for e in composite.exports if shown and e.job_id == shown.id), ())
    for cut in exported:
        source = composite.source(cut.shot)
        if "images" in kinds:
            files.append({"name": image_step(cut.shot), "file": source.still})
        take = fitting(cut, known, composite.fps)
        if "clips" in kinds and take is not None:
            files.append({"name": clip_step(cut.shot), "file": take.asset})
        if "audio" in kinds and source.voice:
            files.append({"name": voice_step(cut.shot), "file": source.voice})
    if shown is None:
        return files
    for artifact in shown.steps["composite"].outputs:
        wanted = "subtitles" if artifact.name == "subtitles" else "episode"
        if wanted in kinds:
            files.append({"name": artifact.name, "file": ids.asset_id(shown.id, "composite", artifact.name)})
    return files


def newest_video(composite: Composite, jobs: Mapping[str, JobView]) -> JobView | None:
    """The newest export (the render included) that succeeded: the episode as it can be watched."""
    for export in reversed(composite.exports):
        job = jobs.get(export.job_id)
        if job is not None and job.status == JobStatus.SUCCEEDED:
            return job
    return None
