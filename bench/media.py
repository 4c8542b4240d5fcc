"""Upload sanitising beside naive Pillow, on a photo-sized JPEG, each way in a process of its own.

python -m bench.media      # or: make bench. BENCH_MEDIA_N images per way (default 5),
                           # BENCH_MEDIA_MP the photo's megapixels (default 24)

- naive Pillow: ``open → thumbnail(256) → save`` (Pillow's thumbnail decodes a JPEG at a reduced
  DCT scale: it never sees the full-resolution pixels);
- naive full decode: ``open → load → resize(256) → save``, what a sanitiser must at least do;
- Atelier's sanitise: the type sniffed, one decoder, full decode, upright, sRGB, the original
  re-encoded with its long edge capped (``ATELIER_UPLOAD_MAX_EDGE``, 4096 and 2048), and a
  256 px WebP thumbnail.

Images/s and peak RSS of each process, and each as a ratio to naive Pillow.
"""

from __future__ import annotations

import io
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

N = int(os.environ.get("BENCH_MEDIA_N", "5"))
MEGAPIXELS = float(os.environ.get("BENCH_MEDIA_MP", "24"))
WAYS = ("naive", "naive-full", "sanitise-4096", "sanitise-2048")


def photo(path: Path) -> None:
    """A photo-like JPEG (3:2, gradients and grain) of ``MEGAPIXELS``."""
    height = int((MEGAPIXELS * 1e6 / 1.5) ** 0.5)
    width = int(height * 1.5)
    grad = Image.linear_gradient("L").resize((width, height))
    across = grad.rotate(90).resize((width, height))
    Image.merge("RGB", (grad, across, Image.effect_noise((width, height), 40))).save(path, quality=90)


def one(way: str, path: str, n: int) -> None:
    """Run in a child: ``n`` images one way; prints images/s and the peak RSS in MB."""
    if way.startswith("sanitise"):
        from atelier_media.domain.sanitize import Limits, sanitize

    started = time.perf_counter()
    for _ in range(n):
        if way == "naive":
            img = Image.open(path)
            img.thumbnail((256, 256))
            img.save(io.BytesIO(), "WEBP")
        elif way == "naive-full":
            img = Image.open(path)
            img.load()
            img.resize((256, round(256 * img.height / img.width))).save(io.BytesIO(), "WEBP")
        else:
            with open(path, "rb") as f:
                sanitize(f, Limits(max_edge=int(way.rsplit("-", 1)[1]), max_pixels=200_000_000))
    rate = n / (time.perf_counter() - started)
    print(f"{rate} {peak_rss_mb()}")


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: unlike ``ru_maxrss``, not inherited from the
    parent across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        one(sys.argv[2], sys.argv[3], N)
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, N={N}")
    with tempfile.TemporaryDirectory(prefix="atelier-bench-media-") as tmp:
        path = Path(tmp) / "photo.jpg"
        photo(path)
        with Image.open(path) as img:
            print(f"photo: {img.width}x{img.height} JPEG, {path.stat().st_size / 1e6:.1f} MB")
        figures: dict[str, tuple[float, float]] = {}
        for way in WAYS:
            out = subprocess.run(
                [sys.executable, "-m", "bench.media", "--one", way, str(path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            figures[way] = (float(out[0]), float(out[1]))
    base_rate, base_rss = figures["naive"]
    for way, (rate, rss) in figures.items():
        print(
            f"{way}: {rate:.2f} images/s ({rate / base_rate:.2f}x naive), "
            f"peak RSS {rss:.0f} MB ({rss / base_rss:.2f}x naive)"
        )


if __name__ == "__main__":
    main()
