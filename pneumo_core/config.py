"""Where things live: data folders, the served model, the MLflow store.

Every location has a default relative to the project root and an environment
variable that overrides it, so the app, the CLI, CI and the tests agree.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

DATA_DIR_ENV = "PNEUMO_DATA_DIR"
MODEL_DIR_ENV = "PNEUMO_MODEL_DIR"
BASE_WEIGHTS_ENV = "PNEUMO_BASE_WEIGHTS"
RUNS_DIR_ENV = "PNEUMO_RUNS_DIR"
DATA_ROOTS_ENV = "PNEUMO_DATA_ROOTS"

# Tried in order when PNEUMO_DATA_DIR is not set: the project's own data folder,
# then the shared copy used in development and CI.
_DEFAULT_DATA_DIRS = (PROJECT_ROOT / "data" / "chest_xray", PROJECT_ROOT.parent / "shared" / "data" / "chest_xray")


def default_data_dir() -> Path:
    """The Kermany-layout data folder: ``$PNEUMO_DATA_DIR`` or the first default that exists."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    for candidate in _DEFAULT_DATA_DIRS:
        if candidate.is_dir():
            return candidate
    return _DEFAULT_DATA_DIRS[0]


def training_data_roots() -> list[Path]:
    """The only folders the app may train on: ``$PNEUMO_DATA_ROOTS`` (``os.pathsep``-separated) or the default
    data folder, those that exist. The app offers these by name; it never takes a path typed by a visitor."""
    configured = os.environ.get(DATA_ROOTS_ENV)
    roots = [Path(p) for p in configured.split(os.pathsep) if p] if configured else [default_data_dir()]
    return [root.resolve() for root in roots if root.is_dir()]


def served_model_dir() -> Path:
    """The directory of the model the app and the CLI serve."""
    return Path(os.environ.get(MODEL_DIR_ENV, PROJECT_ROOT / "models" / "served"))


def runs_dir() -> Path:
    """Where training runs keep checkpoints, progress files and candidate models (not in git)."""
    return Path(os.environ.get(RUNS_DIR_ENV, PROJECT_ROOT / "runs"))


def mlflow_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or a SQLite file in the project root."""
    return os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}")


def default_base_weights() -> str:
    """``$PNEUMO_BASE_WEIGHTS`` or ``auto`` (see :func:`pneumo_core.model.resolve_base_weights`)."""
    return os.environ.get(BASE_WEIGHTS_ENV, "auto")
