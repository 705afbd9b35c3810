"""Measure the not-a-chest-X-ray checks: false alarms on held-out X-rays, detection on generated non-X-rays.

    python -m bench.ood [--model models/served]

In-distribution: the served model's internal-test images (patients never used
for training; the feature-distance limit was set on validation), and the site
sample as stored and as sites send it (:func:`devtools.imaging.site_variants`:
re-sampled, sideways with an EXIF rotation, JPEG re-encoded, 16-bit, windowed
DICOM, mildly cropped). Out of distribution: pictures generated here or shipped
with installed packages — scikit-learn's sample photos (colour and gray crops),
pydicom's CT/MR test images (other body parts), rendered text documents, noise,
gradients and checkerboards, and inverted X-rays. The margin: the nearest
non-X-ray's distance over the farthest real film's (site sample and variants).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from bench.common import record_results
from devtools.imaging import harsh_crop, site_variants
from pneumo_core.common.films import class_root
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.evaluation.scoring import labelled_folder_films
from pneumo_core.serving.ood import WITHHOLD_FACTOR
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import EVALUATION_DIR


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def non_xrays(rng: np.random.Generator, xray_examples: list[bytes]) -> dict[str, list[bytes]]:
    from pydicom.data import get_testdata_file
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    crops = []
    for photo in photos:
        for _ in range(10):
            y, x = rng.integers(0, photo.shape[0] - 256), rng.integers(0, photo.shape[1] - 256)
            crops.append(photo[y : y + 256, x : x + 256])
    documents = []
    for i in range(20):
        page = Image.new("L", (600, 800), 255)
        draw = ImageDraw.Draw(page)
        for line in range(30):
            draw.text(
                (40, 30 + 24 * line),
                f"Report {i}: patient history line {line} " + "lorem ipsum " * 3,
                fill=0,
                font=ImageFont.load_default(16),
            )
        documents.append(np.asarray(page))
    patterns = []
    for i in range(10):
        yy, xx = np.mgrid[0:256, 0:256]
        patterns.append(((xx + yy * (i % 3)) % 256).astype(np.uint8))  # gradients
        patterns.append((((xx // (8 + 4 * i)) + (yy // (8 + 4 * i))) % 2 * 255).astype(np.uint8))  # checkerboards
    dicoms = [
        open(get_testdata_file(name), "rb").read()
        for name in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm")
    ]
    inverted = [png(255 - np.asarray(Image.open(io.BytesIO(x)).convert("L"))) for x in xray_examples]
    return {
        "colour photo crops": [png(c) for c in crops],
        "gray photo crops": [png(np.asarray(Image.fromarray(c).convert("L"))) for c in crops],
        "text documents": [png(d) for d in documents],
        "uniform noise": [png(rng.integers(0, 256, (256, 256), dtype=np.uint8)) for _ in range(20)],
        "gradients and checkerboards": [png(p) for p in patterns],
        "CT / MR slices (pydicom test files)": dicoms,
        "inverted chest X-rays": inverted,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    predictor = Predictor.load(args.model)
    directory = Path(args.model) if args.model else locations().model_dir
    files = pd.read_csv(directory / EVALUATION_DIR / "test_predictions.csv")["file"].tolist()
    root = class_root(locations().data_dir)
    xrays = [(root / f).read_bytes() for f in files]
    site = [Path(path).read_bytes() for path in labelled_folder_films(site_sample_dir())["path"]]
    limit = predictor.density.limit if predictor.density else float("nan")

    def scored(payloads: list[bytes]) -> list:
        return [
            case
            for start in range(0, len(payloads), 64)
            for case in predictor.classify([(str(i), x) for i, x in enumerate(payloads[start : start + 64])])
            if case.prediction
        ]

    rows = []
    variants: dict[str, list[bytes]] = {"site-sample chest X-rays": site}
    for film in site:
        for name, payload in site_variants(film).items():
            variants.setdefault(f"site sample, {name}", []).append(payload)
    outside_goal = {
        "held-out chest X-rays (internal test)": xrays,
        "site sample, beyond a mild crop: 10% off the bottom and each side": [harsh_crop(film) for film in site],
    }
    real_farthest, real_withheld, real_count = 0.0, 0, 0
    for name, payloads in (*variants.items(), *outside_goal.items()):
        cases = scored(payloads)
        farthest = max(c.distance for c in cases) / limit
        withheld = sum(bool(c.withheld) for c in cases)
        if name not in outside_goal:
            real_farthest = max(real_farthest, farthest)
            real_withheld, real_count = real_withheld + withheld, real_count + len(cases)
        rows.append(
            (
                name,
                f"{len(cases)} images",
                f"false alarms {np.mean([bool(c.warnings) for c in cases]):.1%}, withheld {withheld}, "
                f"largest distance {farthest:.3f} × limit",
                "—" if name in outside_goal else "none withheld",
            )
        )
    rows.append(
        (
            "site sample and its variants as sites send them",
            f"{real_count} images",
            f"withheld {real_withheld}, largest distance {real_farthest:.3f} × limit",
            "none withheld",
        )
    )
    detected_all, withheld_all, nearest = [], [], []
    for name, payloads in non_xrays(np.random.default_rng(0), xrays[:20]).items():
        cases = scored(payloads)
        detected = [bool(c.warnings) for c in cases]
        detected_all += detected
        withheld_all += [bool(c.withheld) for c in cases]
        nearest += [c.distance / limit for c in cases if c.distance is not None]
        rows.append((name, f"{len(detected)} images", f"detected {np.mean(detected):.0%}", "high"))
    rows.append(
        (
            "all non-X-rays",
            f"{len(detected_all)} images",
            f"detected {np.mean(detected_all):.0%}, withheld {np.mean(withheld_all):.0%}, nearest {min(nearest):.3f} × limit",
            "all withheld",
        )
    )
    rows.append(
        (
            "margin",
            f"withheld beyond {WITHHOLD_FACTOR} × limit",
            f"nearest non-X-ray / farthest real film {min(nearest) / real_farthest:.3f}; the factor is "
            f"{WITHHOLD_FACTOR / real_farthest - 1:+.1%} from the farthest real film and "
            f"{WITHHOLD_FACTOR / min(nearest) - 1:+.1%} from the nearest non-X-ray",
            "> 1",
        )
    )
    if predictor.density is None:
        note = "Model without a feature density: colour check only."
    else:
        projection = predictor.density.projection
        space = "the pooled features" if projection is None else f"{len(projection)} principal components of the features"
        note = (
            f"Model: {predictor.metadata.get('name')} on the {predictor.runtime} runtime; limit {predictor.density.limit:.1f} "
            f"(Mahalanobis, Ledoit-Wolf, in {space}); verdicts are withheld beyond {WITHHOLD_FACTOR} × the limit."
        )
    print(record_results("Not-a-chest-X-ray checks", "python -m bench.ood", rows, note))


if __name__ == "__main__":
    main()
