"""A 12-shot episode end to end on the offline providers: the wall time from submit to the MP4,
how much of the work is encoding (the clips' H.264 in the offline camera, the composite), and
the same with a second replica of the services that encode (the router's camera, media, export);
and what an edited timeline's export costs against the render (one shot extended: one clip
filmed; a reorder: none), through the project's composite.

    .venv/bin/python -m bench.episode
    BENCH_EPISODE_SIZE=640x360 BENCH_EPISODE_RUNS=2 BENCH_EPISODE_REPLICAS=0,1  (the defaults)
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from atelier_devstack.scripts import LANTERN_BOAT as SCRIPT
from atelier_devstack.stack import Stack


def _seconds(step: dict[str, Any]) -> float:
    if not step.get("started_at") or not step.get("finished_at"):
        return 0.0
    return (
        datetime.fromisoformat(step["finished_at"]) - datetime.fromisoformat(step["started_at"])
    ).total_seconds()


def one_episode(client: httpx.Client, width: int, height: int) -> dict[str, float]:
    body = {"kind": "episode", "input": {"script": SCRIPT, "width": width, "height": height}}
    started = time.perf_counter()
    job_id = client.post("/v1/jobs", json=body).json()["id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.05)
    wall = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"the episode {job['status']}: {job.get('last_error')}")
    steps = {s["name"]: s for s in job["steps"]}
    clips = sum(_seconds(s) for n, s in steps.items() if n.startswith("clip_"))
    images = sum(_seconds(s) for n, s in steps.items() if n.startswith("image_"))
    voices = sum(_seconds(s) for n, s in steps.items() if n.startswith("voice_"))
    return {
        "wall_s": wall,
        "shotlist_s": _seconds(steps["shotlist"]),
        "images_s": images,
        "clips_s": clips,
        "voices_s": voices,
        "composite_s": _seconds(steps["composite"]),
        "package_s": _seconds(steps["package"]),
    }


def _wait(client: httpx.Client, job_id: str) -> dict[str, Any]:
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"{job_id} {job['status']}: {job.get('last_error')}")
            return dict(job)
        time.sleep(0.05)


def edits(client: httpx.Client) -> dict[str, float]:
    """A project's episode rendered, then its timeline exported again twice: shot 5 extended by a
    second (one clip filmed), then shots 1 and 2 swapped (nothing filmed)."""
    pid = client.post("/v1/projects", json={"name": "Bench"}).json()["id"]
    episode = (
        f"/v1/projects/{pid}/episodes/"
        + client.post(f"/v1/projects/{pid}/episodes", json={"title": "Lantern", "script": SCRIPT}).json()[
            "id"
        ]
    )
    started = time.perf_counter()
    _wait(client, client.post(f"{episode}/render").json()["id"])
    out = {"render_s": time.perf_counter() - started}
    timeline = [{"shot": c["shot"]} for c in client.get(f"{episode}/composite").json()["timeline"]]
    shot5 = client.get(f"{episode}/composite").json()["timeline"][4]["duration_s"]
    timeline[4] = {"shot": 5, "duration_s": shot5 + 1}
    for name, change in (("extend_s", timeline), ("reorder_s", [timeline[1], timeline[0], *timeline[2:]])):
        client.patch(f"{episode}/composite", json={"timeline": change})
        started = time.perf_counter()
        job = _wait(client, client.post(f"{episode}/composite/export").json()["exports"][-1]["job_id"])
        out[name] = time.perf_counter() - started
        steps = {st["name"]: st for st in job["steps"]}
        out[name.replace("_s", "_filmed")] = sum(1 for n in steps if n.startswith("clip_"))
        out[name.replace("_s", "_composite_s")] = _seconds(steps["composite"])
    return out


def run(replicas: bool, width: int, height: int, runs: int) -> list[dict[str, float]]:
    tmp = Path(tempfile.mkdtemp(prefix="atelier-bench-episode-"))
    stack = Stack.with_free_ports(tmp / "state", ATELIER_PROVIDER_ROUTER_CONCURRENCY="8")
    try:
        stack.start()
        if replicas:
            for service in ("provider-router", "media", "export"):
                stack.add_replica(service)
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
            one_episode(client, 320, 180)  # warm: imports, codecs, first connections
            results = [one_episode(client, width, height) for _ in range(runs)]
            if not replicas:
                results[0] = {**results[0], **edits(client)}
            return results
    finally:
        stack.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    width, height = (int(v) for v in os.environ.get("BENCH_EPISODE_SIZE", "640x360").split("x"))
    runs = int(os.environ.get("BENCH_EPISODE_RUNS", "2"))
    variants = [v == "1" for v in os.environ.get("BENCH_EPISODE_REPLICAS", "0,1").split(",")]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"a 12-shot episode at {width}x{height}, offline providers, best of {runs}")
    for replicas in variants:
        results = run(replicas, width, height, runs)
        best = min(results, key=lambda r: r["wall_s"])
        work = sum(v for k, v in best.items() if k != "wall_s")
        encoding = best["clips_s"] + best["composite_s"]
        label = "a second router, media and export" if replicas else "one of each service"
        print(
            f"{label}: wall {best['wall_s']:.1f} s; step time {work:.1f} s, of it encoding "
            f"{encoding:.1f} s ({encoding / work:.0%}: clips {best['clips_s']:.1f}, composite "
            f"{best['composite_s']:.1f}), images {best['images_s']:.1f}, voices {best['voices_s']:.1f}, "
            f"shot list {best['shotlist_s']:.2f}, package {best['package_s']:.2f}"
        )
        if "render_s" in results[0]:
            r = results[0]
            print(
                f"a project's episode: render {r['render_s']:.1f} s; export after one shot extended "
                f"{r['extend_s']:.1f} s ({r['extend_filmed']:.0f} clip filmed, composite "
                f"{r['extend_composite_s']:.1f} s, {r['extend_s'] / r['render_s']:.2f}x the render); after "
                f"a reorder {r['reorder_s']:.1f} s ({r['reorder_filmed']:.0f} filmed, composite "
                f"{r['reorder_composite_s']:.1f} s, {r['reorder_s'] / r['render_s']:.2f}x)"
            )


if __name__ == "__main__":
    main()
