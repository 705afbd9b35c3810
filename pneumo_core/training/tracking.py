"""MLflow bookkeeping for a training run (a local SQLite store unless MLFLOW_TRACKING_URI says otherwise)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import mlflow
from mlflow.exceptions import MlflowException

from pneumo_core.config import PROJECT_ROOT, locations
from pneumo_core.store.mlflow_registry import register_version
from pneumo_core.store.model_dir import read_metadata

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 5000
"""MLflow keeps a model version's description in a 5,000-character column."""
DESCRIPTION_SECTIONS = ("Intended use", "Out of scope", "Disclaimer")
"""The model card's sections a registered version's description holds (the whole card is in the repository)."""

FINAL_PREFIX = {"val": "final_val", "test": "internal_test"}
REPORTED = ("accuracy", "sensitivity", "specificity", "precision", "npv", "f1", "roc_auc", "pr_auc", "brier", "ece")


class TrackedRun:
    """Context manager around one MLflow run; a resumed training run continues the same MLflow run.

    The run ends FINISHED on success, KILLED on interruption (SIGTERM, Ctrl-C)
    and FAILED on any error, so the store always holds a readable final state.
    """

    def __init__(self, experiment: str, run_name: str, state: dict[str, Any]):
        self.experiment, self.run_name, self.state = experiment, run_name, state

    def __enter__(self) -> TrackedRun:
        mlflow.set_tracking_uri(locations().mlflow_tracking_uri)
        mlflow.set_experiment(self.experiment)
        run = mlflow.start_run(run_id=self.state.get("mlflow_run_id"), run_name=self.run_name)
        self.state["mlflow_run_id"] = run.info.run_id
        return self

    def __exit__(self, kind, error, traceback) -> None:
        status = "FINISHED" if kind is None else "KILLED" if issubclass(kind, (KeyboardInterrupt, SystemExit)) else "FAILED"
        mlflow.end_run(status=status)

    @property
    def run_id(self) -> str:
        return self.state["mlflow_run_id"]

    def log_params(self, params: dict[str, Any]) -> None:
        try:
            mlflow.log_params({key: str(value)[:500] for key, value in params.items()})
        except MlflowException as error:  # a resumed run logs the same params again
            log.info("params already logged: %s", str(error).splitlines()[0])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        mlflow.log_artifact(str(path), folder)

    def log_final(self, metrics, uncalibrated, temperature: float, threshold: float, evaluation_dir: Path) -> None:
        for split, values in metrics.items():
            mlflow.log_metrics({f"{FINAL_PREFIX[split]}_{key}": values[key] for key in REPORTED})
            mlflow.log_metrics(
                {f"{FINAL_PREFIX[split]}_uncalibrated_{key}": uncalibrated[split][key] for key in ("brier", "ece")}
            )
        mlflow.log_metrics({"temperature": temperature, "threshold": threshold})
        mlflow.log_artifacts(str(evaluation_dir), "evaluation")

    def log_model_dir(self, directory: Path) -> str | None:
        """Log the candidate model directory and register it as a new version (see :mod:`pneumo_core.store.mlflow_registry`);
        returns the version, or None when the registry could not take it (logged; the run still succeeds)."""
        mlflow.log_artifacts(str(directory), "model")
        card = PROJECT_ROOT / "MODEL_CARD.md"
        try:
            return register_version(
                self.run_id,
                mlflow.get_artifact_uri("model"),
                read_metadata(directory),
                card_summary(card.read_text()) if card.is_file() else "",
            )
        except MlflowException as error:
            log.warning("the model was not registered: %s", str(error).splitlines()[0])
            return None


class MlflowEpochLogger(keras.callbacks.Callback):
    """Logs every epoch's Keras metrics to MLflow, numbered across all phases of the run."""

    def __init__(self, tracked: TrackedRun, phase: str, counter):
        super().__init__()
        self.tracked, self.phase, self.counter = tracked, phase, counter

    def on_epoch_end(self, epoch, logs=None):
        self.counter.global_epoch += 1
        metrics = {key: value for key, value in (logs or {}).items()}
        metrics["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.tracked.log_metrics(metrics, step=self.counter.global_epoch)


def card_summary(card: str) -> str:
    """The model card's :data:`DESCRIPTION_SECTIONS`, within :data:`MAX_DESCRIPTION` characters."""
    sections = [
        f"## {part.strip()}" for part in ("\n" + card).split("\n## ") if part.split("\n", 1)[0].strip() in DESCRIPTION_SECTIONS
    ]
    return "\n\n".join(sections)[:MAX_DESCRIPTION]
