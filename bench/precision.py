"""Mixed precision for training: a DenseNet121 train step in float32 against mixed_bfloat16.

    python -m bench.precision [--steps 6]

This CPU has AVX512-BF16 (a bfloat16 matmul runs at about twice the float32 rate), so
``keras.mixed_precision.set_global_policy("mixed_bfloat16")`` could speed up training.
Each policy runs in its own subprocess (the policy is global), on the from-scratch
recipe's first phase: 128 px, batch 32, AdamW, random data (speed does not depend on it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bench.common import record_results

STEP = """
import json, time, numpy as np, keras
keras.mixed_precision.set_global_policy({policy!r})
from keras import layers
from keras.applications import DenseNet121
inputs = keras.Input((128, 128, 3))
base = DenseNet121(include_top=False, weights=None, input_tensor=inputs, pooling="avg")
logit = layers.Dense(1, dtype="float32")(base.output)
model = keras.Model(inputs, layers.Activation("sigmoid", dtype="float32")(logit))
model.compile(keras.optimizers.AdamW(1e-3), "binary_crossentropy")
x = np.random.default_rng(0).random((32 * {steps}, 128, 128, 3), dtype=np.float32)
y = np.random.default_rng(1).integers(0, 2, (32 * {steps}, 1)).astype("float32")
model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # compile
started = time.perf_counter()
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
print(json.dumps({{"seconds_per_step": (time.perf_counter() - started) / {steps}}}))
"""


def step_seconds(policy: str, steps: int) -> float:
    done = subprocess.run(
        [sys.executable, "-c", STEP.format(policy=policy, steps=steps)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])["seconds_per_step"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    baseline = step_seconds("float32", args.steps)
    mixed = step_seconds("mixed_bfloat16", args.steps)
    rows = [
        ("float32 train step (baseline)", f"{baseline:.2f} s", "1.00 ×", "—"),
        ("mixed_bfloat16 train step", f"{mixed:.2f} s", f"{baseline / mixed:.2f} × the float32 speed", "> 1 × to adopt"),
    ]
    notes = "DenseNet121, 128 px, batch 32, AdamW; one subprocess per policy."
    print(record_results("Mixed precision (training)", f"python -m bench.precision --steps {args.steps}", rows, notes))


if __name__ == "__main__":
    main()
