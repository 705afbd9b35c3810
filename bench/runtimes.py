"""Alternative runtimes for the forward pass: XLA, TFLite (XNNPACK), ONNX Runtime, against the compiled TF function.

    python -m bench.runtimes [--model models/served] [--runs 50]

Each runtime gets the same model-input tensor (224-px, DenseNet-scaled); the table gives
batch-1 latency and batch-32 throughput as ratios to TensorFlow's compiled function in
this process, and the largest logit difference from it. ONNX Runtime is measured only
when ``tf2onnx`` and ``onnxruntime`` are installed (they are not in requirements.txt).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from bench.common import record_results, timed
from pneumo_core.config import served_model_dir
from pneumo_core.modeling.architectures import LOGIT_LAYER
from pneumo_core.store.model_dir import load_model_dir

THREADS = os.cpu_count() or 1


def tflite_runner(concrete, batch: int):
    from ai_edge_litert.interpreter import Interpreter

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    interpreter = Interpreter(model_content=converter.convert(), num_threads=THREADS)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, [batch, *concrete.inputs[0].shape[1:]])
    interpreter.allocate_tensors()
    output = interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return interpreter.get_tensor(output)

    return run


def onnx_runner(logit_model, size: int):
    import onnxruntime
    import tf2onnx

    spec = (tf.TensorSpec([None, size, size, 3], tf.float32, name="image"),)
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    function = tf.function(lambda x: logit_model(x, training=False))
    tf2onnx.convert.from_function(function, input_signature=spec, opset=17, output_path=str(path))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    model, metadata = load_model_dir(args.model or served_model_dir())
    size = int(metadata["input_size"])
    logit_model = tf.keras.Model(model.inputs, model.get_layer(LOGIT_LAYER).output)
    rng = np.random.default_rng(0)
    inputs = {batch: rng.uniform(-2, 2, (batch, size, size, 3)).astype(np.float32) for batch in (1, 32)}

    runners: dict[str, dict[int, object]] = {
        "TensorFlow, compiled (baseline)": {},
        "XLA (jit_compile)": {},
        "TFLite (XNNPACK)": {},
    }
    compiled = tf.function(lambda x: logit_model(x, training=False), input_signature=[tf.TensorSpec([None, size, size, 3])])
    xla = tf.function(lambda x: logit_model(x, training=False), jit_compile=True)
    for batch in (1, 32):
        runners["TensorFlow, compiled (baseline)"][batch] = lambda x: compiled(x).numpy()
        runners["XLA (jit_compile)"][batch] = lambda x: xla(x).numpy()
        concrete = tf.function(lambda x: logit_model(x, training=False)).get_concrete_function(
            tf.TensorSpec([batch, size, size, 3])
        )
        runners["TFLite (XNNPACK)"][batch] = tflite_runner(concrete, batch)
    skipped = ""
    try:
        onnx = onnx_runner(logit_model, size)
        runners["ONNX Runtime (CPU)"] = {1: onnx, 32: onnx}
    except ImportError as error:
        skipped = f"ONNX Runtime not measured: {error.name} is not installed (pip install tf2onnx onnxruntime)."

    rows, baseline = [], {}
    for name, by_batch in runners.items():
        reference = runners["TensorFlow, compiled (baseline)"][1](inputs[1])
        difference = float(np.abs(np.asarray(by_batch[1](inputs[1])).reshape(-1) - reference.reshape(-1)).max())
        single = float(np.median(timed(lambda run=by_batch[1]: run(inputs[1]), args.runs)))
        batch_seconds = float(np.median(timed(lambda run=by_batch[32]: run(inputs[32]), max(3, args.runs // 10), warmup=1)))
        rate = 32 / batch_seconds
        baseline = baseline or {"single": single, "rate": rate}
        rows.append(
            (
                name,
                f"batch 1: {single * 1000:.1f} ms; batch 32: {rate:.1f} img/s; largest logit difference {difference:.1e}",
                f"{baseline['single'] / single:.2f} × speed at batch 1, {rate / baseline['rate']:.2f} × at batch 32",
                "a real win to adopt",
            )
        )
    print(
        record_results(
            "Alternative runtimes",
            "python -m bench.runtimes",
            rows,
            f"Model: {metadata.get('name')}; {THREADS} threads everywhere; "
            f"TFLite through LiteRT (ai-edge-litert), as served. {skipped}".strip(),
        )
    )


if __name__ == "__main__":
    main()
