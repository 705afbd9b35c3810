"""The container images: their sizes and what takes the space, and the serve image's start to ready.

    python -m bench.image [--runs 3]

Needs the images built (``deploy/build-image.sh serve`` and ``train``; a missing one is reported as not built).
Start to ready: ``deploy/check-image.sh serve`` timed from starting the API in the image to ``/readyz`` answering 200,
``--runs`` times, against the baseline of the same API started on this machine outside any container
(``uvicorn pneumo_api:app``), run alternately in this process. Budget: the serve image at most 800 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from bench.common import record_results
from devtools.harness import PROJECT_ROOT, api_server

BAH = ["buildah", "--storage-driver", "vfs"]
BUDGET_MB = 800
PARTS = {
    "Python packages": "opt/venv",
    "Debian and Python": "usr",
    "the served model": "app/models",
}


def unpacked_mb(image: str) -> dict[str, float] | None:
    """The image's unpacked size and that of its largest parts, in MB; None when it is not built."""
    container = subprocess.run([*BAH, "from", "-q", f"containers-storage:{image}"], capture_output=True, text=True)
    if container.returncode:
        return None
    name = container.stdout.strip()
    try:
        root = Path(subprocess.run([*BAH, "mount", name], capture_output=True, text=True, check=True).stdout.strip())
        sizes = {"total": _du(root)}
        sizes.update({part: _du(root / path) for part, path in PARTS.items()})
        site = next((root / "opt" / "venv" / "lib").glob("python3*/site-packages"))
        packages = sorted(((_du(path), path.name) for path in site.iterdir() if path.is_dir()), reverse=True)[:6]
        sizes.update({f"  {package}": mb for mb, package in packages})
        return sizes
    finally:
        subprocess.run([*BAH, "rm", name], capture_output=True)


def _du(path: Path) -> float:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0]) / 2**20


def in_image_seconds() -> float:
    done = subprocess.run(
        ["bash", "deploy/check-image.sh", "serve"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900
    )
    if done.returncode:
        raise SystemExit(f"check-image.sh failed: {done.stdout[-500:]} {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["start_to_ready_s"]


def on_host_seconds() -> float:
    with tempfile.TemporaryDirectory() as folder, api_server(Path(folder) / "api.log") as server:
        return server.healthy_after_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for target in ("serve", "train"):
        sizes = unpacked_mb(f"localhost/pneumo:{target}")
        if sizes is None:
            rows.append((f"{target} image", "not built", "", ""))
            continue
        goal = f"<= {BUDGET_MB} MB" if target == "serve" else ""
        parts = ", ".join(f"{part.strip()} {mb:.0f}" for part, mb in sizes.items() if part != "total")
        ratio = f"{sizes['total'] / BUDGET_MB:.2f} x the budget" if target == "serve" else ""
        rows.append((f"{target} image, unpacked (MB)", f"{sizes['total']:.0f} ({parts})", ratio, goal))
    host, image = [], []
    for _ in range(args.runs):
        host.append(on_host_seconds())
        image.append(in_image_seconds())
    rows.append(
        (
            "API start to ready: in the serve image / on this machine (s)",
            f"{np.median(image):.1f} (min {min(image):.1f}, max {max(image):.1f}) / {np.median(host):.1f} "
            f"(min {min(host):.1f}, max {max(host):.1f})",
            f"{np.median(image) / np.median(host):.2f} x",
            "",
        )
    )
    print(
        record_results(
            "Container images",
            "python -m bench.image",
            rows,
            f"Sizes unpacked, as Docker counts them. Start to ready: median of {args.runs} runs each, alternately; "
            "the image ships no bytecode caches.",
        )
    )


if __name__ == "__main__":
    main()
