"""Saving a Keras model as a model directory: ``model.keras`` without optimizer state, its TFLite copy for LiteRT and
``metadata.json`` with every file's SHA-256 (:mod:`pneumo_core.store.model_dir` reads, checks and promotes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras

from pneumo_core.common.preprocess import CANONICAL_SIZE
from pneumo_core.modeling.graphs import export_tflite
from pneumo_core.store.model_dir import MODEL_FILE, TFLITE_FILE, file_sha256, load_model_dir, write_metadata


def save_model_dir(model: keras.Model, directory: Path, metadata: dict[str, Any]) -> Path:
    """Write ``model.keras``, its TFLite copy (224-px models) and ``metadata.json`` with the files' SHA-256."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # rebuilt from its config, uncompiled: no optimizer state in the file (clone_model would copy the compiled optimizer)
    serving_copy = keras.Model.from_config(model.get_config())
    serving_copy.set_weights(model.get_weights())
    serving_copy.save(directory / MODEL_FILE)
    metadata = {**metadata, "model_sha256": file_sha256(directory / MODEL_FILE)}
    if int(metadata["input_size"]) == CANONICAL_SIZE:
        metadata["tflite_sha256"] = _write_tflite(serving_copy, directory)
    write_metadata(directory, metadata)
    return directory


def add_tflite(directory: Path) -> Path:
    """Give an existing model directory its TFLite copy (models saved before the copy existed)."""
    model, metadata = load_model_dir(directory)
    write_metadata(directory, {**metadata, "tflite_sha256": _write_tflite(model, Path(directory))})
    return Path(directory) / TFLITE_FILE


def _write_tflite(model: keras.Model, directory: Path) -> str:
    path = directory / TFLITE_FILE
    path.write_bytes(export_tflite(model, model.input_shape[1]))
    return file_sha256(path)
