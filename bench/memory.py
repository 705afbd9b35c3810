"""Small files that need large images, or inflate, or decode for long: the REST API server's memory and time,
against a baseline checkout of the project run in the same session.

    python -m bench.memory [--baseline DIR]

For each server (this tree, and ``DIR`` if given: ``git worktree add /tmp/base COMMIT``): its resident memory idle,
its peak during one request with two 7000 × 7000 RGBA PNGs (about 200 KB each, under the 50-megapixel cap) and
during 8 such requests at once; its peak during one request of each hostile file (a deflated DICOM inflating to
1 GB, a JPEG-compressed 7000 × 7000 RGB DICOM, two 16-bit 7000 × 7000 grey PNGs); and how long an ordinary film
waits when sent just after two JPEGs repeating their scans (sampled every 20 ms, the process and its children).
Goals: any single file raises the server's memory by less than 1 GB; 8 requests at once do not exhaust the machine;
the ordinary film is answered in under 5 s.
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
from devtools.harness import PROJECT_ROOT, api_server

SIDE = 7000


def large_small_png() -> bytes:
    """A 7000 × 7000 RGBA PNG of a few hundred KB: mostly flat, so it compresses to almost nothing."""
    pixels = np.zeros((SIDE, SIDE, 4), np.uint8)
    pixels[..., 3] = 255
    pixels[::50, :, :3] = 200
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def hostile_files() -> dict[str, list[tuple[str, bytes]]]:
    """One request's files for each hostile input (built with pydicom and Pillow)."""
    from devtools.imaging import deflated_dicom_bomb, encapsulated_dicom

    rgb = np.zeros((SIDE, SIDE, 3), np.uint8)
    rgb[::50] = (200, 120, 40)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=90)
    jpeg_dicom = encapsulated_dicom(buffer.getvalue(), SIDE, SIDE, colour=True)
    grey16 = np.zeros((SIDE, SIDE), np.uint16)
    grey16[::50] = 40000
    buffer = io.BytesIO()
    Image.fromarray(grey16).save(buffer, "PNG")
    return {
        "a deflated DICOM inflating to 1 GB": [("bomb.dcm", deflated_dicom_bomb(2**30))],
        f"a JPEG {SIDE} × {SIDE} RGB DICOM": [("rgb.dcm", jpeg_dicom)],
        f"two 16-bit {SIDE} × {SIDE} grey PNGs": [("a.png", buffer.getvalue()), ("b.png", buffer.getvalue())],
    }


def rescanned_flat_jpeg(scans: int) -> bytes:
    """A flat 7000 × 7000 progressive JPEG (its last scan 75 bytes), that scan repeated up to ``scans`` scans."""
    film = np.full((SIDE, SIDE), 120, np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(film).save(buffer, "JPEG", progressive=True, quality=90)
    data = buffer.getvalue()
    last = data[data.rindex(b"\xff\xda") : data.rindex(b"\xff\xd9")]
    return data[: data.rindex(b"\xff\xd9")] + last * (scans - data.count(b"\xff\xda")) + b"\xff\xd9"


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


def measure(checkout: Path, film: bytes, hostile: dict[str, list[tuple[str, bytes]]]) -> dict:
    """Idle MB, the peak MB for one request of two films and for 8 such requests at once (and their statuses), the
    peak MB for each hostile request, and the seconds an ordinary film waits behind two rescanned JPEGs."""
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
        peaks = {}
        for name, request_files in hostile.items():
            base = rss_mb(server.process.pid)
            with PeakMemory(server.process.pid) as peak:
                httpx.post(f"{server.url}/v1/predict", files=[("files", f) for f in request_files], timeout=600)
            peaks[name] = (base, peak.peak)
        slow = rescanned_flat_jpeg(2000)
        ordinary = (PROJECT_ROOT / "examples" / "normal_IM-0162-0001.jpeg").read_bytes()
        send = lambda name, data: httpx.post(  # noqa: E731
            f"{server.url}/v1/predict", files=[("files", (name, data, "image/jpeg"))], timeout=600
        )
        with ThreadPoolExecutor(3) as pool:
            hostile_requests = [pool.submit(send, f"slow{i}.jpg", slow) for i in range(2)]
            time.sleep(0.2)
            started = time.perf_counter()
            send("ordinary.jpg", ordinary)
            waited = time.perf_counter() - started
            for request in hostile_requests:
                request.result()
        return {"idle": idle, "one": one.peak, "eight": eight.peak, "statuses": statuses, "hostile": peaks, "waited": waited}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout of an earlier commit")
    args = parser.parse_args()
    film, hostile = large_small_png(), hostile_files()
    checkouts = {"this tree": PROJECT_ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    rows = []
    for name, checkout in checkouts.items():
        found = measure(checkout, film, hostile)
        idle, one, eight, statuses = found["idle"], found["one"], found["eight"], found["statuses"]
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
        for hostile_name, (base, peak) in found["hostile"].items():
            rows.append((f"{name}: {hostile_name}", f"{base:.0f} → {peak:.0f} MB", f"+{(peak - base) / 1024:.2f} GB", "< +1 GB"))
        rows.append(
            (
                f"{name}: an ordinary film sent just after two 7000 × 7000 JPEGs repeating their scans",
                f"answered in {found['waited']:.2f} s",
                "",
                "< 5 s",
            )
        )
    print(
        record_results(
            "Hostile files: the API server's memory and time",
            "python -m bench.memory" + (f" --baseline {args.baseline}" if args.baseline else ""),
            rows,
            "Resident memory of the uvicorn process, sampled every 20 ms; the served model on LiteRT.",
        )
    )


if __name__ == "__main__":
    main()
