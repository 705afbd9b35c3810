"""Serving benchmarks: single upload → probability, folder throughput, Grad-CAM per method, the CPU's own limit.

    python bench/serving.py [--model models/served] [--runs 100]

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

from common import append_results, p50_p95, timed

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

from pneumo_core.explain import METHODS, Explainer  # noqa: E402
from pneumo_core.model import LAST_CONV_LAYER  # noqa: E402
from pneumo_core.predict import Predictor  # noqa: E402
from pneumo_core.preprocess import to_model_input  # noqa: E402

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
    predictor = Predictor.load(args.model)
    model, size = predictor.model, predictor.input_size
    payload = sorted(EXAMPLES.glob("*.jpeg"))[0].read_bytes()
    rows = []

    # 6. the physical limit
    gflops = matmul_gflops()
    forward = tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, size, size, 3])])
    one = tf.zeros((1, size, size, 3))
    bare_single = timed(lambda: forward(one).numpy(), args.runs)
    bare_p50 = p50_p95(bare_single)[0]
    achieved = 2 * DENSENET121_GMACS_224 * (size / 224) ** 2 / bare_p50
    rows.append(("float32 matmul 2048² (machine peak proxy)", f"{gflops:.0f} GFLOP/s", "1.00", "—"))
    rows.append(("bare compiled forward, batch 1", f"{bare_p50 * 1000:.1f} ms = {achieved:.0f} GFLOP/s", f"{achieved / gflops:.2f} of matmul", "—"))

    # 1. single upload → probability
    predictor.warm_up()
    ours = timed(lambda: predictor.classify([("x.jpeg", payload)]), args.runs)

    def seed_style():  # PIL load, resize, Keras predict on one image
        image = Image.open(io.BytesIO(payload)).convert("RGB").resize((size, size))
        x = tf.keras.applications.densenet.preprocess_input(np.asarray(image, np.float32)[None])
        return model.predict(x, verbose=0)

    seed = timed(seed_style, max(20, args.runs // 5))
    ours_p50, ours_p95 = p50_p95(ours)
    seed_p50, _ = p50_p95(seed)
    rows.append(("upload → probability (ours), p50 / p95", f"{ours_p50 * 1000:.1f} / {ours_p95 * 1000:.1f} ms",
                 f"{ours_p50 / bare_p50:.2f} × bare forward; {seed_p50 / ours_p50:.1f} × faster than seed way", "≤ 1.3 × bare forward"))
    rows.append(("upload → probability (seed: PIL + model.predict), p50", f"{seed_p50 * 1000:.1f} ms", "baseline", "—"))

    # 2. folder throughput: CLI vs per-image model.predict vs bare batch-32 forward
    batch = tf.zeros((32, size, size, 3))
    bare_batch = np.median(timed(lambda: forward(batch).numpy(), 10))
    bare_rate = 32 / bare_batch
    with tempfile.TemporaryDirectory() as folder:
        files = sorted(EXAMPLES.glob("*.jpeg"))
        for i in range(256):
            Path(folder, f"img{i:03d}.jpeg").write_bytes(files[i % len(files)].read_bytes())
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pneumo_core", "predict", *(["--model", args.model] if args.model else []), folder],
                              capture_output=True, text=True, check=True)
        cli_total = time.perf_counter() - started
        assert len(done.stdout.splitlines()) == 256
        started = time.perf_counter()
        in_process = predictor.classify([(p.name, p.read_bytes()) for p in sorted(Path(folder).iterdir())])
        ours_rate = 256 / (time.perf_counter() - started)
        assert all(case.prediction for case in in_process)
    per_image_rate = 1 / seed_p50
    rows.append(("bare compiled forward, batch 32", f"{bare_rate:.1f} img/s", "1.00", "—"))
    rows.append(("folder → predictions, in process (decode + batch 32)", f"{ours_rate:.1f} img/s", f"{ours_rate / bare_rate:.2f} × bare batch rate", "≥ 0.9 ×"))
    rows.append(("`python -m pneumo_core predict` on 256 files, incl. start-up", f"{256 / cli_total:.1f} img/s ({cli_total:.1f} s)",
                 f"{(256 / cli_total) / per_image_rate:.1f} × per-image model.predict", "—"))
    rows.append(("per-image model.predict (seed way)", f"{per_image_rate:.1f} img/s", "baseline", "—"))

    # 3. Grad-CAM per method vs tf-keras-vis Gradcam called the usual way
    explainer = Explainer(model, size)
    canonical = predictor.classify([("x", payload)])[0].canonical[None]
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import BinaryScore

    usual = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
    images = to_model_input(canonical, size)
    vis = np.median(timed(lambda: usual(BinaryScore(True), images, penultimate_layer=LAST_CONV_LAYER, seek_penultimate_conv_layer=False), 10))
    compiled = np.median(timed(lambda: explainer.gradcam(canonical), args.runs))
    rows.append(("tf-keras-vis Gradcam, usual call", f"{vis * 1000:.0f} ms", "baseline", "—"))
    rows.append(("Grad-CAM, compiled (app default)", f"{compiled * 1000:.1f} ms",
                 f"{compiled / bare_p50:.2f} × forward; {vis / compiled:.0f} × faster than tf-keras-vis", "≤ 2 × forward"))
    for method in METHODS[1:]:
        seconds = np.median(timed(lambda: explainer.explain(canonical, method, [True]), 3, warmup=1))
        rows.append((f"{method} (tf-keras-vis)", f"{seconds * 1000:.0f} ms", f"{seconds / bare_p50:.0f} × forward", "—"))

    print(append_results("Serving", "python bench/serving.py" + (f" --model {args.model}" if args.model else ""), rows,
                         f"Model: {predictor.metadata.get('name')} ({size} px)."))
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
