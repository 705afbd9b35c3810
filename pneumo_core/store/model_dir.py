"""Model directories: save a trained model with its metadata, load it safely, promote it atomically.

A model directory holds ``model.keras``, its TFLite copy ``model.tflite`` (224-px
models; ``model_int8.tflite`` too once :mod:`pneumo_core.evaluation.int8_check` made one),
``metadata.json`` (class names, input size, preprocessing, threshold, temperature,
base weights, data manifest hash, metrics, git commit, date, the files' SHA-256)
and ``evaluation/`` (per-image predictions of the internal test and validation
splits, file names only).

Keras is imported only by the functions that read or write ``model.keras``, so
the app can serve the TFLite copy without loading TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pneumo_core.config import PROJECT_ROOT

if TYPE_CHECKING:
    import keras

MODEL_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
LITE_COPIES = {"tflite-int8": ("model_int8.tflite", "tflite_int8_sha256"), "tflite": (TFLITE_FILE, "tflite_sha256")}
"""The TFLite copies by runtime name: (file, the metadata key of its SHA-256). The int8 one serves first (runtime
``auto``) where its check passed (:mod:`pneumo_core.evaluation.int8_check`)."""
METADATA_FILE = "metadata.json"
EVALUATION_DIR = "evaluation"
SANITY_FILE = "saliency_sanity.json"
"""Where a model directory keeps its saliency sanity-check results (under ``evaluation/``)."""


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or does not match its metadata. ``transient``: the failure may be a
    promotion swapping the directory mid-load, and loading again can succeed; every other failure is lasting."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def record_in_metadata(directory: Path, **fields: Any) -> dict[str, Any]:
    """Add facts about a model directory (e.g. its ``registry_version``) to its metadata; the files' SHA-256 stay."""
    metadata = {**read_metadata(directory), **fields}
    write_metadata(directory, metadata)
    return metadata


def write_metadata(directory: Path, metadata: dict[str, Any]) -> None:
    """Write ``metadata.json`` (the facts and SHA-256 it holds are the caller's)."""
    (Path(directory) / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=float) + "\n")


SWAP_WAIT_SECONDS = 1.0
"""How long a reader waits for a model directory whose metadata is missing: :func:`promote` and :func:`roll_back` leave
no directory at the served path for the microseconds between their two renames."""


def read_metadata(directory: Path) -> dict[str, Any]:
    path = Path(directory) / METADATA_FILE
    deadline, attempts = time.monotonic() + SWAP_WAIT_SECONDS, 0
    while True:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            attempts += 1
            # A swap cannot be told from outside without races, so every miss waits (a missing model costs ~1 s);
            # a thread starved of CPU past the deadline still gets its tries: time alone does not end the wait.
            if time.monotonic() > deadline and attempts >= 100:
                raise ModelLoadError(f"No model found in {directory} (missing {METADATA_FILE}).") from None
            time.sleep(0.002)


def _verified_bytes(path: Path, expected_sha256: str | None) -> bytes:
    """The file's content, read once and checked against the SHA-256 the metadata recorded: what is loaded is
    exactly what was checked, even if the directory is swapped meanwhile."""
    try:
        content = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise ModelLoadError(f"The model file {path} is missing.", transient=True) from None
    if hashlib.sha256(content).hexdigest() != expected_sha256:
        raise ModelLoadError(
            f"The model file {path.name} in {path.parent} does not match its metadata (SHA-256 differs): "
            "it was changed or damaged.",
            transient=True,
        )
    return content


def load_keras_model(directory: Path, metadata: dict[str, Any]) -> keras.Model:
    """The directory's Keras model (safe mode), checked against ``metadata``."""
    import keras

    content = _verified_bytes(Path(directory) / MODEL_FILE, metadata.get("model_sha256"))
    with tempfile.TemporaryDirectory(prefix="pneumo-model-") as scratch:
        path = Path(scratch) / MODEL_FILE
        path.write_bytes(content)
        return keras.saving.load_model(path, compile=False, safe_mode=True)


def load_model_dir(directory: Path) -> tuple[keras.Model, dict[str, Any]]:
    """Load a model directory in Keras safe mode after checking the file's SHA-256 against its metadata."""
    metadata = read_metadata(directory)
    return load_keras_model(directory, metadata), metadata


def load_lite_model(directory: Path, metadata: dict[str, Any], runtime: str = "tflite") -> bytes:
    """The directory's TFLite flatbuffer for ``runtime`` (a key of :data:`LITE_COPIES`), checked against ``metadata``."""
    file_name, key = LITE_COPIES[runtime]
    if key not in metadata:
        kind, command = ("int8 TFLite copy", "quantize") if runtime == "tflite-int8" else ("TFLite copy", "export-tflite")
        raise ModelLoadError(f"The model in {directory} has no {kind} ({file_name}; python -m pneumo_core {command} adds it).")
    return _verified_bytes(Path(directory) / file_name, metadata[key])


def add_int8_copy(directory: Path, flatbuffer: bytes, **fields: Any) -> Path:
    """Write the int8 TFLite copy into a model directory and record its SHA-256 with ``fields``, in one metadata
    write (so a new copy never meets an old check's result)."""
    file_name, key = LITE_COPIES["tflite-int8"]
    path = Path(directory) / file_name
    path.write_bytes(flatbuffer)
    record_in_metadata(directory, **{key: file_sha256(path)}, **fields)
    return path


def previous_dir(served: Path) -> Path:
    """Where the model a promotion replaced is kept, beside the served one: ``<served>.previous``."""
    return Path(served).with_name(Path(served).name + ".previous")


def promote(candidate: Path, served: Path) -> Path | None:
    """Make ``candidate`` the served model; the old one moves to ``<served>.previous``.

    The candidate is copied next to the served directory first (same file
    system), then swapped in with two renames. A reader sees the old or the new
    complete directory, never a half-copied one; between the two renames the
    served path briefly does not exist, which :func:`read_metadata` waits out, and
    a load that read the old metadata but the new files is retried by
    :meth:`pneumo_core.serving.predictor.Predictor.load`. Returns the previous directory, if any.
    """
    candidate, served = Path(candidate), Path(served)
    read_metadata(candidate)  # refuse to promote something that is not a model directory
    staging = served.with_name(f".{served.name}.staging-{uuid.uuid4().hex[:8]}")
    shutil.copytree(candidate, staging)
    previous = previous_dir(served)
    if previous.exists():
        shutil.rmtree(previous)
    had_served = served.exists()
    if had_served:
        os.replace(served, previous)
    os.replace(staging, served)
    return previous if had_served else None


def roll_back(served: Path) -> None:
    """Swap the served model with the one it replaced."""
    served = Path(served)
    previous = previous_dir(served)
    if not previous.exists():
        raise ModelLoadError("There is no previous model to roll back to.")
    swap = served.with_name(f".{served.name}.swap-{uuid.uuid4().hex[:8]}")
    os.replace(served, swap)
    os.replace(previous, served)
    os.replace(swap, previous)
