"""Post-training quantisation of the serving graph for XNNPACK: does an int8 model keep every answer?

    python -m bench.quantization [--model models/served] [--data ../shared/data/chest_xray] [--calibration 200]

Converts the served model's ``serve`` graph three ways — float32 (what serves today), dynamic-range (int8 weights)
and full-integer (int8 weights and activations, calibrated on films of the model's own *training* split) — and
measures each against float32 on the internal test (the manifest's held-out patients) and the site sample:
verdict agreement at the served operating point, ROC AUC difference, largest probability difference, and time per
film at batch 1 and batch 32. The rule: adopt int8 only if verdicts agree on ≥ 99.5% of films and AUC
moves by ≤ 0.002 on both sets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from bench.common import record_results
from pneumo_core.common.films import class_root, list_labelled_images
from pneumo_core.common.logits import sigmoid
from pneumo_core.common.preprocess import CANONICAL_SIZE, intensity_mode, model_view
from pneumo_core.config import locations, site_sample_dir
from pneumo_core.modeling.graphs import KerasNetwork
from pneumo_core.serving.loading import load_canonical_images
from pneumo_core.serving.predictor import Predictor
from pneumo_core.store.model_dir import EVALUATION_DIR, load_model_dir

MODES = ("float32", "dynamic-range int8", "full-integer int8")
AGREEMENT_GOAL, AUC_GOAL = 0.995, 0.002


def convert(network: KerasNetwork, mode: str, calibration: np.ndarray) -> bytes:
    """The ``serve`` graph (logit only) at any batch size as TFLite, quantised by ``mode``."""

    def serve(canonical):
        return {"logit": network.serve(canonical)["logit"]}

    function = tf.function(serve, input_signature=[tf.TensorSpec([None, CANONICAL_SIZE, CANONICAL_SIZE], tf.uint8)])
    holder = tf.Module()
    holder.weights = [weight.value for weight in network.model.weights]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], holder)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "full-integer int8":
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    return converter.convert()


class Runner:
    """A TFLite logit graph with its input resized to a batch size on demand."""

    def __init__(self, flatbuffer: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=flatbuffer, num_threads=2)
        self.batch = None

    def logits(self, canonical: np.ndarray, batch: int) -> np.ndarray:
        if self.batch != batch:
            index = self.interpreter.get_input_details()[0]["index"]
            self.interpreter.resize_tensor_input(index, (batch, CANONICAL_SIZE, CANONICAL_SIZE))
            self.interpreter.allocate_tensors()
            self.batch = batch
        out = []
        for start in range(0, len(canonical) - batch + 1, batch):
            self.interpreter.set_tensor(self.interpreter.get_input_details()[0]["index"], canonical[start : start + batch])
            self.interpreter.invoke()
            out.append(self.interpreter.get_tensor(self.interpreter.get_output_details()[0]["index"]).reshape(-1))
        return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--calibration", type=int, default=200, help="training films for full-integer calibration")
    args = parser.parse_args()
    model_dir = args.model or locations().model_dir
    data = args.data or locations().data_dir
    model, metadata = load_model_dir(model_dir)
    served = Predictor.load(model_dir)  # the served operating point: temperature and threshold
    manifest = pd.read_csv(model_dir / EVALUATION_DIR / "manifest.csv")
    root = class_root(data, "train")
    train = manifest[manifest["split"] == "train"]
    calibration = load_canonical_images([str(root / f) for f in train["file"].iloc[:: max(1, len(train) // args.calibration)]])
    test = manifest[manifest["split"] == "test"]
    site = list_labelled_images(site_sample_dir(data))
    intensity = intensity_mode(metadata)  # the raw networks below are fed as the model sees its films
    calibration = model_view(calibration, intensity)
    test_films = load_canonical_images([str(root / f) for f in test["file"]])
    sets = {
        "internal test": (model_view(test_films, intensity), test["label"].to_numpy()),
        "site sample": (model_view(load_canonical_images(site["path"].tolist()), intensity), site["label"].to_numpy()),
    }
    network = KerasNetwork(model, int(metadata["input_size"]))
    runners = {mode: Runner(convert(network, mode, calibration)) for mode in MODES}
    rows, decisions = [], []
    logits = {mode: {name: runner.logits(images, 1) for name, (images, _) in sets.items()} for mode, runner in runners.items()}
    probe = sets["site sample"][0][:64]
    speed = {}
    for mode, runner in runners.items():
        for batch in (1, 32):
            runner.logits(probe[:batch], batch)  # warm
            started = time.perf_counter()
            runner.logits(probe, batch)
            speed[mode, batch] = (time.perf_counter() - started) / (len(probe) // batch * batch)
    for mode in MODES:
        cells = []
        for name, (_, labels) in sets.items():
            reference = sigmoid(logits["float32"][name] / served.temperature)
            probability = sigmoid(logits[mode][name] / served.temperature)
            agreement = float(np.mean((probability >= served.threshold) == (reference >= served.threshold)))
            auc_change = roc_auc_score(labels, probability) - roc_auc_score(labels, reference)
            cells.append(
                f"{name}: agree {agreement:.2%}, ΔAUC {auc_change:+.4f}, max ΔP {np.abs(probability - reference).max():.4f}"
            )
            decisions.append((mode, agreement >= AGREEMENT_GOAL and abs(auc_change) <= AUC_GOAL))
        rows.append(
            (
                mode,
                "; ".join(cells),
                f"batch 1: {speed[mode, 1] * 1000:.1f} ms ({speed['float32', 1] / speed[mode, 1]:.2f} × float32); "
                f"batch 32: {speed[mode, 32] * 1000:.1f} ms/film ({speed['float32', 32] / speed[mode, 32]:.2f} × float32)",
                f"agree ≥ {AGREEMENT_GOAL:.1%}, |ΔAUC| ≤ {AUC_GOAL}",
            )
        )
    passing = [mode for mode in MODES[1:] if all(ok for m, ok in decisions if m == mode)]
    print(
        record_results(
            "int8 quantisation of the serving graph",
            "python -m bench.quantization" + (f" --model {args.model}" if args.model else ""),
            rows,
            f"Model: {metadata.get('name')}; operating point {served.operating_point} (threshold {served.threshold:.3f}, "
            f"temperature {served.temperature:.2f}); {len(calibration)} training films calibrate full-integer. "
            f"Meets the rule on both sets: {', '.join(passing) or 'none'}.",
        )
    )


if __name__ == "__main__":
    main()
