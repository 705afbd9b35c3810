"""Serving benchmarks: single upload → probability, folder throughput, heat maps per method, the CPU's own limit.

    python -m bench.serving [--model models/served] [--runs 100]

Every ratio is against a baseline measured in this same process.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from bench.common import p50_p95, record_results, timed
from devtools.reference_cams import ReferenceExplainer
from pneumo_core.config import locations
from pneumo_core.serving.cams import GRADCAM, GRADCAM_PLUS_PLUS, METHODS, SCORECAM
from pneumo_core.serving.predictor import Predictor
from pneumo_core.serving.runtimes import RUNTIMES, auto_runtime
from pneumo_core.store.model_dir import LITE_COPIES, load_model_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DENSENET121_GMACS_224 = 2.87  # multiply-accumulates of one 224-px forward pass (Keras DenseNet121, no top)


def matmul_gflops(n: int = 2048, runs: int = 10) -> float:
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda: tf.matmul(a, b))
    seconds = np.median(timed(lambda: matmul().numpy(), runs))
    return 2 * n**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    model_dir = Path(args.model) if args.model else locations().model_dir
    model, metadata = load_model_dir(model_dir)
    size = int(metadata["input_size"])
    served_runtime = auto_runtime(metadata)
    runtimes = [name for name in RUNTIMES[1:] if name not in LITE_COPIES or LITE_COPIES[name][1] in metadata]
    predictors = {runtime: Predictor.load(model_dir, runtime=runtime) for runtime in runtimes}
    payload = sorted(EXAMPLES.glob("*.jpeg"))[0].read_bytes()
    rows = []

    # 6. the physical limit
    gflops = matmul_gflops()
    forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, size, size, 3])])
    one = tf.zeros((1, size, size, 3))
    bare_p50 = p50_p95(timed(lambda: forward(one).numpy(), args.runs))[0]
    achieved = 2 * DENSENET121_GMACS_224 * (size / 224) ** 2 / bare_p50
    rows.append(("float32 matmul 2048² (machine peak proxy)", f"{gflops:.0f} GFLOP/s", "1.00", "—"))
    rows.append(
        (
            "bare compiled TensorFlow forward, batch 1 (baseline)",
            f"{bare_p50 * 1000:.1f} ms = {achieved:.0f} GFLOP/s",
            f"{achieved / gflops:.2f} of matmul",
            "—",
        )
    )

    # 1. single upload → probability, on each runtime
    def seed_style():  # PIL load, resize, Keras predict on one image
        image = Image.open(io.BytesIO(payload)).convert("RGB").resize((size, size))
        x = tf.keras.applications.densenet.preprocess_input(np.asarray(image, np.float32)[None])
        return model.predict(x, verbose=0)

    seed_p50 = p50_p95(timed(seed_style, max(20, args.runs // 5)))[0]
    for runtime, predictor in predictors.items():
        predictor.warm_up()
        ours_p50, ours_p95 = p50_p95(timed(lambda p=predictor: p.classify([("x.jpeg", payload)]), args.runs))
        lite_speed = achieved * bare_p50 / ours_p50 if runtime == "tflite" else None  # int8 does fewer float operations
        rows.append(
            (
                f"upload → probability, {runtime} runtime{' (served default)' if runtime == served_runtime else ''}, p50 / p95",
                f"{ours_p50 * 1000:.1f} / {ours_p95 * 1000:.1f} ms"
                + (f" (≈ {lite_speed:.0f} GFLOP/s incl. decode)" if lite_speed else ""),
                f"{ours_p50 / bare_p50:.2f} × bare forward; {seed_p50 / ours_p50:.1f} × faster than seed way",
                "≤ 1.3 × bare forward",
            )
        )
    rows.append(("upload → probability (seed: PIL + model.predict), p50", f"{seed_p50 * 1000:.1f} ms", "baseline", "—"))

    # 2. folder throughput: CLI vs per-image model.predict vs bare batch-32 forward
    batch = tf.zeros((32, size, size, 3))
    bare_rate = 32 / np.median(timed(lambda: forward(batch).numpy(), 10))
    per_image_rate = 1 / seed_p50
    rows.append(("bare compiled TensorFlow forward, batch 32 (baseline)", f"{bare_rate:.1f} img/s", "1.00", "—"))
    with tempfile.TemporaryDirectory() as folder:
        files = sorted(EXAMPLES.glob("*.jpeg"))
        for i in range(256):
            Path(folder, f"img{i:03d}.jpeg").write_bytes(files[i % len(files)].read_bytes())
        payloads = [(p.name, p.read_bytes()) for p in sorted(Path(folder).iterdir())]
        for runtime, predictor in predictors.items():
            started = time.perf_counter()
            in_process = predictor.classify(payloads)
            rate = 256 / (time.perf_counter() - started)
            assert all(case.prediction for case in in_process)
            rows.append(
                (
                    f"folder → predictions in process, {runtime} runtime (decode pipelined with the model)",
                    f"{rate:.1f} img/s",
                    f"{rate / bare_rate:.2f} × bare batch rate",
                    "≥ 0.9 ×",
                )
            )
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pneumo_core", "predict", *(["--model", args.model] if args.model else []), folder],
            capture_output=True,
            text=True,
            check=True,
        )
        cli_total = time.perf_counter() - started
        assert len(done.stdout.splitlines()) == 256
    rows.append(
        (
            "`python -m pneumo_core predict` on 256 files, incl. start-up",
            f"{256 / cli_total:.1f} img/s ({cli_total:.1f} s)",
            f"{(256 / cli_total) / per_image_rate:.1f} × per-image model.predict",
            "≥ 6 ×",
        )
    )
    rows.append(("per-image model.predict (seed way)", f"{per_image_rate:.1f} img/s", "baseline", "—"))

    # 3. Heat maps: every method on the serving runtimes, against one forward pass and against tf-keras-vis
    canonical = predictors["tensorflow"].classify([("x", payload)])[0].canonical[None]
    reference = ReferenceExplainer(model, size)
    for runtime, predictor in predictors.items():
        answer = np.median(timed(lambda p=predictor: p.network.forward(canonical), args.runs))
        rows.append((f"one forward pass (the answer), {runtime} runtime", f"{answer * 1000:.1f} ms", "baseline", "—"))
        for method in METHODS:
            runs = max(5, args.runs // (20 if method == SCORECAM else 1))
            seconds = np.median(
                timed(lambda p=predictor, m=method: p.explain(canonical, ["PNEUMONIA"], m), runs, warmup=2)
            )  # the answer's pass included
            rows.append(
                (
                    f"answer + {method}, {runtime} runtime",
                    f"{seconds * 1000:.1f} ms",
                    f"{seconds / answer:.2f} × one forward pass",
                    {GRADCAM: "—", GRADCAM_PLUS_PLUS: "≤ 2 ×", SCORECAM: "≤ 40 ×"}[method],
                )
            )
    for method in METHODS:
        seconds = np.median(timed(lambda m=method: reference.explain(canonical, ["PNEUMONIA"], m), 3, warmup=1))
        ratio = f"{seconds / bare_p50:.0f} × bare forward"
        rows.append((f"{method} by tf-keras-vis (the old way)", f"{seconds * 1000:.0f} ms", ratio, "—"))

    print(
        record_results(
            "Serving",
            "python -m bench.serving" + (f" --model {args.model}" if args.model else ""),
            rows,
            f"Model: {metadata.get('name')} ({size} px). The app and the CLI serve the {served_runtime} runtime; the TFLite "
            "copies run on LiteRT (XNNPACK, 2 threads, batch 1), the tensorflow runtime is the compiled graph at batch 32.",
        )
    )
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
