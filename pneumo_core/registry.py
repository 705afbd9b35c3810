"""Model directories: save a trained model with its metadata, load it safely, promote it atomically.

A model directory holds ``model.keras``, ``metadata.json`` (class names, input
size, preprocessing, threshold, temperature, base weights, data manifest hash,
metrics, git commit, date, the file's SHA-256) and ``evaluation/`` (per-image
predictions of the internal test and validation splits, file names only).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import keras

from .config import PROJECT_ROOT

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
EVALUATION_DIR = "evaluation"


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or does not match its metadata."""


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


def save_model_dir(model: keras.Model, directory: Path, metadata: dict[str, Any]) -> Path:
    """Write ``model.keras`` and ``metadata.json`` (with the model file's SHA-256) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # rebuilt from its config, uncompiled: no optimizer state in the file (clone_model would copy the compiled optimizer)
    serving_copy = keras.Model.from_config(model.get_config())
    serving_copy.set_weights(model.get_weights())
    serving_copy.save(directory / MODEL_FILE)
    metadata = {**metadata, "model_sha256": file_sha256(directory / MODEL_FILE)}
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=float) + "\n")
    return directory


def read_metadata(directory: Path) -> dict[str, Any]:
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise ModelLoadError(f"No model found in {directory} (missing {METADATA_FILE}).")
    return json.loads(path.read_text())


def load_model_dir(directory: Path) -> tuple[keras.Model, dict[str, Any]]:
    """Load a model directory in Keras safe mode after checking the file's SHA-256 against its metadata."""
    directory = Path(directory)
    metadata = read_metadata(directory)
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ModelLoadError(f"The model file {model_path} is missing.")
    if file_sha256(model_path) != metadata.get("model_sha256"):
        raise ModelLoadError(
            f"The model file in {directory} does not match its metadata (SHA-256 differs): it was changed or damaged."
        )
    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    return model, metadata


def promote(candidate: Path, served: Path) -> Path | None:
    """Make ``candidate`` the served model; the old one moves to ``<served>.previous``.

    The candidate is copied next to the served directory first (same file
    system), then swapped in with two renames, so a reader sees either the old
    or the new complete directory. Returns the previous directory, if any.
    """
    candidate, served = Path(candidate), Path(served)
    read_metadata(candidate)  # refuse to promote something that is not a model directory
    staging = served.with_name(f".{served.name}.staging-{uuid.uuid4().hex[:8]}")
    shutil.copytree(candidate, staging)
    previous = served.with_name(served.name + ".previous")
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
    previous = served.with_name(served.name + ".previous")
    if not previous.exists():
        raise ModelLoadError("There is no previous model to roll back to.")
    swap = served.with_name(f".{served.name}.swap-{uuid.uuid4().hex[:8]}")
    os.replace(served, swap)
    os.replace(previous, served)
    os.replace(swap, previous)
