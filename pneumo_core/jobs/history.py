"""The MLflow store's training runs as a readable table, with runs whose process died marked as such.

A run killed without a chance to end its MLflow run (SIGKILL, a lost machine) stays RUNNING in
the store forever. :func:`recent_runs` checks each RUNNING run's progress file under the runs
folder: when its process is gone, the run is ended as KILLED in the store and shown so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pneumo_core.config import MLFLOW_EXPERIMENT, locations
from pneumo_core.jobs.progress import job_status

COLUMNS = {
    "tags.mlflow.runName": "run",
    "status": "status",
    "start_time": "started",
    "params.recipe": "recipe",
    "params.base_weights_used": "base weights",
    "metrics.final_val_roc_auc": "validation ROC AUC",
    "metrics.internal_test_roc_auc": "internal test ROC AUC",
    "metrics.internal_test_accuracy": "internal test accuracy",
    "metrics.internal_test_sensitivity": "internal test sensitivity",
    "metrics.internal_test_specificity": "internal test specificity",
}


def recent_runs(limit: int = 50, experiment: str = MLFLOW_EXPERIMENT, runs_root: Path | None = None) -> pd.DataFrame:
    """The newest runs, one row each, with plain column names (empty cells for metrics a run never logged)."""
    import mlflow

    client = mlflow.MlflowClient(locations().mlflow_tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return pd.DataFrame(columns=list(COLUMNS.values()))
    mlflow.set_tracking_uri(locations().mlflow_tracking_uri)
    runs = mlflow.search_runs(experiment_ids=[found.experiment_id], max_results=limit)
    root = Path(runs_root or locations().runs_dir)
    for index, row in runs[runs["status"] == "RUNNING"].iterrows():
        progress = root / str(row.get("tags.mlflow.runName")) / "progress.jsonl"
        if progress.is_file() and job_status(progress).state != "running":
            client.set_terminated(row["run_id"], "KILLED")  # its process is gone: the store says so from now on
            runs.loc[index, "status"] = "KILLED"
    table = runs.reindex(columns=list(COLUMNS)).rename(columns=COLUMNS)
    table["status"] = table["status"].replace(
        {"KILLED": "killed or cancelled", "FAILED": "failed", "FINISHED": "finished", "RUNNING": "running"}
    )
    return table.astype(object).where(table.notna(), "")
