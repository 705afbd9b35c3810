"""Small files that need large images: the REST API server's memory under 7000 × 7000 RGBA PNGs (about 200 KB each,
under the 50-megapixel cap), against a baseline checkout of the project run in the same session.

    python -m bench.memory [--baseline DIR]

For each server (this tree, and ``DIR`` if given: ``git worktree add /tmp/base COMMIT``): its resident memory idle,
its peak during one request with two such files, and its peak during 8 such requests at once (sampled every 20 ms,
the process and its children). Goals (issue 35): two files raise the server's memory by less than 1 GB; 8 requests
at once do not exhaust the machine.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.common import record_results, rss_mb
from tests.harness import PROJECT_ROOT, api_server

SIDE = 7000


def large_small_png() -> bytes:
    """A 7000 × 7000 RGBA PNG of a few hundred KB: mostly flat, so it compresses to almost nothing."""
    pixels = np.zeros((SIDE, SIDE, 4), np.uint8)
    pixels[..., 3] = 255
    pixels[::50, :, :3] = 200
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


class PeakMemory:
    """The highest resident memory of a process and its children while in use (sampled in a thread)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.02)

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def measure(checkout: Path, film: bytes) -> tuple[float, float, float, list[int]]:
    """(idle MB, peak MB for one request of two films, peak MB for 8 such requests at once, their statuses)."""
    log = PROJECT_ROOT / "bench" / "out" / f"memory-{checkout.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with api_server(log, cwd=checkout, PNEUMO_API_RATE="1000000/minute") as server:
        files = [("files", ("a.png", film, "image/png")), ("files", ("b.png", film, "image/png"))]
        post = lambda: httpx.post(f"{server.url}/v1/predict", files=files, timeout=600).status_code  # noqa: E731
        post()  # the first request's one-off costs (imports, buffers) are not what is measured
        idle = rss_mb(server.process.pid)
        with PeakMemory(server.process.pid) as one:
            post()
        with PeakMemory(server.process.pid) as eight, ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda _: post(), range(8)))
        return idle, one.peak, eight.peak, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of an earlier commit")
    args = parser.parse_args()
    film = large_small_png()
    checkouts = {"this tree": PROJECT_ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rows = []
    for name, checkout in checkouts.items():
        idle, one, eight, statuses = measure(checkout, film)
        rows.append(
            (
                f"{name}: one request, two {SIDE} × {SIDE} RGBA PNGs of {len(film) / 1e3:.0f} KB",
                f"{idle:.0f} → {one:.0f} MB (+{one - idle:.0f} MB)",
                f"+{(one - idle) / 1024:.2f} GB",
                "< +1 GB",
            )
        )
        rows.append(
            (
                f"{name}: 8 such requests at once",
                f"{idle:.0f} → {eight:.0f} MB (+{eight - idle:.0f} MB); statuses {sorted(set(statuses))}",
                f"+{(eight - idle) / 1024:.2f} GB",
                "bounded, every request answered",
            )
        )
    print(
        record_results(
            "Small files that need large images: the API server's memory",
            "python -m bench.memory" + (f" --baseline {args.baseline}" if args.baseline else ""),
            rows,
            "Resident memory of the uvicorn process, sampled every 20 ms; the served model on LiteRT.",
        )
    )


if __name__ == "__main__":
    main()
